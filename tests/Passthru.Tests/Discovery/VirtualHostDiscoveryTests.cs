using Passthru.Tests.VirtualHost;

namespace Passthru.Tests.Discovery;

/// <summary>Passthru's reading commands against the real kernel of the virtual host.</summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host")]
public class VirtualHostDiscoveryTests(VirtualHostFixture vm)
{
    [Fact]
    public void Check_reports_the_iommu_enabled_and_no_failure()
    {
        var r = vm.Run($"{vm.Passthru} check");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("PASS  IOMMU hardware          Intel VT-d (ACPI DMAR table)", r.Stdout);
        Assert.Contains("PASS  IOMMU enabled           1 IOMMU unit, 9 IOMMU groups", r.Stdout);
        Assert.Contains("PASS  IOMMU kernel parameter  intel_iommu=on", r.Stdout);
        Assert.Contains("PASS  Interrupt remapping     supported by the IOMMU", r.Stdout);
        Assert.Contains("PASS  QEMU                    /usr/bin/qemu-system-x86_64, version ", r.Stdout);
        Assert.DoesNotContain("FAIL", r.Stdout);
    }

    [Fact]
    public void Show_explains_the_bridge_group_and_the_bus_reset_from_the_live_config_space()
    {
        // As root, config space is read in full: the bridge's PCIe capability says it is a PCIe-to-PCI bridge.
        var r = vm.RunOk($"{vm.Passthru} show 02:01.0");
        Assert.Contains("  Why this group:  0000:01:00.0 is a PCIe-to-PCI bridge: every function behind it reaches the IOMMU with the bridge's requester ID, "
            + "so the IOMMU cannot tell 0000:02:01.0 from 0000:02:02.0 and they form one group\n", r);
        Assert.Contains($"  Reset methods:   {vm.RunOk("cat /sys/bus/pci/devices/0000:02:01.0/reset_method").Trim()}\n                   only a bus reset (on 0000:01:00.0), which also resets 0000:02:02.0\n", r);
        Assert.Contains($"  Power:           {vm.RunOk("cat /sys/bus/pci/devices/0000:02:01.0/power_state").Trim()}, D3cold not allowed\n", r);
        // The e1000e at 00:02.0 is alone in its group: nothing to explain.
        Assert.DoesNotContain("Why this group", vm.RunOk($"{vm.Passthru} show 00:02.0"));
    }

    [Fact]
    public void List_agrees_with_lspci_run_in_the_same_host()
    {
        var lspci = vm.RunOk("lspci -D -nn -O hwdb.disable=1").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var lspciK = vm.RunOk("lspci -D -nn -k -O hwdb.disable=1").Split('\n');
        var ours = vm.RunOk($"{vm.Passthru} list").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(lspci, ours.Select(l => l[..l.IndexOf("  driver=", StringComparison.Ordinal)]));
        string? current = null;
        var drivers = new Dictionary<string, string>();
        foreach (var line in lspciK)
        {
            if (line.Length > 12 && !line.StartsWith('\t')) current = line[..12];
            else if (line.StartsWith("\tKernel driver in use: ", StringComparison.Ordinal)) drivers[current!] = line[23..];
        }
        // Each function's group as the kernel links it, read in the same host (not from our own output).
        var groups = vm.RunOk("for d in /sys/bus/pci/devices/*; do g=$(readlink $d/iommu_group) && echo \"${d##*/} ${g##*/}\" || echo \"${d##*/} none\"; done")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')).ToDictionary(p => p[0], p => p[1]);
        Assert.Equal(lspci.Length, groups.Count);
        Assert.Contains(groups.Values, g => g != "none");
        foreach (var line in ours)
            Assert.EndsWith($"driver={drivers.GetValueOrDefault(line[..12], "none")} group={groups[line[..12]]}", line);
        Assert.Contains(ours, l => l.StartsWith("0000:00:02.0 Ethernet controller [0200]: Intel Corporation 82574L Gigabit Network Connection [8086:10d3]  driver=e1000e group=", StringComparison.Ordinal));
    }

    [Fact]
    public void The_shared_group_is_viable_only_once_both_functions_leave_their_driver()
    {
        // By hand through sysfs (the binding engine has its own tests): one function, then the other, then back.
        const string unbind1 = "echo 0000:02:01.0 > /sys/bus/pci/drivers/e1000/unbind";
        const string unbind2 = "echo 0000:02:02.0 > /sys/bus/pci/drivers/e1000/unbind";
        try
        {
            vm.RunOk(unbind1);
            Assert.StartsWith("IOMMU group 8: not viable: 0000:02:02.0 (e1000) must move to vfio-pci", vm.RunOk($"{vm.Passthru} list --groups --vendor 8086 --class 0200 | grep 'group 8'"));
            vm.RunOk(unbind2);
            Assert.StartsWith("IOMMU group 8: viable", vm.RunOk($"{vm.Passthru} list --groups | grep 'group 8'"));
        }
        finally
        {
            vm.Run("echo 0000:02:01.0 > /sys/bus/pci/drivers/e1000/bind; echo 0000:02:02.0 > /sys/bus/pci/drivers/e1000/bind");
        }
        Assert.StartsWith("IOMMU group 8: not viable: 0000:02:01.0 (e1000), 0000:02:02.0 (e1000)", vm.RunOk($"{vm.Passthru} list --groups | grep 'group 8'"));
    }
}
