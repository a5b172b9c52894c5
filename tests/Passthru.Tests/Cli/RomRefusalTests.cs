using Passthru.Tests.Pci;
using Passthru.Tests.Support;

namespace Passthru.Tests.Cli;

/// <summary>
/// `passthru rom`'s and romfile='s refusals as a user meets them, through the published binary: each broken ROM shape,
/// a device without a ROM, a ROM the kernel reads as nothing, a romfile= of another device in run and an export.
/// One line each, naming what is wrong, and nothing left in the journal.
/// </summary>
[Trait(Tier.Name, Tier.Slow)]
public sealed class RomRefusalTests : IDisposable
{
    private static string Binary => PublishedBinary.Path;
    private readonly string _dir = GuestFiles.Directory("passthru-rom-").FullName;
    private readonly string _tree = Repo.CopyCapture("vhost-gpu");
    private string Kernel => Path.Combine(_dir, "kernel.elf");

    public RomRefusalTests() => File.WriteAllText(Kernel, "");

    public void Dispose()
    {
        Directory.Delete(_dir, true);
        Directory.Delete(_tree, true);
    }

    private (int ExitCode, string Stdout, string Stderr) Passthru(params string[] args) =>
        Repo.Exec(Binary, [.. args, "--root", _tree, "--pci-ids", Repo.SystemPciIds]);

    private static void AssertOneLine(string stderr, string mustHold)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, "expected one line, got:\n" + stderr);
        Assert.StartsWith("passthru: ", lines[0]);
        Assert.Contains(mustHold, lines[0]);
        Assert.DoesNotMatch(@"Exception|   at |_[A-Z][a-z]+_|\bIO_|Arg_", lines[0]);
    }

    [Fact]
    public void Every_broken_shape_is_refused_in_one_line_with_exit_2()
    {
        foreach (var shape in OptionRomTests.Shapes)
        {
            var file = Path.Combine(_dir, shape.Replace(' ', '-') + ".rom");
            File.WriteAllBytes(file, OptionRomTests.Broken(shape));
            var r = Passthru("rom", "03:00.0", "--file", file);
            Assert.True(r.ExitCode == 2, $"{shape}: exit {r.ExitCode}\n{r.Stderr}");
            AssertOneLine(r.Stderr, $"--file {file} for 0000:03:00.0");
            Assert.Equal("", r.Stdout);
        }
    }

    [Fact]
    public void A_device_without_a_rom_is_refused()
    {
        var r = Passthru("rom", "03:00.1");
        Assert.Equal(1, r.ExitCode);
        AssertOneLine(r.Stderr, "0000:03:00.1 has no option ROM: the kernel shows no /sys/bus/pci/devices/0000:03:00.1/rom (the device has no ROM BAR)");
    }

    [Fact]
    public void A_rom_the_kernel_reads_as_nothing_is_refused_with_a_rom_file_suggested_and_nothing_left_to_restore()
    {
        // Writes to it vanish and it reads as nothing, as a ROM the kernel cannot read does.
        File.CreateSymbolicLink(Path.Combine(_tree, "sys/bus/pci/devices/0000:03:00.0/rom"), "/dev/null");
        var output = Path.Combine(_dir, "vga.rom");
        var r = Passthru("rom", "03:00.0", "-o", output);
        Assert.Equal(1, r.ExitCode);
        AssertOneLine(r.Stderr, "0000:03:00.0's ROM reads as nothing: the kernel could not read it from the device");
        Assert.Contains("use a ROM file instead", r.Stderr);
        Assert.False(File.Exists(output));
        Assert.False(File.Exists(Path.Combine(_tree, "run/passthru/state.json")));
    }

    [Fact]
    public void A_romfile_of_another_device_or_cut_short_is_refused_by_run_and_the_exports()
    {
        var cut = Path.Combine(_dir, "cut.rom");
        File.WriteAllBytes(cut, File.ReadAllBytes("/usr/share/seabios/vgabios-stdvga.bin")[..20000]);
        const string Ipxe = "/usr/lib/ipxe/qemu/efi-e1000e.rom";
        var r = Passthru("run", "--dry-run", "--kernel", Kernel, "--group", "--device", $"03:00.0,romfile={Ipxe}");
        Assert.Equal(2, r.ExitCode);
        AssertOneLine(r.Stderr, $"romfile {Ipxe} for 0000:03:00.0: image 1 (legacy x86) at 0x0 is for 8086:10d3 (device list 10d3), not for 0000:03:00.0 (1234:1111): a ROM of another device");
        r = Passthru("run", "--dry-run", "--kernel", Kernel, "--group", "--device", $"03:00.0,romfile={cut}");
        Assert.Equal(2, r.ExitCode);
        AssertOneLine(r.Stderr, $"romfile {cut} for 0000:03:00.0: image 1 at 0x0: its PCI data structure pointer (0x99dc, at 0x18) points past the data, which ends at 0x4e20 (a truncated dump?)");
        foreach (var target in new[] { "libvirt", "proxmox" })
        {
            r = Passthru("export", target, "--kernel", Kernel, "--group", "--device", $"03:00.0,romfile={Ipxe}");
            Assert.Equal(2, r.ExitCode);
            AssertOneLine(r.Stderr, "a ROM of another device");
        }
        // The ROM made for the device passes (checked before the binding, which refuses this boot VGA without --force).
        r = Passthru("rom", "03:00.0", "--file", "/usr/share/seabios/vgabios-stdvga.bin");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("  matches 0000:03:00.0 (1234:1111): a guest's BIOS (SeaBIOS) can start it", r.Stdout);
    }
}
