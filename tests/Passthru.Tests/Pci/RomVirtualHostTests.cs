using Passthru.Tests.VirtualHost;

namespace Passthru.Tests.Pci;

/// <summary>
/// `passthru rom` against the real kernel's sysfs `rom`: the GPU stand-in's VGA (QEMU's 1234:1111, SeaBIOS's VGA BIOS
/// as its ROM) in the virtual host with a GPU. The ROM is turned on only while it is read, and nothing is left in the
/// journal; a romfile= of another device is refused by run before anything is bound.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host with a GPU")]
public class RomVirtualHostTests(GpuFixture vm)
{
    private string P => vm.Passthru;
    private const string Rom = "/sys/bus/pci/devices/0000:03:00.0/rom";
    private const string Drv = "drv() { d=$(readlink /sys/bus/pci/devices/$1/driver) && basename \"$d\" || echo none; }; ";

    [Fact]
    public void Rom_reads_the_vga_bios_checks_it_writes_it_and_turns_the_rom_off_again()
    {
        try
        {
            var show = vm.RunOk($"{P} show 03:00.0");
            Assert.Contains("  Option ROM:      128 KiB, the firmware's shadow copy at 0xc0000 (the boot VGA's); `passthru rom 0000:03:00.0` reads and checks it\n", show);

            var r = vm.Run($"{P} rom 03:00.0 -o /tmp/vga.rom");
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains("image 1 at 0x0: legacy x86, ", r.Stdout);
            Assert.Contains(", PCIR 1234:1111, ", r.Stdout);
            Assert.Contains("checksum ok", r.Stdout);
            Assert.Contains("  matches 0000:03:00.0 (1234:1111): a guest's BIOS (SeaBIOS) can start it", r.Stdout);
            Assert.Contains("wrote the ROM (", r.Stdout);

            // The file: 55 aa, and at the header's pointer the PCI data structure "PCIR" for 1234:1111.
            Assert.Equal("55 aa", vm.RunOk("od -An -tx1 -N2 /tmp/vga.rom").Trim());
            Assert.Equal("50 43 49 52 34 12 11 11", vm.RunOk("p=$(od -An -tu2 -j24 -N2 /tmp/vga.rom); od -An -tx1 -j$p -N8 /tmp/vga.rom").Trim());
            // The ROM is off again (the kernel reads nothing from a ROM not turned on), and nothing is left to restore.
            Assert.Equal("0", vm.RunOk($"cat {Rom} 2>/dev/null | wc -c").Trim());
            Assert.Equal("none", vm.RunOk("test -e /run/passthru/state.json && echo journal || echo none").Trim());
            // What -o wrote is a romfile run accepts for this device.
            var check = vm.Run($"{P} rom 03:00.0 --file /tmp/vga.rom");
            Assert.True(check.ExitCode == 0, check.ToString());
        }
        finally { vm.Run($"{P} restore; rm -f /tmp/vga.rom"); }
    }

    [Fact]
    public void Run_refuses_a_romfile_of_another_device_before_anything_is_bound()
    {
        var r = vm.Run($"{P} run --device 03:00.0,romfile=/usr/lib/ipxe/qemu/efi-e1000e.rom --group --kernel {vm.GuestKernel} --timeout 30");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("passthru: romfile /usr/lib/ipxe/qemu/efi-e1000e.rom for 0000:03:00.0: image 1 (legacy x86) at 0x0 is for 8086:10d3 (device list 10d3), "
            + "not for 0000:03:00.0 (1234:1111): a ROM of another device; dump this one's with `passthru rom 0000:03:00.0 -o FILE`\n", r.Stderr);
        Assert.Equal("bochs-drm snd_hda_intel none", vm.RunOk(Drv + "echo $(drv 0000:03:00.0) $(drv 0000:03:00.1) $(test -e /run/passthru/state.json && echo journal || echo none)").Trim());
    }
}
