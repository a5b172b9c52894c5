using Passthru.Binding;
using Passthru.Host;
using Passthru.Launch;
using Passthru.Pci;
using Passthru.Tests.Support;

namespace Passthru.Tests.Discovery;

/// <summary>
/// Reset, power and group isolation on the virtual host's capture (its config spaces read as root): the two e1000
/// behind QEMU's PCIe-to-PCI bridge share group 8 because the bridge takes over their requester IDs, and 02:01.0's
/// only reset is a bus reset on that bridge, which hits 02:02.0 too. The after-guest check runs against copies of the
/// capture edited into a device that reads all-ones, one in D3cold, and one left on vfio-pci.
/// </summary>
public class DeviceSafetyTests
{
    [Fact]
    public void Show_explains_a_group_merged_by_a_pcie_to_pci_bridge_and_names_what_a_bus_reset_hits()
    {
        var r = CliRunner.OnCapture("vhost", "show", "02:01.0");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("  Why this group:  0000:01:00.0 is a PCIe-to-PCI bridge: every function behind it reaches the IOMMU with the bridge's requester ID, "
            + "so the IOMMU cannot tell 0000:02:01.0 from 0000:02:02.0 and they form one group\n", r.Stdout);
        Assert.Contains("what to do: put the device in another slot", r.Stdout);
        Assert.Contains("Passthru never applies it", r.Stdout);
        Assert.Contains("  Reset methods:   bus\n                   only a bus reset (on 0000:01:00.0), which also resets 0000:02:02.0\n", r.Stdout);

        var json = CliRunner.OnCapture("vhost", "show", "02:01.0", "--json").Stdout;
        Assert.Contains("\"reset_bridge\": \"0000:01:00.0\"", json);
        Assert.Contains("\"reset_also_hits\": [\n    \"0000:02:02.0\"\n  ]", json);
        Assert.Contains("\"cause\": \"0000:01:00.0 is a PCIe-to-PCI bridge", json);
    }

    [Fact]
    public void A_device_alone_in_its_group_has_no_explanation_and_its_own_reset()
    {
        var r = CliRunner.OnCapture("vhost", "show", "00:02.0");
        Assert.DoesNotContain("Why this group", r.Stdout);
        Assert.Contains("  Reset methods:   pm\n  Power:           state not reported, D3cold allowed\n", r.Stdout);
        var json = CliRunner.OnCapture("vhost", "show", "00:02.0", "--json").Stdout;
        Assert.Contains("\"group_explanation\": null", json);
        Assert.Contains("\"reset_also_hits\": []", json);
    }

    [Fact]
    public void A_port_without_acs_is_named_as_the_cause()
    {
        var tree = Repo.CopyCapture("vhost");
        try
        {
            // The bridge below the root port becomes a PCIe switch downstream port without ACS: it is then what merges the group.
            var bridge = Path.Combine(tree, "sys/bus/pci/devices/0000:01:00.0/config");
            var b = File.ReadAllBytes(bridge);
            b[72 + 2] = (byte)((b[72 + 2] & 0x0f) | (PciTopology.DownstreamPort << 4));
            File.WriteAllBytes(bridge, b);
            var host = new HostRoot(tree);
            var inventory = PciInventory.Load(host);
            var why = Passthru.Discovery.DeviceSafety.ExplainGroup(host, inventory, inventory.Find(PciAddress.Parse("0000:02:01.0"))!);
            Assert.NotNull(why);
            Assert.StartsWith("0000:01:00.0, a PCIe switch downstream port above 0000:02:01.0, has no ACS isolation", why!.Cause);
        }
        finally { Directory.Delete(tree, true); }
    }

    [Fact]
    public void Bind_warns_that_a_bus_reset_hits_the_other_functions_on_the_bus()
    {
        var r = CliRunner.OnCapture("vhost", "bind", "02:01.0", "--group", "--dry-run");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("warning: 0000:02:01.0 can only be reset by a bus reset on 0000:01:00.0, which also resets 0000:02:02.0", r.Stdout);
    }

    [Fact]
    public void After_a_guest_a_device_that_reads_all_ones_or_sits_in_d3cold_or_on_the_wrong_driver_is_named_with_its_fix()
    {
        var tree = Repo.CopyCapture("vhost");
        try
        {
            var host = new HostRoot(tree);
            var e1000e = new FunctionState(PciAddress.Parse("0000:00:02.0"), "e1000e", null, 2);
            var twin = new FunctionState(PciAddress.Parse("0000:00:03.0"), "e1000e", null, 3);
            var nvme = new FunctionState(PciAddress.Parse("0000:00:04.0"), "nvme", null, 4);
            Assert.Empty(DeviceHealth.Check(host, [e1000e, twin, nvme]));   // as captured: all back

            var dev = Path.Combine(tree, "sys/bus/pci/devices/0000:00:02.0");
            File.WriteAllBytes(Path.Combine(dev, "config"), Enumerable.Repeat((byte)0xff, 4096).ToArray());
            File.WriteAllText(Path.Combine(dev, "power_state"), "D3cold\n");
            File.WriteAllText(Path.Combine(tree, "sys/bus/pci/devices/0000:00:03.0/power_state"), "D3cold\n");
            Binding.SysfsShaper.Rebind(tree, "0000:00:04.0", "vfio-pci");
            var problems = DeviceHealth.Check(host, [e1000e, twin, nvme]);
            Assert.Equal([
                "0000:00:02.0 does not answer after the guest (its config space reads all-ones, power state D3cold): remove and rescan it "
                    + "(echo 1 > /sys/bus/pci/devices/0000:00:02.0/remove; echo 1 > /sys/bus/pci/rescan); if it drops into D3cold again, keep it out "
                    + "(echo 0 > /sys/bus/pci/devices/0000:00:02.0/d3cold_allowed) or load vfio-pci with disable_idle_d3=1",
                "0000:00:03.0 is in power state D3cold after the guest: bring it back (echo on > /sys/bus/pci/devices/0000:00:03.0/power/control), "
                    + "keep it out of D3cold (echo 0 > /sys/bus/pci/devices/0000:00:03.0/d3cold_allowed), or load vfio-pci with disable_idle_d3=1",
                "0000:00:04.0 is on vfio-pci after the guest, not back on nvme: bind it (echo 0000:00:04.0 > /sys/bus/pci/drivers/nvme/bind), "
                    + "or remove and rescan it; `dmesg` says why its driver failed",
            ], problems);
        }
        finally { Directory.Delete(tree, true); }
    }
}
