using Passthru.Binding;
using Passthru.Host;
using Passthru.Pci;
using Passthru.Tests.Support;

namespace Passthru.Tests.Binding;

/// <summary>Plans on the virtual host's capture, and on copies of it shaped into the harder cases.</summary>
public class BindPlanTests
{
    private static CliResult DryRun(params string[] args) => CliRunner.OnCapture("vhost", ["bind", .. args, "--dry-run"]);

    [Fact]
    public void A_single_device_alone_in_its_group()
    {
        var r = DryRun("00:02.0");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("""
            plan:
               1. modprobe vfio-pci
               2. modprobe vfio_iommu_type1
               3. write vfio-pci > /sys/bus/pci/devices/0000:00:02.0/driver_override
               4. write 0000:00:02.0 > /sys/bus/pci/drivers/e1000e/unbind
               5. write 0000:00:02.0 > /sys/bus/pci/drivers_probe
               6. check 0000:00:02.0 is bound to vfio-pci
               7. check /dev/vfio/2 exists

            """, r.Stdout);
    }

    [Fact]
    public void A_shared_group_is_refused_without_group()
    {
        var r = DryRun("0000:02:01.0");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("passthru: IOMMU group 8 of 0000:02:01.0 also holds 0000:02:02.0 (e1000): a group passes through whole; add --group to bind them too\n", r.Stderr);
    }

    [Fact]
    public void A_shared_group_is_bound_whole_with_group_and_its_bridge_stays()
    {
        var r = DryRun("02:01.0", "--group");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("""
            IOMMU group 8: binding the whole group (0000:02:01.0, 0000:02:02.0)
            warning: 0000:02:01.0 can only be reset by a bus reset on 0000:01:00.0, which also resets 0000:02:02.0: vfio needs them all free to reset it (pass them together)
            plan:
               1. modprobe vfio-pci
               2. modprobe vfio_iommu_type1
               3. write vfio-pci > /sys/bus/pci/devices/0000:02:01.0/driver_override
               4. write 0000:02:01.0 > /sys/bus/pci/drivers/e1000/unbind
               5. write 0000:02:01.0 > /sys/bus/pci/drivers_probe
               6. check 0000:02:01.0 is bound to vfio-pci
               7. write vfio-pci > /sys/bus/pci/devices/0000:02:02.0/driver_override
               8. write 0000:02:02.0 > /sys/bus/pci/drivers/e1000/unbind
               9. write 0000:02:02.0 > /sys/bus/pci/drivers_probe
              10. check 0000:02:02.0 is bound to vfio-pci
              11. check /dev/vfio/8 exists

            """, r.Stdout);
        // The bridge is named only as the one a reset of 02:01.0 goes through: no step touches it.
        Assert.DoesNotContain("0000:01:00.0", r.Stdout[r.Stdout.IndexOf("plan:", StringComparison.Ordinal)..]);
    }

    [Fact]
    public void Twins_by_ids_are_refused_and_one_by_address_leaves_the_other_alone()
    {
        var r = DryRun("8086:10d3");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("passthru: 8086:10d3 matches 2 functions (0000:00:02.0, 0000:00:03.0): name the ones to bind by address, so an identical device the host uses stays with it\n", r.Stderr);
        var one = DryRun("00:03.0");
        Assert.Contains("0000:00:03.0", one.Stdout);
        Assert.DoesNotContain("0000:00:02.0", one.Stdout);
        Assert.DoesNotContain("new_id", one.Stdout);
    }

    [Fact]
    public void Bridges_are_refused_without_force()
    {
        var r = DryRun("00:05.0");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("passthru: refusing: 0000:00:05.0 is a PCI bridge, which stays with the host (add --force to take it anyway)\n", r.Stderr);
        Assert.Equal("passthru: refusing: 0000:00:00.0 is a host bridge, which stays with the host (add --force to take it anyway)\n", DryRun("00:00.0").Stderr);
    }

    [Fact]
    public void Already_bound_devices_need_nothing_and_the_modules_are_not_reloaded()
    {
        var tree = Repo.CopyCapture("vhost");
        try
        {
            SysfsShaper.Rebind(tree, "0000:00:02.0", "vfio-pci");
            Directory.CreateDirectory(Path.Combine(tree, "sys/module/vfio_pci"));
            Directory.CreateDirectory(Path.Combine(tree, "sys/module/vfio_iommu_type1"));
            var r = CliRunner.Run("bind", "00:02.0", "--dry-run", "--root", tree);
            Assert.Equal("0000:00:02.0 is already bound to vfio-pci\nnothing to do\n", r.Stdout);
            var nvme = CliRunner.Run("bind", "00:04.0", "--dry-run", "--root", tree);
            Assert.DoesNotContain("modprobe", nvme.Stdout);
        }
        finally { Directory.Delete(tree, true); }
    }

    [Fact]
    public void A_pci_stub_device_moves_to_vfio_pci()
    {
        var tree = Repo.CopyCapture("vhost");
        try
        {
            SysfsShaper.Rebind(tree, "0000:00:03.0", "pci-stub");
            var r = CliRunner.Run("bind", "00:03.0", "--dry-run", "--root", tree);
            Assert.Contains("0000:00:03.0 moves from pci-stub to vfio-pci (QEMU's vfio cannot use pci-stub)", r.Stdout);
            Assert.Contains("write 0000:00:03.0 > /sys/bus/pci/drivers/pci-stub/unbind", r.Stdout);
        }
        finally { Directory.Delete(tree, true); }
    }

    [Fact]
    public void The_boot_vga_device_a_mounted_disk_and_the_default_route_are_refused()
    {
        var tree = Repo.CopyCapture("vhost");
        try
        {
            File.WriteAllText(Path.Combine(tree, "sys/bus/pci/devices/0000:00:02.0/boot_vga"), "1\n");
            SysfsShaper.NetInterface(tree, "eth1", "0000:00:03.0", defaultRoute: true);
            SysfsShaper.MountedDisk(tree, "nvme0n1", "0000:00:04.0", "/home");
            var r = CliRunner.Run("bind", "00:02.0", "00:03.0", "00:04.0", "--dry-run", "--root", tree);
            Assert.Equal(1, r.ExitCode);
            Assert.Equal("passthru: refusing: 0000:00:02.0 is the boot VGA device: the host's console would go dark; add --release-console to hand the console over with it (taken back when the device is given back), or keep the firmware's framebuffer off it at boot (passthru setup --no-boot-framebuffer); 0000:00:03.0 carries the default route (eth1); 0000:00:04.0 holds mounted file systems (/home) (add --force to take it anyway)\n", r.Stderr);
            var forced = CliRunner.Run("bind", "00:02.0", "00:03.0", "00:04.0", "--dry-run", "--force", "--root", tree);
            Assert.Equal(0, forced.ExitCode);
            Assert.Contains("forced: 0000:00:03.0 carries the default route (eth1)", forced.Stdout);
            Assert.Contains("0000:00:03.0: network interface eth1 goes away while it is bound", forced.Stdout);
        }
        finally { Directory.Delete(tree, true); }
    }

    [Fact]
    public void No_iommu_no_bind()
    {
        var r = CliRunner.OnCapture("devvm", "bind", "00:03.0", "--dry-run");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("passthru: this host has no IOMMU groups (the IOMMU is off or absent), so vfio-pci cannot take devices: see `passthru check`\n", r.Stderr);
    }

    /// <summary>
    /// bind reads only the functions it names and their IOMMU group mates; every decision it makes must be the one
    /// the whole inventory would give, for every function of both captures, alone and with its group, and for IDs.
    /// </summary>
    [Theory]
    [InlineData("vhost")]
    [InlineData("devvm")]
    public void Reading_only_the_named_functions_plans_as_the_whole_inventory_does(string capture)
    {
        var host = new HostRoot(Repo.Capture(capture));
        var all = PciInventory.Load(host);
        var requests = new List<string[]>();
        foreach (var d in all.Devices)
        {
            requests.Add([d.Address.ToString()]);
            requests.Add([$"{d.VendorId:x4}:{d.DeviceId:x4}"]);
        }
        requests.Add([.. all.Devices.Select(d => d.Address.ToString())]);
        requests.Add(["0000:7f:00.0"]);   // no such function
        int planned = 0;
        foreach (var words in requests)
            foreach (bool group in new[] { false, true })
            {
                var selectors = words.Select(DeviceSelector.Parse).ToList();
                var request = new BindRequest(selectors, WholeGroup: group);
                var whole = Outcome(() => BindPlanner.PlanBind(host, all, request));
                var scoped = Outcome(() => BindPlanner.PlanBind(host, PciInventory.LoadFor(host, selectors, groupMates: true), request));
                Assert.Equal(whole, scoped);
                if (!whole.StartsWith("error", StringComparison.Ordinal)) planned++;
            }
        if (capture == "vhost") Assert.True(planned >= 6, $"only {planned} requests were planned: the comparison says little");
    }

    private static string Outcome(Func<BindPlan> plan)
    {
        try { return string.Join("\n", plan().Describe()); }
        catch (UserError e) { return $"error {e.ExitCode}: {e.Message}"; }
    }

    [Fact]
    public void Return_steps_clear_the_override_first_then_leave_vfio_then_probe()
    {
        var original = new FunctionState(PciAddress.Parse("0000:00:02.0"), "e1000e", null, 2);
        Assert.Equal([
            "clear /sys/bus/pci/devices/0000:00:02.0/driver_override",
            "write 0000:00:02.0 > /sys/bus/pci/drivers/vfio-pci/unbind",
            "write 0000:00:02.0 > /sys/bus/pci/drivers_probe",
            "check 0000:00:02.0 is bound to e1000e"],
            BindPlanner.ReturnSteps(original, "vfio-pci", "vfio-pci").Select(s => s.Describe()));
        // Half-way (override written, still on e1000e): only the override needs undoing.
        Assert.Equal(["clear /sys/bus/pci/devices/0000:00:02.0/driver_override", "check 0000:00:02.0 is bound to e1000e"],
            BindPlanner.ReturnSteps(original, "e1000e", "vfio-pci").Select(s => s.Describe()));
    }
}
