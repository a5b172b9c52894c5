using Passthru.Launch;
using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>menu.lst → QEMU's -kernel, -append, -initrd, on Barrelfish's real x86_64 menu (../shared) and edge cases.</summary>
public sealed class BarrelfishMenuTests : IDisposable
{
    private readonly string _build = GuestFiles.Directory("passthru-bf-").FullName;
    public void Dispose() => Directory.Delete(_build, true);

    private static string SharedMenu => Repo.Shared("fixtures/barrelfish/menu.lst.x86_64");

    /// <summary>A build directory with an (empty) file at every path the menu names, as after a Barrelfish build.</summary>
    private string BuildTreeFor(BarrelfishMenu menu)
    {
        foreach (var m in menu.Modules.Prepend(menu.Kernel))
        {
            var file = menu.Resolve(_build, m.Path);
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllText(file, "");
        }
        return _build;
    }

    [Fact]
    public void The_shared_x86_64_menu_gives_exactly_what_barrelfishs_wrapper_gives()
    {
        var menu = BarrelfishMenu.Load(SharedMenu);
        var (kernel, append, initrd) = menu.ToQemu(BuildTreeFor(menu));
        var b = _build;
        Assert.Equal($"{b}/x86_64/sbin/elver", kernel);
        Assert.Equal("loglevel=3", append);
        Assert.Equal(string.Join(",",
            $"{b}/x86_64/sbin/cpu loglevel=3", $"{b}/x86_64/sbin/init", $"{b}/x86_64/sbin/mem_serv", $"{b}/x86_64/sbin/monitor",
            $"{b}/x86_64/sbin/ramfsd boot", $"{b}/x86_64/sbin/skb boot", $"{b}/eclipseclp_ramfs.cpio.gz nospawn", $"{b}/skb_ramfs.cpio.gz nospawn",
            $"{b}/x86_64/sbin/kaluga boot", $"{b}/x86_64/sbin/acpi boot", $"{b}/x86_64/sbin/spawnd boot", $"{b}/x86_64/sbin/startd boot",
            $"{b}/x86_64/sbin/routing_setup boot", $"{b}/x86_64/sbin/pci auto", $"{b}/x86_64/sbin/corectrl auto", $"{b}/x86_64/sbin/ahcid auto",
            $"{b}/x86_64/sbin/serial_pc16550d auto", $"{b}/x86_64/sbin/rtl8029 auto", $"{b}/x86_64/sbin/e1000n auto", $"{b}/x86_64/sbin/NGD_mng auto",
            $"{b}/x86_64/sbin/netd auto", $"{b}/x86_64/sbin/fish nospawn", $"{b}/x86_64/sbin/angler serial0.terminal xterm",
            $"{b}/x86_64/sbin/examples/xmpl-crystal-test1"), initrd);
        Assert.Equal(24, menu.Modules.Count);  // commented-out modules stay out
    }

    [Fact]
    public void Missing_files_are_all_named()
    {
        var menu = BarrelfishMenu.Load(SharedMenu);
        BuildTreeFor(menu);
        File.Delete(Path.Combine(_build, "x86_64/sbin/elver"));
        File.Delete(Path.Combine(_build, "skb_ramfs.cpio.gz"));
        var e = Assert.Throws<UserError>(() => menu.ToQemu(_build));
        Assert.Equal($"the menu names 2 files missing under {_build}: {_build}/x86_64/sbin/elver, {_build}/skb_ramfs.cpio.gz (is --build-dir right? has the build finished?)", e.Message);
    }

    [Fact]
    public void Root_prefix_tabs_comments_nounzip_and_commas()
    {
        var menu = BarrelfishMenu.Parse("""
            # a comment
            timeout 0
            title   Test	menu
            root /armv8
            mmap map 0x0 0x1000 1
            kernel  /sbin/cpu_loader   a=1	b=2
            module	/sbin/init
              modulenounzip /ramfs.cpio.gz   nospawn
            module /sbin/app  list=1,2,3  x
            """, "test.lst");
        var (kernel, append, initrd) = menu.ToQemu(BuildTreeFor(menu));
        Assert.Equal($"{_build}/armv8/sbin/cpu_loader", kernel);
        Assert.Equal("a=1 b=2", append);
        Assert.Equal($"{_build}/armv8/sbin/init,{_build}/armv8/ramfs.cpio.gz nospawn,{_build}/armv8/sbin/app list=1,,2,,3 x", initrd);
    }

    [Theory]
    [InlineData("module /a\n", "test.lst: no kernel line: not a Barrelfish menu.lst")]
    [InlineData("kernel\n", "test.lst:1: 'kernel' names no file")]
    [InlineData("kernel /k\nkernel /k2\n", "test.lst:2: a second kernel line (the first is on line 1)")]
    [InlineData("kernel /k\nmodul /typo\n", "test.lst:2: unknown menu command 'modul' (expected kernel, module, modulenounzip, root, title, timeout or mmap)")]
    public void Malformed_menus_are_one_line_errors_with_the_line(string text, string error) =>
        Assert.Equal(error, Assert.Throws<UserError>(() => BarrelfishMenu.Parse(text, "test.lst")).Message);

    [Fact]
    public void The_build_dir_defaults_to_where_x86_64_lives()
    {
        var menu = BarrelfishMenu.Load(SharedMenu);
        BuildTreeFor(menu);
        Directory.CreateDirectory(Path.Combine(_build, "platforms"));
        var menuFile = Path.Combine(_build, "platforms", "menu.lst");
        File.Copy(SharedMenu, menuFile);
        Assert.Equal(_build, menu.DefaultBuildDir(menuFile));
    }
}
