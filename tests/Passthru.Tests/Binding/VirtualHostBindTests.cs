using Passthru.Tests.VirtualHost;

namespace Passthru.Tests.Binding;

/// <summary>
/// bind, unbind and restore against the real kernel of the virtual host. Every test leaves the devices as it found
/// them (restore in a finally), so they can share one virtual host.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host")]
public class VirtualHostBindTests(VirtualHostFixture vm)
{
    private string P => vm.Passthru;

    /// <summary>A shell function printing a function's driver ("none" when unbound).</summary>
    private const string Drv = "drv() { d=$(readlink /sys/bus/pci/devices/$1/driver) && basename \"$d\" || echo none; }; ";

    private string Drivers(params string[] addresses) =>
        vm.RunOk(Drv + string.Join("; ", addresses.Select(a => $"echo \"{a} $(drv {a})\""))).Trim();

    private void RestoreAll() => vm.Run($"{P} restore --all");

    [Fact]
    public void Bind_hands_the_e1000e_to_vfio_pci_and_restore_gives_it_back_with_its_interface()
    {
        try
        {
            var ifaceBefore = vm.RunOk("ls /sys/bus/pci/devices/0000:00:02.0/net").Trim();
            var bind = vm.Run($"{P} bind 0000:00:02.0");
            Assert.True(bind.ExitCode == 0, bind.ToString());
            Assert.Contains("bound 0000:00:02.0 to vfio-pci (was e1000e); IOMMU group 2: /dev/vfio/2", bind.Stdout);
            Assert.Equal("0000:00:02.0 vfio-pci\n0000:00:03.0 e1000e", Drivers("0000:00:02.0", "0000:00:03.0")); // the twin stays
            vm.RunOk("test -c /dev/vfio/2");
            Assert.NotEqual(0, vm.Run($"ls /sys/class/net/{ifaceBefore}").ExitCode);          // its interface is gone
            Assert.Contains("IOMMU group 2: viable", vm.RunOk($"{P} list --groups"));

            var restore = vm.Run($"{P} restore");
            Assert.True(restore.ExitCode == 0, restore.ToString());
            Assert.Contains("gave 0000:00:02.0 back to e1000e", restore.Stdout);
            Assert.Equal("0000:00:02.0 e1000e", Drivers("0000:00:02.0"));
            Assert.Equal(ifaceBefore, vm.RunOk("ls /sys/bus/pci/devices/0000:00:02.0/net").Trim()); // and it is back
            Assert.Equal("(null)", vm.RunOk("cat /sys/bus/pci/devices/0000:00:02.0/driver_override").Trim());
        }
        finally { RestoreAll(); }
    }

    [Fact]
    public void A_shared_group_is_refused_without_group_bound_whole_with_it_and_restored_whole()
    {
        try
        {
            var refused = vm.Run($"{P} bind 02:01.0");
            Assert.Equal(2, refused.ExitCode);
            Assert.Equal("0000:02:01.0 e1000\n0000:02:02.0 e1000", Drivers("0000:02:01.0", "0000:02:02.0"));

            var bound = vm.Run($"{P} bind 02:01.0 --group");
            Assert.True(bound.ExitCode == 0, bound.ToString());
            Assert.Equal("0000:01:00.0 none\n0000:02:01.0 vfio-pci\n0000:02:02.0 vfio-pci", Drivers("0000:01:00.0", "0000:02:01.0", "0000:02:02.0"));
            Assert.Contains("IOMMU group 8: viable", vm.RunOk($"{P} list --groups"));

            vm.RunOk($"{P} unbind 02:01.0 --group");
            Assert.Equal("0000:02:01.0 e1000\n0000:02:02.0 e1000", Drivers("0000:02:01.0", "0000:02:02.0"));
        }
        finally { RestoreAll(); }
    }

    [Fact]
    public void A_step_the_kernel_refuses_rolls_everything_back()
    {
        // vfio-pci will not take a bridge: with --force the plan goes ahead, the NVMe controller is moved first, then
        // the root port's probe fails for real. Neither may be left without its driver.
        try
        {
            var r = vm.Run($"{P} bind --force 00:04.0 00:05.0");
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("passthru: check 0000:00:05.0 is bound to vfio-pci failed: 0000:00:05.0 is bound to no driver, not vfio-pci; rolled back: gave 0000:00:04.0 to nvme, 0000:00:05.0 to pcieport", r.Stderr);
            Assert.Equal("0000:00:04.0 nvme\n0000:00:05.0 pcieport", Drivers("0000:00:04.0", "0000:00:05.0"));
            Assert.Equal("gone", vm.RunOk("test -e /run/passthru/state.json && echo left || echo gone").Trim());
        }
        finally { RestoreAll(); }
    }

    [Fact]
    public void A_module_that_cannot_load_stops_the_bind_before_any_device_changes()
    {
        // The chroot's /lib/modules is the virtual host's writable overlay: hide vfio_iommu_type1 for this test.
        const string hide = "m=$(modprobe -n -v vfio_iommu_type1 | awk '/insmod/ {m=$2} END {print m}'); rmmod vfio_pci vfio_iommu_type1 vfio 2>/dev/null; mv \"$m\" /tmp/hidden.ko && echo \"$m\" > /tmp/hidden.path";
        const string unhide = "test -f /tmp/hidden.path && mv /tmp/hidden.ko \"$(cat /tmp/hidden.path)\" && rm /tmp/hidden.path";
        try
        {
            vm.RunOk(hide);
            var r = vm.Run($"{P} bind 00:02.0");
            Assert.Equal(1, r.ExitCode);
            Assert.StartsWith("passthru: modprobe vfio_iommu_type1 failed: modprobe vfio_iommu_type1: ", r.Stderr);
            Assert.EndsWith("; nothing had been changed\n", r.Stderr);
            Assert.Equal("0000:00:02.0 e1000e", Drivers("0000:00:02.0"));
        }
        finally { vm.Run(unhide); RestoreAll(); }
    }

    [Fact]
    public void Kill_9_at_any_moment_of_a_bind_then_restore_returns_every_device()
    {
        // The moments are states of the host, polled with shell builtins while the bind of group 8 runs: a bind takes a
        // few hundred milliseconds here, too short for fixed delays to land between its writes. Each kill either lands
        // at that moment or, if the bind got past it unseen, after the bind: restore must give everything back either way.
        const string a = "/sys/bus/pci/devices/0000:02:01.0", b = "/sys/bus/pci/devices/0000:02:02.0";
        var moments = new (string Name, string Until)[]
        {
            ("at once", "true"),
            ("journal written", "[ -e /run/passthru/state.json ]"),
            ("first override set", $"read -r o < {a}/driver_override; [ \"$o\" = vfio-pci ]"),
            ("first unbound", $"[ ! -e {a}/driver ]"),
            ("first on vfio-pci", $"[ -e /sys/bus/pci/drivers/vfio-pci/0000:02:01.0 ]"),
            ("second unbound", $"[ ! -e {b}/driver ]"),
            ("second on vfio-pci", $"[ -e /sys/bus/pci/drivers/vfio-pci/0000:02:02.0 ]"),
        };
        try
        {
            vm.RunOk($"{P} bind 02:01.0 --group && {P} restore");   // modules loaded: every round binds the same way
            int midway = 0;
            foreach (var (name, until) in moments)
            {
                var killed = vm.RunOk($"""
                    {P} bind 02:01.0 --group > /dev/null 2>&1 & p=$!
                    until {until}; do kill -0 $p 2>/dev/null || break; done
                    kill -9 $p 2>/dev/null && echo killed || echo finished; wait $p; true
                    """).Trim();
                if (killed == "killed") midway++;
                var restore = vm.Run($"{P} restore");
                Assert.True(restore.ExitCode == 0, $"after a kill ({name}): {restore}");
                Assert.Equal("0000:02:01.0 e1000\n0000:02:02.0 e1000", Drivers("0000:02:01.0", "0000:02:02.0"));
                Assert.Equal("(null)\n(null)", vm.RunOk("cat /sys/bus/pci/devices/0000:02:0[12].0/driver_override").Trim());
                Assert.Equal("gone", vm.RunOk("test -e /run/passthru/state.json && echo left || echo gone").Trim());
            }
            Assert.True(midway >= 4, $"only {midway} of {moments.Length} kills landed during a bind");
        }
        finally { RestoreAll(); }
    }

    [Fact]
    public void Two_binds_at_once_do_not_interleave_or_lose_a_journal_entry()
    {
        try
        {
            vm.RunOk($"{P} bind 00:02.0 > /tmp/a.log 2>&1 & {P} bind 00:03.0 > /tmp/b.log 2>&1 & wait");
            Assert.Equal("0000:00:02.0 vfio-pci\n0000:00:03.0 vfio-pci", Drivers("0000:00:02.0", "0000:00:03.0"));
            var journal = vm.RunOk("grep -c '\"address\"' /run/passthru/state.json").Trim();
            Assert.Equal("2", journal);
            vm.RunOk($"{P} restore");
            Assert.Equal("0000:00:02.0 e1000e\n0000:00:03.0 e1000e", Drivers("0000:00:02.0", "0000:00:03.0"));
        }
        finally { RestoreAll(); }
    }

    [Fact]
    public void Not_root_reads_but_does_not_write()
    {
        const string nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups";
        var bind = vm.Run($"{nobody} {P} bind 00:02.0");
        Assert.Equal(1, bind.ExitCode);
        Assert.Equal("passthru: bind changes which driver holds a device: run it as root (sudo passthru bind ...); nothing was changed\n", bind.Stderr);
        Assert.Equal("0000:00:02.0 e1000e", Drivers("0000:00:02.0"));
        var list = vm.Run($"{nobody} {P} list --class net");
        Assert.Equal(0, list.ExitCode);
        Assert.Contains("0000:00:02.0 Ethernet controller", list.Stdout);
    }

    [Fact]
    public void A_device_on_pci_stub_moves_to_vfio_pci_and_goes_back_to_pci_stub()
    {
        const string toStub = "modprobe pci-stub && echo pci-stub > /sys/bus/pci/devices/0000:00:03.0/driver_override && echo 0000:00:03.0 > /sys/bus/pci/drivers/e1000e/unbind && echo 0000:00:03.0 > /sys/bus/pci/drivers_probe";
        const string toE1000e = "echo > /sys/bus/pci/devices/0000:00:03.0/driver_override; d=$(readlink /sys/bus/pci/devices/0000:00:03.0/driver) && echo 0000:00:03.0 > /sys/bus/pci/drivers/$(basename $d)/unbind; echo 0000:00:03.0 > /sys/bus/pci/drivers_probe";
        try
        {
            vm.RunOk(toStub);
            Assert.Equal("0000:00:03.0 pci-stub", Drivers("0000:00:03.0"));
            var bind = vm.Run($"{P} bind 00:03.0");
            Assert.Contains("0000:00:03.0 moves from pci-stub to vfio-pci", bind.Stdout);
            Assert.Equal("0000:00:03.0 vfio-pci", Drivers("0000:00:03.0"));
            vm.RunOk($"{P} restore");
            Assert.Equal("0000:00:03.0 pci-stub", Drivers("0000:00:03.0"));
        }
        finally { RestoreAll(); vm.Run(toE1000e); }
        Assert.Equal("0000:00:03.0 e1000e", Drivers("0000:00:03.0"));
    }
}
