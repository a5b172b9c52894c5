using Passthru.Binding;
using Passthru.Host;
using Passthru.Pci;
using Passthru.Tests.Pci;
using Passthru.Tests.Support;

namespace Passthru.Tests.Binding;

/// <summary>
/// Reading a ROM through sysfs is a custody transaction: `echo 1 > rom` journaled before the write, `echo 0 > rom`
/// however the read went, and a kill in between put right by restore. On a scratch copy of the GPU virtual host's
/// capture, whose `rom` is a plain file that a stand-in kernel (<see cref="HostRoot.AfterWrite"/>) fills with the ROM
/// when it is turned on; the real attribute is read in the virtual host (RomVirtualHostTests).
/// </summary>
public sealed class RomReadTests : IDisposable
{
    private readonly string _tree = Repo.CopyCapture("vhost-gpu");
    private string StateDir => Path.Combine(_tree, "run/passthru");
    private static readonly PciAddress Vga = PciAddress.Parse("0000:03:00.0");
    private string Rom => Path.Combine(_tree, "sys/bus/pci/devices/0000:03:00.0/rom");
    private readonly List<string> _writes = [];

    public RomReadTests()
    {
        Directory.CreateDirectory(StateDir);
        File.WriteAllText(Rom, "");
    }

    public void Dispose() => Directory.Delete(_tree, true);

    /// <summary>A kernel whose ROM reads as <paramref name="content"/> while on (and the journal already says so).</summary>
    private HostRoot Kernel(byte[] content) => new(_tree)
    {
        AfterWrite = (path, value) =>
        {
            if (!path.EndsWith("/rom", StringComparison.Ordinal)) return;
            _writes.Add(value);
            if (value == "1")
            {
                Assert.Equal([Vga], Journal.Load(StateDir).Roms); // journaled before the write
                File.WriteAllBytes(Rom, content);
            }
        },
    };

    [Fact]
    public void The_rom_is_turned_on_read_and_turned_off_with_nothing_left_in_the_journal()
    {
        var image = RomImages.Legacy(0x1234, 0x1111, blocks: 2);
        byte[] bytes;
        using (var custody = Custody.Take(Kernel(image), StateDir)) bytes = custody.ReadRom(Vga);
        Assert.Equal(image, bytes);
        Assert.Equal(["1", "0"], _writes);
        Assert.Equal("0", File.ReadAllText(Rom));
        Assert.False(File.Exists(Path.Combine(StateDir, Journal.FileName)));
    }

    [Fact]
    public void An_empty_read_is_refused_and_the_rom_is_still_turned_off()
    {
        using var custody = Custody.Take(Kernel([]), StateDir);
        var e = Assert.Throws<UserError>(() => custody.ReadRom(Vga));
        Assert.StartsWith("0000:03:00.0's ROM reads as nothing: the kernel could not read it from the device", e.Message);
        Assert.Contains("run --device 0000:03:00.0,romfile=FILE", e.Message);
        Assert.Equal(["1", "0"], _writes);
        Assert.Empty(Journal.Load(StateDir).Roms);
    }

    [Fact]
    public void A_kill_between_on_and_off_leaves_restore_the_rom_to_turn_off()
    {
        var host = new HostRoot(_tree) { AfterWrite = (path, value) => { if (path.EndsWith("/rom", StringComparison.Ordinal) && value == "1") throw new KilledHere(); } };
        using (var custody = Custody.Take(host, StateDir)) Assert.Throws<KilledHere>(() => custody.ReadRom(Vga));
        Assert.Equal("1", File.ReadAllText(Rom));
        Assert.Equal([Vga], Journal.Load(StateDir).Roms);

        var dry = CliRunner.Run("restore", "--dry-run", "--root", _tree);
        Assert.Equal(["plan (give back):", "   1. write 0 > /sys/bus/pci/devices/0000:03:00.0/rom"], dry.Lines);
        var r = CliRunner.Run("restore", "--root", _tree);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["turned the ROM of 0000:03:00.0 off again (0 > /sys/bus/pci/devices/0000:03:00.0/rom)"], r.Lines);
        Assert.Equal("0", File.ReadAllText(Rom));
        Assert.False(File.Exists(Path.Combine(StateDir, Journal.FileName)));
    }

    [Fact]
    public void A_function_without_a_rom_attribute_is_refused_before_any_write()
    {
        File.Delete(Rom);
        using var custody = Custody.Take(Kernel([]), StateDir);
        var e = Assert.Throws<UserError>(() => custody.ReadRom(Vga));
        Assert.Equal("0000:03:00.0 has no option ROM: the kernel shows no /sys/bus/pci/devices/0000:03:00.0/rom (the device has no ROM BAR); if its guest needs one, give a ROM file: run --device 0000:03:00.0,romfile=FILE", e.Message);
        Assert.Empty(_writes);
    }

    [Fact]
    public void A_rom_a_running_guest_holds_is_refused_before_any_write()
    {
        // A running guest holding the audio function: the VGA is in its IOMMU group, so the guest's QEMU has it too.
        var guests = Directory.CreateDirectory(Path.Combine(StateDir, "guests")).FullName;
        File.WriteAllText(Path.Combine(guests, "desk.json"), $$"""
            { "name": "desk", "runner_pid": 4241, "qemu_pid": 4242, "qmp": "{{guests}}/desk.qmp", "machine": "q35", "ports": ["pt0"],
              "devices": [ { "address": "0000:03:00.1", "id": "hostdev-0000-03-00-1", "port": "pt0", "attached": false, "bound": [] } ], "bound": [] }
            """);
        Directory.CreateDirectory(Path.Combine(_tree, "proc/4242"));
        File.WriteAllText(Path.Combine(_tree, "proc/4242/cmdline"), $"qemu-system-x86_64\0-qmp\0unix:{guests}/desk.qmp,server=on,wait=off\0");
        var r = CliRunner.Run("rom", "03:00.0", "--root", _tree);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("passthru: 0000:03:00.0 is in use by the running guest 'desk': its ROM cannot be read under it; stop the guest or `passthru detach desk 0000:03:00.0` first\n", r.Stderr);
        Assert.Equal("", File.ReadAllText(Rom));
    }

    private sealed class KilledHere : Exception;
}
