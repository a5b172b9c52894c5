using System.Diagnostics;
using Passthru.Tests.VirtualHost;
using Xunit.Abstractions;

namespace Passthru.Tests.Hotplug;

/// <summary>
/// Hot-plug with a guest whose own driver uses the device: the Linux guest (tests/vm/linux-guest, `guest.watch`)
/// starts with no device, reports PCI functions as they come and go, and gets a DHCP lease over each new interface.
/// `attach` gives it the virtual host's e1000e (its e1000e driver binds it and gets a lease through it), `detach`
/// takes it back onto the host's e1000e, a second attach is undone by killing the guest. Minutes under emulation.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host: real guests")]
public class HotplugLinuxGuestTests(VirtualHostFixture vm, ITestOutputHelper output)
{
    private string P => vm.Passthru;
    private const string Log = "/tmp/hotplug-guest.log";
    private string Driver => vm.RunOk("basename $(readlink /sys/bus/pci/devices/0000:00:02.0/driver)").Trim();

    /// <summary>
    /// Waits until the guest's serial console shows a line (as a fixed string), and says how long it took; stops
    /// waiting as soon as the guest's `passthru run` has ended (its QEMU died: nothing more will come).
    /// </summary>
    private bool TryWaitFor(string line, TimeSpan limit, Stopwatch clock)
    {
        var r = vm.Run($"for i in $(seq {(int)limit.TotalSeconds}); do tr -d '\\r' < {Log} | grep -qF -- '{line}' && exit 0; "
            + "pgrep -f '[p]assthru run --kernel .* --name lg' > /dev/null || exit 2; sleep 1; done; exit 1", limit + TimeSpan.FromMinutes(1));
        output.WriteLine($"{clock.Elapsed.TotalSeconds,6:0} s  {line}{(r.ExitCode == 0 ? "" : r.ExitCode == 2 ? "  (NOT SEEN: the run ended)" : "  (NOT SEEN)")}");
        return r.ExitCode == 0;
    }

    private void WaitFor(string line, TimeSpan limit, Stopwatch clock) =>
        Assert.True(TryWaitFor(line, limit, clock), $"the guest did not print '{line}' within {limit}:\n" + vm.RunOk($"tr -d '\\r' < {Log} | tail -n 30; cat /tmp/hotplug-guest.out"));

    private void StartGuest() =>
        vm.RunOk($"({P} run --kernel {vm.GuestKernel} --initrd {vm.GuestInitrd} --append 'console=ttyS0 quiet guest.watch' --memory 256 "
            + $"--name lg --serial-log {Log} --quiet > /tmp/hotplug-guest.out 2>&1 &)");

    [Fact]
    public void The_guests_e1000e_driver_takes_an_attached_nic_gets_a_lease_through_it_and_lets_go_on_detach()
    {
        var clock = Stopwatch.StartNew();
        try
        {
            StartGuest();
            // QEMU 7.2 nested under TCG has died here before any device was passed: once on its own assertion in
            // msix_table_mmio_write (the guest's root-port MSI-X table: SIGABRT), once (in another test) of SIGSEGV
            // right after SeaBIOS booted. Those are QEMU's faults, outside Passthru: a QEMU that died of a signal it
            // raised on itself while the guest booted (run names it) is started once more, and only then (said in the
            // test's output).
            if (!TryWaitFor("guest: watching PCI", TimeSpan.FromMinutes(15), clock)
                && vm.RunOk("cat /tmp/hotplug-guest.out") is var died && VirtualHostFixture.QemuCrash().IsMatch(died))
            {
                output.WriteLine($"QEMU died while the guest booted: starting it once more. Its run said:\n{died}");
                vm.Run($"{P} guests");
                StartGuest();
            }
            WaitFor("guest: watching PCI", TimeSpan.FromMinutes(15), clock);
            Assert.Contains("lg", vm.RunOk($"{P} guests"));

            var attach = vm.RunOk($"{P} attach lg 00:02.0", TimeSpan.FromMinutes(5));
            Assert.Contains("attached 0000:00:02.0 to guest 'lg' behind hp0", attach);
            // Into an unprivileged QEMU (#24): the new group's node is its user's before device_add.
            Assert.Contains("handed /dev/vfio/2 to passthru-qemu", attach);
            // The guest's kernel finds the device behind its first hot-plug port, its e1000e driver takes it, and the
            // lease comes through it (QEMU's user network is reachable only over the passed-through NIC).
            WaitFor("guest: pci now 0000:01:00.0 8086:10d3 class 0200 driver=e1000e", TimeSpan.FromMinutes(5), clock);
            WaitFor("guest: net eth0 driver=e1000e pci=0000:01:00.0", TimeSpan.FromMinutes(5), clock);
            WaitFor("guest: eth0 has 10.0.2.15/24", TimeSpan.FromMinutes(5), clock);

            var detach = vm.RunOk($"{P} detach lg 00:02.0 --timeout 120", TimeSpan.FromMinutes(4));
            Assert.Contains("detached 0000:00:02.0 from guest 'lg'", detach);
            Assert.Contains("gave 0000:00:02.0 back to e1000e", detach);
            Assert.Contains("gave /dev/vfio/2 back to root:root, mode 0600", detach);
            WaitFor("guest: pci gone 0000:01:00.0", TimeSpan.FromMinutes(3), clock);
            Assert.Equal("e1000e", Driver);

            // Attached again, then the guest is killed: its run gives the device back.
            vm.RunOk($"{P} attach lg 00:02.0", TimeSpan.FromMinutes(5));
            Assert.Equal("vfio-pci", Driver);
            vm.Run($"kill -9 $({P} guests --json | sed -n 's/.*\"qemu_pid\": \\([0-9]*\\).*/\\1/p')");
            vm.RunOk("for i in $(seq 120); do pgrep -f '[p]assthru run --kernel .* --name lg' > /dev/null || exit 0; sleep 1; done; exit 1", TimeSpan.FromMinutes(3));
            Assert.Contains("[passthru] gave 0000:00:02.0 back to e1000e", vm.RunOk("cat /tmp/hotplug-guest.out"));
            Assert.Equal("e1000e", Driver);
            Assert.Contains("no running guests", vm.RunOk($"{P} guests"));
        }
        finally
        {
            output.WriteLine($"total {clock.Elapsed.TotalSeconds:0} s; the guest's lines:");
            output.WriteLine(vm.Run($"tr -d '\\r' < {Log} | grep guest:").Stdout);
            vm.Run($"pkill -9 -f '[q]emu-system-x86_64'; sleep 2; {P} guests; {P} restore");
        }
    }
}
