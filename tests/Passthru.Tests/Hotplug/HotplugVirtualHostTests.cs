using System.Text.RegularExpressions;
using Passthru.Tests.VirtualHost;

namespace Passthru.Tests.Hotplug;

/// <summary>
/// attach, detach and guests against the real kernel and a real QEMU in the virtual host. The guest is the probe,
/// which prints its PCI scan and then halts with interrupts off: QEMU and its hot-plug ports are real, but no OS
/// answers an unplug request, which is what a guest that ignores one looks like. The Linux guest, whose driver uses
/// a hot-plugged device, is in <see cref="HotplugLinuxGuestTests"/>.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host")]
public partial class HotplugVirtualHostTests(VirtualHostFixture vm)
{
    private string P => vm.Passthru;
    private string Driver(string address) => vm.RunOk($"basename $(readlink /sys/bus/pci/devices/{address}/driver)").Trim();

    /// <summary>Starts the probe under `passthru run --name` in the background; returns once QEMU runs (its pid is recorded).</summary>
    private void StartProbe(string name, string options = "")
    {
        vm.RunOk($"({P} run --kernel {vm.Probe} --memory 64 --name {name} {options} > /tmp/{name}.out 2>&1 &)");
        // QEMU has started once its control socket exists (and the run records its pid just before).
        vm.RunOk($"for i in $(seq 300); do [ -S /run/passthru/guests/{name}.qmp ] && exit 0; sleep 0.5; done; cat /tmp/{name}.out; exit 1", TimeSpan.FromMinutes(4));
    }

    /// <summary>Kills the guest's QEMU (-9, as a crash would) and waits for its run to end.</summary>
    private string KillGuest(string name)
    {
        vm.Run($"kill -9 $({P} guests --json | sed -n 's/.*\"qemu_pid\": \\([0-9]*\\).*/\\1/p' | head -n 1)");
        vm.RunOk($"for i in $(seq 120); do pgrep -f '[p]assthru run --kernel .* --name {name}' > /dev/null || exit 0; sleep 0.5; done; exit 1", TimeSpan.FromMinutes(2));
        return vm.RunOk($"cat /tmp/{name}.out");
    }

    private void CleanUp()
    {
        vm.Run($"pkill -9 -f '[q]emu-system-x86_64'; sleep 2; {P} guests; {P} restore");
    }

    [Fact]
    public void Attach_puts_the_device_on_the_guests_bus_and_a_guest_that_ignores_detach_keeps_it_until_it_ends()
    {
        try
        {
            StartProbe("hp1");
            Assert.Contains("hp1", vm.RunOk($"{P} guests"));
            var dry = vm.RunOk($"{P} attach hp1 00:02.0 --dry-run");
            Assert.Contains("write 0000:00:02.0 > /sys/bus/pci/drivers/e1000e/unbind", dry);
            Assert.Contains("{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"vfio-pci\",\"host\":\"0000:00:02.0\",\"id\":\"hostdev-0000-00-02-0\",\"bus\":\"hp0\",\"addr\":\"0.0\"}}", dry);
            Assert.Equal("e1000e", Driver("0000:00:02.0")); // --dry-run changed nothing

            var attached = vm.RunOk($"{P} attach hp1 00:02.0");
            Assert.Contains("bound 0000:00:02.0 to vfio-pci (was e1000e)", attached);
            // Confirmed by query-pci: the first spare port is the guest's 00:10.0, its secondary bus 01.
            Assert.Matches(@"attached 0000:00:02\.0 to guest 'hp1' behind hp0 \(guest bus 01, slot 00, as hostdev-0000-00-02-0\)", attached);
            Assert.Equal("vfio-pci", Driver("0000:00:02.0"));
            Assert.Matches(@"hp1 +\d+ +0000:00:02\.0 \(hp0, attached\) +hp1", vm.RunOk($"{P} guests"));
            var json = vm.RunOk($"{P} guests --json");
            Assert.Contains("\"address\": \"0000:00:02.0\"", json);
            Assert.Contains("\"attached\": true", json);

            // The probe has no OS to accept the unplug: a clear failure, and the device stays with the guest.
            var detach = vm.Run($"{P} detach hp1 00:02.0 --timeout 5");
            Assert.Equal(1, detach.ExitCode);
            Assert.Equal("passthru: guest 'hp1' did not let go of 0000:00:02.0 within 5 s: its OS must accept the unplug request (a guest without PCIe hot-plug support, "
                + "or one that is hung, ignores it); the device stays with the guest and is given back when it ends (--timeout waits longer)\n", detach.Stderr);
            Assert.Equal("vfio-pci", Driver("0000:00:02.0"));
            Assert.Contains("0000:00:02.0 (hp0, attached)", vm.RunOk($"{P} guests"));

            // However the guest ends, what was attached goes back with it.
            var run = KillGuest("hp1");
            Assert.Contains("[passthru] gave 0000:00:02.0 back to e1000e", run);
            Assert.Equal("e1000e", Driver("0000:00:02.0"));
            Assert.Contains("no running guests", vm.RunOk($"{P} guests"));
            Assert.Contains("nothing to give back", vm.RunOk($"{P} restore"));
        }
        finally { CleanUp(); }
    }

    [Fact]
    public void A_guest_without_hot_plug_ports_or_without_a_free_one_is_refused_and_nothing_is_bound()
    {
        try
        {
            StartProbe("noports", "--hotplug-slots 0");
            var r = vm.Run($"{P} attach noports 00:02.0");
            Assert.Equal("passthru: guest 'noports' has no hot-plug ports (machine q35, started with --hotplug-slots 0): start it on q35 with --hotplug-slots N (the default is 2)\n", r.Stderr);
            Assert.Equal(1, r.ExitCode);
            Assert.Equal("e1000e", Driver("0000:00:02.0"));

            StartProbe("oneport", "--hotplug-slots 1");
            vm.RunOk($"{P} attach oneport 00:02.0");
            r = vm.Run($"{P} attach oneport 00:03.0");
            Assert.Equal(1, r.ExitCode);
            Assert.Equal("passthru: guest 'oneport' has no free hot-plug port for 0000:00:03.0: its 1 port holds 0000:00:02.0 (hp0); detach one first, or start the guest with more --hotplug-slots\n", r.Stderr);
            Assert.Equal("e1000e", Driver("0000:00:03.0"));

            // A device one guest holds is not another's to take; a name nobody runs is said so.
            r = vm.Run($"{P} attach noports 00:02.0");
            Assert.Equal("passthru: 0000:00:02.0 belongs to guest 'oneport': `passthru detach oneport 0000:00:02.0` first\n", r.Stderr);
            r = vm.Run($"{P} attach nosuch 00:02.0");
            Assert.Equal(2, r.ExitCode);
            Assert.Equal("passthru: no guest named 'nosuch' is running (running: noports, oneport); `passthru run --name nosuch ...` starts one\n", r.Stderr);
            r = vm.Run($"{P} detach oneport 00:03.0");
            Assert.Equal("passthru: guest 'oneport' does not hold 00:03.0 (it holds 0000:00:02.0)\n", r.Stderr);
            // A second guest by a running guest's name.
            r = vm.Run($"{P} run --kernel {vm.Probe} --memory 64 --name oneport --timeout 5");
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("passthru: a guest named 'oneport' is already running", r.Stderr);
        }
        finally { CleanUp(); }
        Assert.Equal("e1000e", Driver("0000:00:02.0"));
    }

    [Fact]
    public void Qemus_refusal_is_quoted_and_explained_and_a_failed_attach_gives_the_device_back()
    {
        try
        {
            StartProbe("refuse");
            // Someone else holds the group of a device the user bound: QEMU cannot open it, and says so.
            vm.RunOk($"{P} bind 00:03.0");
            vm.RunOk("(exec 3<>/dev/vfio/3; exec sleep 60) > /dev/null 2>&1 &");
            var r = vm.Run($"{P} attach refuse 00:03.0");
            Assert.Equal(1, r.ExitCode);
            Assert.Matches(@"^passthru: QEMU refused to add 0000:00:03\.0 to guest 'refuse': "".*/dev/vfio/3: Device or resource busy"" \(IOMMU group 3 is already open by sleep \(pid \d+\).*\)\n$", r.Stderr);
            Assert.Equal("vfio-pci", Driver("0000:00:03.0"));          // the user's bind stands: attach did not make it
            Assert.DoesNotContain("0000:00:03.0", vm.RunOk($"{P} guests"));
            vm.Run("pkill -x sleep");

            // A guest whose control socket another client holds: attach binds, cannot get through, gives the device back.
            // (Python starts slowly under emulation: wait until it holds the connection, which QEMU greeted.)
            vm.RunOk("rm -f /tmp/qmp-holder; (/usr/bin/python3 -u -c 'import socket,time; s=socket.socket(socket.AF_UNIX); s.connect(\"/run/passthru/guests/refuse.qmp\"); s.recv(100); print(\"held\"); time.sleep(40)' > /tmp/qmp-holder 2>&1 &)");
            vm.RunOk("for i in $(seq 120); do grep -q held /tmp/qmp-holder && exit 0; sleep 0.5; done; cat /tmp/qmp-holder; exit 1", TimeSpan.FromMinutes(2));
            r = vm.Run($"{P} attach refuse 00:02.0");
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("bound 0000:00:02.0 to vfio-pci (was e1000e)", r.Stdout);
            Assert.Contains("gave 0000:00:02.0 back to e1000e", r.Stdout);
            Assert.Equal("passthru: the guest's control socket /run/passthru/guests/refuse.qmp did not answer within 10 s: another passthru attach or detach is talking to it (QEMU serves one at a time); try again; gave 0000:00:02.0 back\n", r.Stderr);
            Assert.Equal("e1000e", Driver("0000:00:02.0"));
            Assert.Contains("refuse", vm.RunOk($"{P} guests"));
            Assert.DoesNotContain("0000:00:02.0", vm.RunOk($"{P} guests"));
        }
        finally { CleanUp(); }
    }

    [Fact]
    public void A_guest_killed_with_its_run_is_cleaned_up_by_guests()
    {
        try
        {
            StartProbe("orphan");
            vm.RunOk($"{P} attach orphan 00:02.0");
            // kill -9 both: nobody watches the guest any more, and its device is still on vfio-pci.
            vm.Run("pkill -9 -f '[p]assthru run --kernel .* --name orphan'; pkill -9 -f '[q]emu-system-x86_64 .* -name orphan '; sleep 1");
            Assert.Equal("vfio-pci", Driver("0000:00:02.0"));
            var r = vm.RunOk($"{P} guests");
            Assert.Contains("guest 'orphan' has ended: gave 0000:00:02.0 back to e1000e", r);
            Assert.Contains("no running guests", r);
            Assert.Equal("e1000e", Driver("0000:00:02.0"));
        }
        finally { CleanUp(); }
    }
}
