using Passthru.Tests.VirtualHost;

namespace Passthru.Tests.Launch;

/// <summary>
/// `passthru run` end to end against the real kernel: the probe guest inside the virtual host sees the passed-through
/// e1000e in its own PCI scan, and the device is back on e1000e afterwards, however the run ends.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host")]
public class VirtualHostRunTests(VirtualHostFixture vm)
{
    private const string Drv = "basename $(readlink /sys/bus/pci/devices/0000:00:02.0/driver)";

    /// <summary>
    /// The device is on e1000e again by the kernel's own account, and the run left nothing for a restore: checked
    /// before each test's `finally` restore, which would otherwise hide a leak.
    /// </summary>
    private void AssertGivenBack()
    {
        Assert.Equal("e1000e", vm.RunOk(Drv).Trim());
        Assert.Equal("nothing to give back: Passthru has no devices bound (journal /run/passthru/state.json)\n", vm.RunOk($"{vm.Passthru} restore --dry-run"));
    }

    /// <summary>The `echo "exit $?"` line, whole: "exit 1" must not be found inside "exit 124" or "exit 137".</summary>
    private static void AssertExit(int code, string stdout) => Assert.Contains($"exit {code}", stdout.Split('\n'));

    [Fact]
    public void The_probe_sees_the_passed_through_e1000e_which_goes_back_after()
    {
        try
        {
            // Behind its own root port at 00:10.0, the device is the guest's 01:00.0.
            var r = vm.Run($"{vm.Passthru} run --kernel {vm.Probe} --memory 128 --device 0000:00:02.0 --expect 'pci 01:00.0 8086:10d3' --timeout 120",
                TimeSpan.FromMinutes(4));
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains("probe: pci 01:00.0 8086:10d3 class 0200", r.Stdout);
            Assert.Contains("[passthru] bound 0000:00:02.0 to vfio-pci (was e1000e)", r.Stderr);
            Assert.Contains("[passthru] gave 0000:00:02.0 back to e1000e", r.Stderr);
            Assert.DoesNotContain("after the guest", r.Stderr);      // the after-guest check found it answering, in D0, on e1000e
            AssertGivenBack();
        }
        finally { vm.Run($"{vm.Passthru} restore"); }
    }

    [Fact]
    public void A_menu_boots_the_probe_which_prints_each_module_as_the_menu_says()
    {
        var output = vm.RunOk($"""
            set -e
            b=/tmp/bf; mkdir -p $b/x86_64/sbin $b/platforms
            cp {vm.Probe} $b/x86_64/sbin/elver; echo cpu > $b/x86_64/sbin/cpu; echo init > $b/x86_64/sbin/init; echo fs > $b/ramfs.cpio.gz
            printf 'timeout 0\ntitle\tBarrelfish\nroot\t(nd)\nkernel\t/x86_64/sbin/elver loglevel=3\n# comment\nmodule\t/x86_64/sbin/cpu loglevel=3\nmodule /x86_64/sbin/init\nmodulenounzip /ramfs.cpio.gz  nospawn list=a,b\n' > $b/platforms/menu.lst.x86_64
            {vm.Passthru} run --menu $b/platforms/menu.lst.x86_64 --memory 128 --expect 'probe: done' --timeout 120
            """, TimeSpan.FromMinutes(4));
        Assert.Contains("probe: cmdline: /tmp/bf/x86_64/sbin/elver loglevel=3", output);
        Assert.Contains("probe: module 00: /tmp/bf/x86_64/sbin/cpu loglevel=3", output);
        Assert.Contains("probe: module 01: /tmp/bf/x86_64/sbin/init", output);
        Assert.Contains("probe: module 02: /tmp/bf/ramfs.cpio.gz nospawn list=a,b", output);
    }

    [Fact]
    public void A_qemu_too_old_for_passthrough_is_refused_before_the_guest_starts_and_the_device_goes_back()
    {
        try
        {
            var r = vm.Run($"""
                printf '#!/bin/sh\necho "QEMU emulator version 4.1.1 (Debian 1:4.1-1)"\n' > /tmp/old-qemu; chmod +x /tmp/old-qemu
                {vm.Passthru} run --qemu /tmp/old-qemu --kernel {vm.Probe} --memory 128 --device 00:02.0 --timeout 60
                echo "exit $?"
                """, TimeSpan.FromMinutes(2));
            AssertExit(1, r.Stdout);
            Assert.Contains("passthru: QEMU 4.1.1 is too old for vfio passthrough as Passthru drives it: install 4.2 or newer", r.Stderr);
            Assert.DoesNotContain("[passthru] starting", r.Stderr);
            Assert.Contains("[passthru] gave 0000:00:02.0 back to e1000e", r.Stderr);
            AssertGivenBack();
        }
        finally { vm.Run($"{vm.Passthru} restore"); }
    }

    [Fact]
    public void Killing_qemu_mid_run_still_gives_the_device_back()
    {
        try
        {
            // The probe halts after its scan when no isa-debug-exit is present; kill QEMU once it is running. Killed
            // mid-line (SeaBIOS's clear-screen sequence ends in none), the guest's output needs a line end before ours.
            var r = vm.Run($"""
                ( while ! pgrep -f '[q]emu-system-x86_64 .* -kernel ' > /dev/null; do sleep 0.2; done; sleep 2; pkill -KILL -x qemu-system-x86 ) &
                {vm.Passthru} run --kernel {vm.Probe} --memory 128 --device 00:02.0 --timeout 120
                status=$?; echo; echo "exit $status"
                """, TimeSpan.FromMinutes(4));
            AssertExit(137, r.Stdout);
            Assert.Contains("[passthru] gave 0000:00:02.0 back to e1000e", r.Stderr);
            AssertGivenBack();
        }
        finally { vm.Run($"{vm.Passthru} restore"); }
    }

    [Fact]
    public void Sigterm_to_passthru_stops_the_guest_and_gives_the_device_back()
    {
        try
        {
            var r = vm.Run($"""
                {vm.Passthru} run --kernel {vm.Probe} --memory 128 --device 00:02.0 --timeout 120 > /tmp/run.out 2> /tmp/run.err &
                p=$!
                while ! pgrep -f '[q]emu-system-x86_64 .* -kernel ' > /dev/null; do sleep 0.2; done; sleep 2
                kill -TERM $p; wait $p; echo "exit $?"; cat /tmp/run.err
                """, TimeSpan.FromMinutes(4));
            AssertExit(130, r.Stdout);
            Assert.Contains("[passthru] interrupted: stopped the guest", r.Stdout);
            Assert.Contains("[passthru] gave 0000:00:02.0 back to e1000e", r.Stdout);
            AssertGivenBack();
        }
        finally { vm.Run($"{vm.Passthru} restore"); }
    }

    [Fact]
    public void A_timeout_without_the_pattern_fails_with_the_last_console_lines_and_gives_back()
    {
        try
        {
            // The nested probe prints its last line after 8-17 s on a loaded 2-core machine (SeaBIOS included, under
            // TCG twice): 60 s leaves it room, where 20 s let the timeout come before the line it checks for.
            var r = vm.Run($"{vm.Passthru} run --kernel {vm.Probe} --memory 128 --device 00:02.0 --expect 'never printed' --timeout 60", TimeSpan.FromMinutes(4));
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("passthru: no /never printed/ within 60 s; last console lines:", r.Stderr);
            Assert.Contains("  | probe: done", r.Stderr);
            Assert.Contains("[passthru] gave 0000:00:02.0 back to e1000e", r.Stderr);
            AssertGivenBack();
        }
        finally { vm.Run($"{vm.Passthru} restore"); }
    }

    /// <summary>
    /// The nested guests' runner (<see cref="VirtualHostFixture.RunGuest"/>) tries a run once more only when QEMU died of
    /// a fault of its own, and only after the device came back: a QEMU that segfaults on every start (a wrapper that
    /// sends itself SIGSEGV once the version probe is answered) is started twice, gives the device back after each, and
    /// the second crash is what the test sees; a QEMU that exits 1 is started once.
    /// </summary>
    [Fact]
    public void A_qemu_that_crashes_is_tried_once_more_after_the_device_came_back_and_a_plain_failure_is_not()
    {
        try
        {
            // passthru asks `-help` and `-version` of the binary before it binds; those go to the real QEMU. A start
            // counts itself, then ends as its wrapper says. The wrappers run as QEMU's own user: the count file is
            // world-writable.
            vm.RunOk("""
                wrapper() { printf '#!/bin/sh\ncase "$*" in *-help*|*-version*) exec qemu-system-x86_64 "$@";; esac\necho start >> /tmp/qemu-starts\n%s\nexit 1\n' "$2" > $1; chmod 755 $1; }
                wrapper /tmp/segv-qemu 'kill -s SEGV $$'; wrapper /tmp/failing-qemu ''
                : > /tmp/qemu-starts; chmod 666 /tmp/qemu-starts
                """);
            var log = new List<string>();
            var crashed = vm.RunGuest($"{vm.Passthru} run --qemu /tmp/segv-qemu --kernel {vm.Probe} --memory 128 --device 00:02.0 --expect 'never' --timeout 60",
                TimeSpan.FromMinutes(3), log.Add);
            Assert.Contains("QEMU died of signal 11 (SIGSEGV) before /never/ showed", crashed.Stderr);
            Assert.Contains("[passthru] gave 0000:00:02.0 back to e1000e", crashed.Stderr);
            Assert.Equal("2", vm.RunOk("wc -l < /tmp/qemu-starts").Trim());
            Assert.Contains(log, l => l.StartsWith("QEMU died of signal 11 in the nested guest; trying the run once more", StringComparison.Ordinal));
            AssertGivenBack();

            vm.RunOk(": > /tmp/qemu-starts");
            log.Clear();
            var failed = vm.RunGuest($"{vm.Passthru} run --qemu /tmp/failing-qemu --kernel {vm.Probe} --memory 128 --device 00:02.0 --expect 'never' --timeout 60",
                TimeSpan.FromMinutes(3), log.Add);
            Assert.Contains("QEMU exited (status 1)", failed.Stderr);
            Assert.Equal("1", vm.RunOk("wc -l < /tmp/qemu-starts").Trim());
            Assert.Empty(log);
            AssertGivenBack();
        }
        finally { vm.Run($"{vm.Passthru} restore"); }
    }
}
