using Passthru.Tests.Launch;
using Passthru.Tests.Support;
using Xunit.Abstractions;

namespace Passthru.Tests.Export;

/// <summary>`export libvirt` mirrors `run --dry-run`: libvirt itself turns the export back into a QEMU command line.</summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("libvirt")]
public sealed class ExportCommandTests(LibvirtFixture libvirt, ITestOutputHelper output) : IDisposable
{
    private readonly string _build = Directory.CreateTempSubdirectory("passthru-export-").FullName;
    public void Dispose() => Directory.Delete(_build, true);

    /// <summary>The shared Barrelfish menu in a build tree with every file it names.</summary>
    private string Menu()
    {
        var menu = Passthru.Launch.BarrelfishMenu.Load(Repo.Shared("fixtures/barrelfish/menu.lst.x86_64"));
        foreach (var m in menu.Modules.Prepend(menu.Kernel))
        {
            var f = menu.Resolve(_build, m.Path);
            Directory.CreateDirectory(Path.GetDirectoryName(f)!);
            File.WriteAllText(f, "");
        }
        Directory.CreateDirectory(Path.Combine(_build, "platforms"));
        var file = Path.Combine(_build, "platforms", "menu.lst.x86_64");
        File.Copy(Repo.Shared("fixtures/barrelfish/menu.lst.x86_64"), file);
        return file;
    }

    private string[] VmOptions() => ["--menu", Menu(), "--device", "00:02.0", "--device", "00:03.0,rombar=0", "--accel", "tcg",
        "--qemu", "/usr/bin/qemu-system-x86_64", "--memory", "2048", "--name", "barrelfish"];

    [Fact]
    public void The_export_passes_libvirts_schema_and_libvirt_gives_qemu_what_run_gives_it()
    {
        var options = VmOptions();
        var xmlFile = Path.Combine(_build, "barrelfish.xml");
        var export = CliRunner.OnCapture("vhost", ["export", "libvirt", .. options, "-o", xmlFile]);
        Assert.True(export.ExitCode == 0, export.Stderr);
        var (code, text) = libvirt.Validate(xmlFile);
        Assert.True(code == 0, text);

        var run = CliRunner.OnCapture("vhost", ["run", "--dry-run", .. options]);
        var runArgv = RunPlanTests.SplitShell(run.Lines[^1]);
        if (libvirt.DaemonUnavailable is string why)
        {
            output.WriteLine("libvirt daemon unavailable, domxml-to-native not checked: " + why);
            Assert.Fail("libvirt daemon unavailable: " + why);
        }
        var libvirtArgv = libvirt.QemuArgv(xmlFile);
        static string After(IReadOnlyList<string> argv, string flag) => argv[argv.ToList().IndexOf(flag) + 1];
        foreach (var flag in new[] { "-kernel", "-initrd", "-append" })
            Assert.Equal(After(runArgv, flag), After(libvirtArgv, flag));
        static IEnumerable<string> Hosts(IEnumerable<string> argv) => argv
            .Where(a => a.Contains("vfio-pci", StringComparison.Ordinal))
            .Select(a => System.Text.RegularExpressions.Regex.Match(a, "host\\W{1,3}(0000:[0-9a-f:.]+)").Groups[1].Value);
        Assert.Equal(["0000:00:02.0", "0000:00:03.0"], Hosts(runArgv));
        Assert.Equal(["0000:00:02.0", "0000:00:03.0"], Hosts(libvirtArgv));
        Assert.Contains(libvirtArgv, a => a.Contains("\"rombar\":0", StringComparison.Ordinal) || a.Contains("rombar=0", StringComparison.Ordinal));
    }

    [Fact]
    public void Bad_input_gets_runs_errors_and_writes_nothing()
    {
        var xmlFile = Path.Combine(_build, "never.xml");
        var r = CliRunner.OnCapture("vhost", "export", "libvirt", "--menu", Menu(), "--device", "02:01.0", "-o", xmlFile);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("passthru: IOMMU group 8 of 0000:02:01.0 also holds 0000:02:02.0 (e1000): a group passes through whole; add --group to bind them too\n", r.Stderr);
        Assert.False(File.Exists(xmlFile));
        Assert.Empty(Directory.GetFiles(_build, "never.xml*"));
    }

    [Fact]
    public void The_menus_iso_is_the_domains_first_boot_cdrom_and_libvirt_gives_qemu_what_run_cdrom_gives_it()
    {
        var iso = TinyIso.Make(_build, "barrelfish.iso");
        string[] devices = ["--device", "00:02.0", "--accel", "tcg", "--qemu", "/usr/bin/qemu-system-x86_64", "--name", "barrelfish"];
        var xmlFile = Path.Combine(_build, "barrelfish-iso.xml");
        var export = CliRunner.OnCapture("vhost", ["export", "libvirt", "--menu", Menu(), "--image", iso, .. devices, "-o", xmlFile]);
        Assert.True(export.ExitCode == 0, export.Stderr);
        var (code, text) = libvirt.Validate(xmlFile);
        Assert.True(code == 0, text);
        var xml = System.Xml.Linq.XDocument.Load(xmlFile).Root!;
        Assert.Equal(["cdrom"], xml.Element("os")!.Elements("boot").Select(b => (string?)b.Attribute("dev")));
        Assert.Null(xml.Element("os")!.Element("kernel"));
        var cd = xml.Element("devices")!.Elements("disk").Single();
        Assert.Equal(("file", "cdrom", iso), ((string?)cd.Attribute("type"), (string?)cd.Attribute("device"), (string?)cd.Element("source")!.Attribute("file")));

        var run = CliRunner.OnCapture("vhost", ["run", "--dry-run", "--cdrom", iso, .. devices]);
        var runArgv = RunPlanTests.SplitShell(run.Lines[^1]);
        Assert.Equal(iso, runArgv[runArgv.ToList().IndexOf("-cdrom") + 1]);
        if (libvirt.DaemonUnavailable is string why) Assert.Fail("libvirt daemon unavailable: " + why);
        var libvirtArgv = libvirt.QemuArgv(xmlFile);
        // libvirt's QEMU opens the same ISO as a CD and boots it first; no kernel, as run --cdrom.
        Assert.Contains(libvirtArgv, a => a.Contains(iso, StringComparison.Ordinal));
        Assert.Contains(libvirtArgv, a => a.Contains("ide-cd", StringComparison.Ordinal) && a.Contains("bootindex", StringComparison.Ordinal));
        Assert.DoesNotContain("-kernel", libvirtArgv);
        Assert.DoesNotContain("-kernel", runArgv);
        Assert.Contains(libvirtArgv, a => a.Contains("0000:00:02.0", StringComparison.Ordinal));
    }

    [Fact]
    public void Image_out_builds_the_menus_iso_after_the_exports_own_checks()
    {
        // On this machine (grub-mkrescue builds the ISO): a device it does not have is refused before anything is built.
        var iso = Path.Combine(_build, "built.iso");
        var xmlFile = Path.Combine(_build, "built.xml");
        var menu = Menu();
        var refused = CliRunner.Run("export", "libvirt", "--menu", menu, "--image-out", iso, "--device", "7f:1f.7", "--accel", "tcg", "-o", xmlFile);
        Assert.Equal(2, refused.ExitCode);
        Assert.Equal("passthru: no PCI function at 7f:1f.7: see `passthru list` for the devices of this host\n", refused.Stderr);
        Assert.False(File.Exists(iso));
        var r = CliRunner.Run("export", "libvirt", "--menu", menu, "--image-out", iso, "--accel", "tcg", "-o", xmlFile);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains($"wrote {iso}: the image of {_build}/platforms/menu.lst.x86_64 ({new FileInfo(iso).Length} bytes, 25 files), which the VM boots as its CD\n", r.Stderr);
        var listing = Repo.Exec("xorriso", "-indev", iso, "-find", "/x86_64/sbin", "-type", "f");
        // The menu's 25 files but its two RAM-disk archives at the top: 23 under /x86_64/sbin.
        Assert.Equal(23, listing.Stdout.Split('\n').Count(l => l.StartsWith("'/x86_64/sbin/", StringComparison.Ordinal)));
        Assert.Contains($"<source file=\"{iso}\" />", File.ReadAllText(xmlFile));
        var (code, text) = libvirt.Validate(xmlFile);
        Assert.True(code == 0, text);
        // Given back with --image, the ISO is checked against the menu by the grub.cfg it holds (xorriso reads it).
        var again = CliRunner.Run("export", "libvirt", "--menu", menu, "--image", iso, "--accel", "tcg");
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.DoesNotContain("note:", again.Stderr);
        File.AppendAllText(Path.Combine(_build, "platforms", "menu.lst.x86_64"), "module /x86_64/sbin/fish again\n");
        var changed = CliRunner.Run("export", "libvirt", "--menu", menu, "--image", iso, "--accel", "tcg");
        Assert.Contains($"note: the grub.cfg in {iso} is not the one passthru image makes of {menu} now (another menu or build): the VM boots what the ISO holds", changed.Stderr);
        var plain = TinyIso.Make(_build, "plain.iso");
        var other = CliRunner.Run("export", "libvirt", "--menu", menu, "--image", plain, "--accel", "tcg");
        Assert.Contains($"note: {plain} holds no /boot/grub/grub.cfg, so it is not an image passthru image made of {menu}", other.Stderr);
    }

    [Fact]
    public void With_group_the_whole_group_is_in_the_domain()
    {
        var r = CliRunner.OnCapture("vhost", "export", "libvirt", "--menu", Menu(), "--device", "02:01.0", "--group", "--accel", "tcg");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("<address domain=\"0x0000\" bus=\"0x02\" slot=\"0x01\" function=\"0x0\" />", r.Stdout);
        Assert.Contains("<address domain=\"0x0000\" bus=\"0x02\" slot=\"0x02\" function=\"0x0\" />", r.Stdout);
    }

    [Fact]
    public void A_domain_for_another_host_needs_no_qemu_here()
    {
        var tree = Repo.CopyCapture("vhost");
        try
        {
            File.Delete(Path.Combine(tree, "usr/bin/qemu-system-x86_64"));
            var kernel = Path.Combine(_build, "kernel");
            File.WriteAllText(kernel, "");
            var r = CliRunner.Run("export", "libvirt", "--root", tree, "--pci-ids", Repo.SystemPciIds, "--kernel", kernel, "--accel", "tcg");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("note: no qemu-system-x86_64 on this machine: the definition names /usr/bin/qemu-system-x86_64, where Debian and most distributions install it", r.Stderr);
            Assert.Contains("<emulator>/usr/bin/qemu-system-x86_64</emulator>", r.Stdout);
            // run itself still needs one.
            Assert.Equal(1, CliRunner.Run("run", "--dry-run", "--root", tree, "--kernel", kernel).ExitCode);
        }
        finally { Directory.Delete(tree, true); }
    }
}
