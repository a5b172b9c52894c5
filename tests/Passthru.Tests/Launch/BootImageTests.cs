using Passthru.Launch;
using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>
/// `passthru image`'s plan: menu.lst → grub.cfg with run's menu semantics (the same parser), the files grafted onto the
/// ISO, and the refusals. Fast: nothing is built (the slow BootImageBarrelfishTests build and boot the real one).
/// </summary>
public sealed class BootImageTests : IDisposable
{
    private readonly string _build = Directory.CreateTempSubdirectory("passthru-image-").FullName;
    public void Dispose() => Directory.Delete(_build, true);

    private static string SharedMenu => Repo.Shared("fixtures/barrelfish/menu.lst.x86_64");

    /// <summary>A build directory with a file at every path the menu names (its size: the line number, to tell them apart).</summary>
    private string BuildTreeFor(BarrelfishMenu menu)
    {
        foreach (var m in menu.Modules.Prepend(menu.Kernel))
        {
            var file = menu.Resolve(_build, m.Path);
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllText(file, new string('x', m.Line));
        }
        return _build;
    }

    [Fact]
    public void The_shared_x86_64_menu_becomes_a_grub_cfg_that_names_each_module_twice()
    {
        var menu = BarrelfishMenu.Load(SharedMenu);
        var cfg = BootImage.GrubConfig(menu, BuildTreeFor(menu));
        // The kernel line as run's -kernel/-append give it; each module with its path first, as run's -initrd entries;
        // the two RAM-disk archives unpacked by Barrelfish, not by GRUB; the commented-out modules left out.
        Assert.Equal("""
            # made by passthru image from a multiboot menu.lst
            set timeout=0
            set default=0
            menuentry Barrelfish {
            	multiboot /x86_64/sbin/elver loglevel=3
            	module /x86_64/sbin/cpu /x86_64/sbin/cpu loglevel=3
            	module /x86_64/sbin/init /x86_64/sbin/init
            	module /x86_64/sbin/mem_serv /x86_64/sbin/mem_serv
            	module /x86_64/sbin/monitor /x86_64/sbin/monitor
            	module /x86_64/sbin/ramfsd /x86_64/sbin/ramfsd boot
            	module /x86_64/sbin/skb /x86_64/sbin/skb boot
            	module --nounzip /eclipseclp_ramfs.cpio.gz /eclipseclp_ramfs.cpio.gz nospawn
            	module --nounzip /skb_ramfs.cpio.gz /skb_ramfs.cpio.gz nospawn
            	module /x86_64/sbin/kaluga /x86_64/sbin/kaluga boot
            	module /x86_64/sbin/acpi /x86_64/sbin/acpi boot
            	module /x86_64/sbin/spawnd /x86_64/sbin/spawnd boot
            	module /x86_64/sbin/startd /x86_64/sbin/startd boot
            	module /x86_64/sbin/routing_setup /x86_64/sbin/routing_setup boot
            	module /x86_64/sbin/pci /x86_64/sbin/pci auto
            	module /x86_64/sbin/corectrl /x86_64/sbin/corectrl auto
            	module /x86_64/sbin/ahcid /x86_64/sbin/ahcid auto
            	module /x86_64/sbin/serial_pc16550d /x86_64/sbin/serial_pc16550d auto
            	module /x86_64/sbin/rtl8029 /x86_64/sbin/rtl8029 auto
            	module /x86_64/sbin/e1000n /x86_64/sbin/e1000n auto
            	module /x86_64/sbin/NGD_mng /x86_64/sbin/NGD_mng auto
            	module /x86_64/sbin/netd /x86_64/sbin/netd auto
            	module /x86_64/sbin/fish /x86_64/sbin/fish nospawn
            	module /x86_64/sbin/angler /x86_64/sbin/angler serial0.terminal xterm
            	module /x86_64/sbin/examples/xmpl-crystal-test1 /x86_64/sbin/examples/xmpl-crystal-test1
            }

            """, cfg);
        // Line for line what run hands QEMU: the same modules, in the same order, with the same arguments.
        var (_, append, initrd) = menu.ToQemu(_build);
        var moduleLines = cfg.Split('\n').Where(l => l.StartsWith("\tmodule ", StringComparison.Ordinal))
            .Select(l => l.Replace("\tmodule ", "").Replace("--nounzip ", "")).ToList();
        Assert.Equal(RunOptions.InitrdFiles(initrd).Count(), moduleLines.Count);
        Assert.Equal(initrd.Split(',').Select(e => e.Replace(_build, "")),
            moduleLines.Select(l => string.Join(' ', l.Split(' ').Skip(1))));
        Assert.Contains($"\tmultiboot /x86_64/sbin/elver {append}\n", cfg);
    }

    [Fact]
    public void Root_prefix_tabs_commas_and_grub_script_characters_arrive_as_written()
    {
        var menu = BarrelfishMenu.Parse("""
            # a comment
            title   Test	menu
            root /armv8
            kernel  /sbin/cpu_loader   a=1	b=2
            module	/sbin/init
              modulenounzip /ramfs.cpio.gz   nospawn
            module /sbin/app  list=1,2,3  x
            module /sbin/o'dd  $HOME {x} a;b
            """, "test.lst");
        var cfg = BootImage.GrubConfig(menu, BuildTreeFor(menu));
        Assert.Equal("""
            # made by passthru image from a multiboot menu.lst
            set timeout=0
            set default=0
            menuentry 'Test menu' {
            	multiboot /armv8/sbin/cpu_loader a=1 b=2
            	module /armv8/sbin/init /armv8/sbin/init
            	module --nounzip /armv8/ramfs.cpio.gz /armv8/ramfs.cpio.gz nospawn
            	module /armv8/sbin/app /armv8/sbin/app list=1,2,3 x
            	module '/armv8/sbin/o'\''dd' '/armv8/sbin/o'\''dd' '$HOME' '{x}' 'a;b'
            }

            """, cfg);
    }

    [Fact]
    public void A_menu_without_a_title_gets_a_plain_entry_name()
    {
        var menu = BarrelfishMenu.Parse("kernel /boot/kernel.elf\n", "plain.lst");
        Assert.Contains("menuentry multiboot {\n\tmultiboot /boot/kernel.elf\n}\n", BootImage.GrubConfig(menu, BuildTreeFor(menu)));
    }

    [Fact]
    public void A_path_outside_the_build_directory_is_refused_with_the_line()
    {
        var menu = BarrelfishMenu.Parse("kernel /k\nmodule /../outside arg\n", "up.lst");
        var e = Assert.Throws<UserError>(() => BootImage.GrubConfig(menu, _build));
        Assert.Equal($"menu line 2: '/../outside' is outside the build directory {_build}: an image holds only files under it (give --build-dir a directory above it)", e.Message);
        Assert.Equal(ExitCodes.Usage, e.ExitCode);
    }

    [Fact]
    public void The_plan_grafts_each_file_once_at_its_menu_path_with_its_size()
    {
        var menuFile = Path.Combine(_build, "menu.lst");
        File.WriteAllText(menuFile, "kernel /k a\nmodule /m=1 x\nmodule /m=1 y\nmodule /d/m2\n");
        var menu = BarrelfishMenu.Load(menuFile);
        BuildTreeFor(menu);
        var work = Path.Combine(_build, "work");
        var plan = BootImage.Plan(new Passthru.Host.HostRoot("/"), menuFile, _build, Path.Combine(_build, "out.iso"), work);
        Assert.Equal([("/k", 1L), ("/m=1", 3L), ("/d/m2", 4L)], plan.Files.Select(f => (f.IsoPath, f.Bytes)));
        Assert.EndsWith("grub-mkrescue", plan.Argv[0]);
        // xorriso's graft points: ISO path=host path, with '=' escaped on both sides.
        Assert.Equal(["-o", $"{work}/image.iso", $"{work}/tree", $"/k={_build}/k", $"/m\\=1={_build}/m\\=1", $"/d/m2={_build}/d/m2"], plan.Argv.Skip(1));
        Assert.Contains("\tmodule /m=1 /m=1 x\n\tmodule /m=1 /m=1 y\n", plan.GrubConfig);
        Assert.False(Directory.Exists(work)); // a plan builds nothing
    }

    [Fact]
    public void Dry_run_prints_the_plan_and_writes_nothing()
    {
        var menu = BarrelfishMenu.Load(SharedMenu);
        BuildTreeFor(menu);
        var iso = Path.Combine(_build, "bf.iso");
        var r = CliRunner.Run("image", "--menu", SharedMenu, "--build-dir", _build, "-o", iso, "--dry-run");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.StartsWith($"image of {SharedMenu} (paths from {_build}), 25 files, ", r.Stdout);
        Assert.Contains($"\n  /x86_64/sbin/cpu  16  from {_build}/x86_64/sbin/cpu\n", r.Stdout);
        Assert.Contains("\n/boot/grub/grub.cfg:\n  # made by passthru image", r.Stdout);
        Assert.Contains("\n  \tmodule --nounzip /skb_ramfs.cpio.gz /skb_ramfs.cpio.gz nospawn\n", r.Stdout);
        Assert.Matches($"\nbuild: /\\S+/grub-mkrescue -o /\\S+/passthru-image-[0-9a-f]{{12}}/image.iso /\\S+/tree /x86_64/sbin/elver={_build}/x86_64/sbin/elver ", r.Stdout);
        Assert.False(File.Exists(iso));
    }

    [Theory]
    [InlineData("--build-dir", "/nonexistent/build", "--build-dir /nonexistent/build: no such directory (give the build directory the menu's paths start from)")]
    [InlineData("-o", "/nonexistent-dir/bf.iso", "--output /nonexistent-dir/bf.iso: the directory /nonexistent-dir does not exist")]
    [InlineData("-o", "/tmp", "--output /tmp is a directory: name a file (e.g. /tmp/vm.out)")]
    public void Bad_input_is_one_line_and_exit_2(string option, string value, string message)
    {
        var menu = BarrelfishMenu.Load(SharedMenu);
        BuildTreeFor(menu);
        string[] args = ["image", "--menu", SharedMenu, "--build-dir", _build, "-o", Path.Combine(_build, "bf.iso")];
        args[Array.IndexOf(args, option) + 1] = value;
        var r = CliRunner.Run(args);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal($"passthru: {message}\n", r.Stderr);
        Assert.Empty(Directory.GetFiles(_build, "*.iso"));
    }

    [Fact]
    public void Missing_menu_files_or_a_missing_grub_mkrescue_are_named()
    {
        var menu = BarrelfishMenu.Load(SharedMenu);
        BuildTreeFor(menu);
        File.Delete(Path.Combine(_build, "x86_64/sbin/fish"));
        var r = CliRunner.Run("image", "--menu", SharedMenu, "--build-dir", _build, "-o", Path.Combine(_build, "bf.iso"));
        Assert.Equal(2, r.ExitCode);
        Assert.Equal($"passthru: the menu names 1 file missing under {_build}: {_build}/x86_64/sbin/fish (is --build-dir right? has the build finished?)\n", r.Stderr);
        BuildTreeFor(menu);
        // A captured host has no grub-mkrescue in its tree.
        var captured = CliRunner.OnCapture("vhost", "image", "--menu", SharedMenu, "--build-dir", _build, "-o", Path.Combine(_build, "bf.iso"));
        Assert.Equal(2, captured.ExitCode);
        Assert.Equal("passthru: grub-mkrescue is not installed: it builds the image (apt-get install grub-pc-bin grub-common xorriso mtools)\n", captured.Stderr);
    }
}
