using System.Diagnostics;
using System.Text.RegularExpressions;
using Passthru.Launch;
using Passthru.Tests.Support;
using Xunit.Abstractions;

namespace Passthru.Tests.Launch;

/// <summary>
/// `passthru image` of the real Barrelfish build (../shared/barrelfish), checked with xorriso's own listing, and booted
/// with `run --cdrom` under plain QEMU TCG on this machine against the same build booted with `run --menu`: what
/// Barrelfish reports about its boot modules must be the same both ways. Three boots at most, in one class so they
/// never run at the same time.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed partial class BootImageBarrelfishTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = GuestFiles.Directory("passthru-bf-image-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static string Menu => Repo.Shared("barrelfish/build/platforms/x86/menu.lst.x86_64");
    private static string Build => Repo.Shared("barrelfish/build");

    private string BuildIso()
    {
        Assert.True(File.Exists(Menu), $"{Menu} is missing: the real Barrelfish build lives in ../shared/barrelfish beside the clone");
        var iso = Path.Combine(_dir, "barrelfish.iso");
        var clock = Stopwatch.StartNew();
        var r = CliRunner.Run("image", "--menu", Menu, "-o", iso);
        output.WriteLine($"image: exit {r.ExitCode} after {clock.Elapsed.TotalSeconds:0.0} s\n{r.Stderr}");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal($"wrote {iso}: {new FileInfo(iso).Length} bytes, 24 files; boot it with `passthru run --cdrom {iso}`\n", r.Stderr);
        return iso;
    }

    [Fact]
    public void The_iso_holds_grub_its_grub_cfg_and_every_menu_file_at_its_path_with_its_size()
    {
        var iso = BuildIso();
        var (code, listing, err) = Repo.Exec("xorriso", "-indev", iso, "-find", "/", "-type", "f", "-exec", "lsdl");
        Assert.True(code == 0, err);
        var files = listing.Split('\n').Select(l => LsdlLine().Match(l)).Where(m => m.Success)
            .ToDictionary(m => m.Groups[2].Value, m => long.Parse(m.Groups[1].Value));
        var menu = BarrelfishMenu.Load(Menu);
        var expected = menu.Modules.Prepend(menu.Kernel).Select(m => menu.Resolve(Build, m.Path))
            .ToDictionary(f => "/" + Path.GetRelativePath(Build, f), f => new FileInfo(f).Length);
        Assert.Equal(24, expected.Count);
        // Exactly the menu's files outside GRUB's own /boot, each as big as in the build.
        Assert.Equal(expected.OrderBy(e => e.Key, StringComparer.Ordinal),
            files.Where(f => !f.Key.StartsWith("/boot/", StringComparison.Ordinal) && f.Key != "/boot.catalog").OrderBy(e => e.Key, StringComparer.Ordinal));
        Assert.Contains("/boot/grub/i386-pc/multiboot.mod", files.Keys);
        // The grub.cfg on the ISO is the translation the plan made.
        var cfg = Path.Combine(_dir, "grub.cfg");
        var extract = Repo.Exec("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/boot/grub/grub.cfg", cfg);
        Assert.True(extract.ExitCode == 0, extract.Stderr);
        Assert.Equal(BootImage.GrubConfig(menu, Build), File.ReadAllText(cfg));
        // A BIOS El Torito boot image: GRUB's.
        var torito = Repo.Exec("xorriso", "-indev", iso, "-report_el_torito", "plain");
        Assert.Matches(@"El Torito boot img :\s+1\s+BIOS\s+y", torito.Stdout);
        Assert.Contains("/boot/grub/i386-pc/eltorito.img", torito.Stdout);
    }

    /// <summary>To the shell, then what Barrelfish's ramfs made of the modules it was given: names, sizes, arguments.</summary>
    private const string Script = """
        # Barrelfish to its shell, then its boot modules as its ramfs holds them
        timeout 300
        expect fish v0\.2
        expect > 
        timeout 60
        send ls /x86_64/sbin\r
        expect > 
        send cat /bootmodules\r
        expect > 
        """;

    private string Boot(string what, params string[] boot)
    {
        var file = Path.Combine(_dir, "modules.script");
        File.WriteAllText(file, Script + "\n");
        var clock = Stopwatch.StartNew();
        var r = CliRunner.Run(["run", .. boot, "--memory", "1024", "--accel", "tcg", "--script", file, "--timeout", "420"]);
        output.WriteLine($"{what}: exit {r.ExitCode} after {clock.Elapsed.TotalSeconds:0.0} s\n{r.Stderr}");
        Assert.True(r.ExitCode == 0, r.Stderr + "\n" + r.Stdout[Math.Max(0, r.Stdout.Length - 3000)..]);
        return TerminalCodes().Replace(r.Stdout.Replace("\r", ""), "");
    }

    /// <summary>What the shell printed for one command: the lines after "> COMMAND" up to the next prompt.</summary>
    private static List<string> Answer(string console, string command)
    {
        var lines = console.Split('\n').ToList();
        int at = lines.IndexOf("> " + command);
        Assert.True(at >= 0, $"no '> {command}' in the console");
        return lines.Skip(at + 1).TakeWhile(l => !l.StartsWith("> ", StringComparison.Ordinal)).ToList();
    }

    [Fact]
    public void Barrelfish_boots_from_the_iso_to_its_shell_with_the_modules_run_menu_gives_it()
    {
        var iso = BuildIso();
        var fromIso = Boot("run --cdrom", "--cdrom", iso);
        var fromMenu = Boot("run --menu", "--menu", Menu);
        var menu = BarrelfishMenu.Load(Menu);

        // The same files, in the same order, with the sizes the build has.
        var sbin = Answer(fromIso, "ls /x86_64/sbin");
        Assert.Equal(Answer(fromMenu, "ls /x86_64/sbin"), sbin);
        var executables = menu.Modules.Where(m => m.Path.StartsWith("/x86_64/sbin/", StringComparison.Ordinal)).ToList();
        Assert.Equal(["/x86_64/sbin:", .. executables.Select(m => $"{new FileInfo(menu.Resolve(Build, m.Path)).Length,8} - {Path.GetFileName(m.Path)}")],
            sbin.Select(l => l.TrimEnd()).Where(l => l.Length > 0));
        // The same module command lines: each module's path, then its arguments (the RAM-disk archives, unpacked
        // into the ramfs, are not listed).
        var modules = Answer(fromIso, "cat /bootmodules");
        Assert.Equal(Answer(fromMenu, "cat /bootmodules"), modules);
        Assert.Equal(executables.Select(m => (m.Path + " " + m.Arguments).TrimEnd()), modules.Where(l => l.Length > 0));
        // Both CPU drivers up (the default two CPUs), both times.
        foreach (var console in new[] { fromIso, fromMenu })
        {
            Assert.Contains("Barrelfish CPU driver starting on x86_64 apic_id 1", console);
            Assert.Contains("unpacking Gzipped CPIO /skb_ramfs.cpio.gz", console);
        }
        Assert.Contains("Booting `Barrelfish'", fromIso); // GRUB's menu entry, from the menu's title
    }

    [GeneratedRegex(@"^\S+\s+\d+\s+\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+\S+\s+'(.*)'$")]
    private static partial Regex LsdlLine();

    [GeneratedRegex(@"\x1b\[[0-9;?]*[A-Za-z]")]
    private static partial Regex TerminalCodes();
}
