using Passthru.Tests.VirtualHost;
using Xunit.Abstractions;

namespace Passthru.Tests.Launch;

/// <summary>
/// The GPU stand-in given whole to a real Linux guest nested in the virtual host (issue #22 item 7): the guest sees a
/// display controller and an audio controller as functions 0 and 1 of one device, its own bochs-drm driver binds the
/// VGA function and takes memory in its BARs, and it reads the option ROM through its own sysfs (55 aa). The host's
/// side: the boot VGA, which bochs-drm draws the framebuffer console on, goes with --release-console (vtcon0 let go
/// first) and everything comes back after: bochs-drm and snd_hda_intel, and fbcon on the GPU's framebuffer again.
/// Minutes under emulation inside emulation.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host with a GPU")]
public class GpuLinuxGuestTests(GpuFixture vm, ITestOutputHelper output)
{
    [Fact]
    public void The_guests_own_driver_takes_the_gpu_and_reads_its_rom_and_the_host_gets_everything_back()
    {
        try
        {
            var r = vm.RunGuest($"{vm.Passthru} run --kernel {vm.GuestKernel} --initrd {vm.GuestInitrd} --append 'console=ttyS0 quiet panic=-1' "
                + "--memory 256 --device 0000:03:00.0 --all-functions --release-console --expect 'guest: done' --timeout 900", TimeSpan.FromMinutes(17), output.WriteLine);
            Assert.True(r.ExitCode == 0, r.ToString());
            // Functions 0 and 1 of one device behind the guest's root port.
            Assert.Contains("guest: pci 0000:01:00.0 1234:1111 class 0300", r.Stdout);
            Assert.Contains("guest: pci 0000:01:00.1 8086:2668 class 0403", r.Stdout);
            Assert.DoesNotContain("guest: pci 0000:00:01.0 1234:1111", r.Stdout); // no emulated VGA beside it
            Assert.Contains("guest: gpu 0000:01:00.0 driver=bochs-drm fb=fb0", r.Stdout);
            Assert.Matches(@"guest: gpu 0000:01:00\.0 bar memory [0-9a-f]+-[0-9a-f]+ held by bochs-drm", r.Stdout);
            var gpu = string.Join('\n', r.Stdout.Split('\n').Where(l => l.Contains("guest: gpu")));
            Assert.True(System.Text.RegularExpressions.Regex.IsMatch(gpu, @"guest: gpu 0000:01:00\.0 rom 55aa size [1-9][0-9]*"), gpu);
            Assert.Contains("[passthru] gave 0000:03:00.0 back to bochs-drm", r.Stderr);
            Assert.Contains("[passthru] gave 0000:03:00.1 back to snd_hda_intel", r.Stderr);
            Assert.Equal("bochs-drm snd_hda_intel 1\n", vm.RunOk("""
                echo "$(basename $(readlink /sys/bus/pci/devices/0000:03:00.0/driver)) $(basename $(readlink /sys/bus/pci/devices/0000:03:00.1/driver)) $(cat /sys/class/vtconsole/vtcon0/bind)"
                """));
            Assert.Equal("nothing to give back: Passthru has no devices bound (journal /run/passthru/state.json)\n", vm.RunOk($"{vm.Passthru} restore --dry-run"));
        }
        finally { vm.Run($"{vm.Passthru} restore"); }
    }
}
