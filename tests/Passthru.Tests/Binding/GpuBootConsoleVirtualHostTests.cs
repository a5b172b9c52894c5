using Passthru.Tests.VirtualHost;

namespace Passthru.Tests.Binding;

/// <summary>
/// A GPU that is the host's boot display, against the real kernel (issue #22): UEFI's GOP framebuffer, which efifb
/// holds inside the VGA's BAR 0 with the framebuffer console on it, as on a desktop whose GPU has no host driver. The
/// real-world failure this prevents: vfio's "BAR 0: can't reserve" when QEMU maps the BAR, and a host console left
/// drawing into a GPU the guest owns. --release-console lets go of the console as journaled steps of the binding
/// engine (vtconsole unbound, efifb's platform device unbound) and the give-back takes it back, also after kill -9.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host with a GPU as boot display")]
public class GpuBootConsoleVirtualHostTests(GpuBootFixture vm)
{
    private const string Gpu = "0000:03:00.0";
    private const string Audio = "0000:03:00.1";

    /// <summary>The host's console as the kernel shows it: efifb's memory in /proc/iomem, its driver, fbcon's vtconsole.</summary>
    private string ConsoleState() => vm.RunOk("""
        echo "iomem: $(grep -c efifb /proc/iomem)"
        echo "efifb driver: $(basename "$(readlink /sys/bus/platform/devices/efi-framebuffer.0/driver)" 2>/dev/null)"
        for v in /sys/class/vtconsole/vtcon*; do grep -q 'frame buffer' $v/name && echo "fbcon bind: $(cat $v/bind)"; done
        echo "vga driver: $(basename "$(readlink /sys/bus/pci/devices/0000:03:00.0/driver)" 2>/dev/null)"
        echo "audio driver: $(basename "$(readlink /sys/bus/pci/devices/0000:03:00.1/driver)" 2>/dev/null)"
        """);

    private const string HostsConsole = "iomem: 1\nefifb driver: efi-framebuffer\nfbcon bind: 1\nvga driver: \naudio driver: snd_hda_intel\n";
    // Debian 12's kernel, like Linux 6.2 and later, has vfio-pci remove a firmware framebuffer from a VGA device it takes
    // (and fbcon its virtual terminal with it): after the give-back the GPU is free, and the console is not back.
    private const string ConsoleGone = "iomem: 0\nefifb driver: \nvga driver: \naudio driver: snd_hda_intel\n";

    private void AssertNothingHeld() =>
        Assert.Equal("nothing to give back: Passthru has no devices bound (journal /run/passthru/state.json)\n", vm.RunOk($"{vm.Passthru} restore --dry-run"));

    /// <summary>
    /// One boot's story, in order (the kernel removes efifb for good the first time vfio-pci takes the GPU): show and
    /// check find efifb in BAR 0; run without --release-console is refused in one line with nothing changed; run with it
    /// journals the console's release, the guest gets the VGA and its audio as functions 0 and 1 of one device and vfio
    /// reserves BAR 0 (no "can't reserve"); kill -9 of passthru and QEMU, then restore: everything back, the journal
    /// empty, and the give-back says where the console went; a second run, to its end, gives the pair back by itself.
    /// </summary>
    [Fact]
    public void The_boot_gpu_passes_with_its_audio_once_the_console_lets_go_and_everything_goes_back_after_kill_9()
    {
        try
        {
            Assert.Equal(HostsConsole, ConsoleState());
            Assert.Contains("efifb (efi-framebuffer.0, driver efi-framebuffer) holds c0000000-c03e7fff in 0000:03:00.0's BAR 0", vm.RunOk($"{vm.Passthru} show {Gpu}"));
            Assert.Contains("NOTE  Boot framebuffer        efifb", vm.Run($"{vm.Passthru} check").Stdout);

            var refused = vm.Run($"{vm.Passthru} run --kernel {vm.Probe} --memory 128 --device {Gpu} --all-functions --timeout 60");
            Assert.Equal(1, refused.ExitCode);
            var line = Assert.Single(refused.Stderr.Trim().Split('\n'));
            Assert.Contains($"{Gpu} is the boot VGA device", line);
            Assert.Contains("efifb (efi-framebuffer.0, driver efi-framebuffer) holds c0000000-c03e7fff", line);
            Assert.Contains("--release-console", line);
            Assert.Equal(HostsConsole, ConsoleState());
            AssertNothingHeld();

            var held = vm.Run($$"""
                dmesg -C
                {{vm.Passthru}} run --kernel {{vm.Probe}} --memory 128 --device {{Gpu}} --all-functions --release-console --timeout 600 > /tmp/gpu-run.out 2>&1 &
                run=$!
                for i in $(seq 900); do grep -q 'probe: pci 01:00.1' /tmp/gpu-run.out && break; sleep 0.2; done
                cat /tmp/gpu-run.out
                echo "--- journal"; cat /run/passthru/state.json
                echo "--- cant reserve: $(dmesg | grep -c "can't reserve")"
                # (By pid: a pattern for passthru's command line would match this script's own shell too.)
                kill -KILL $run; pkill -KILL -f '[q]emu-system-x86_64 .* -kernel '
                # Its end takes a while (vfio resets the devices as QEMU's descriptors close).
                for i in $(seq 300); do pgrep -f '[q]emu-system-x86_64 .* -kernel ' > /dev/null || break; sleep 0.2; done
                """, TimeSpan.FromMinutes(5));
            Assert.Contains("probe: pci 01:00.0 1234:1111 class 0300", held.Stdout); // functions 0 and 1 of one device
            Assert.Contains("probe: pci 01:00.1 8086:2668 class 0403", held.Stdout);
            Assert.DoesNotContain("probe: pci 00:01.0 1234:1111", held.Stdout);    // and no emulated VGA beside it
            Assert.Contains("\"kind\": \"framebuffer\"", held.Stdout);
            Assert.Contains("\"name\": \"efi-framebuffer.0\"", held.Stdout);
            Assert.Contains("\"kind\": \"vtconsole\"", held.Stdout);
            Assert.Contains("--- cant reserve: 0", held.Stdout);

            var restored = vm.RunOk($"{vm.Passthru} restore");
            Assert.Contains($"gave {Audio} back to snd_hda_intel", restored);
            Assert.Contains("efi-framebuffer.0 is gone: the kernel removed it when vfio-pci took the GPU", restored);
            Assert.Equal(ConsoleGone, ConsoleState());
            AssertNothingHeld();

            var run = vm.Run($"{vm.Passthru} run --kernel {vm.Probe} --memory 128 --device {Gpu} --all-functions --release-console --expect 'pci 01:00.1 8086:2668' --timeout 150",
                TimeSpan.FromMinutes(4));
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.Contains($"[passthru] gave {Audio} back to snd_hda_intel", run.Stderr);
            Assert.Equal(ConsoleGone, ConsoleState());
            AssertNothingHeld();
        }
        finally { vm.Run($"{vm.Passthru} restore"); }
    }
}
