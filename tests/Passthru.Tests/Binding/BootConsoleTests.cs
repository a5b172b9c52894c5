using Passthru.Binding;
using Passthru.Host;
using Passthru.Pci;
using Passthru.Setup;
using Passthru.Tests.Support;

namespace Passthru.Tests.Binding;

/// <summary>
/// A GPU holding the host's boot console (issue #22), on the captures of the GPU virtual hosts: vhost-gpu-boot (UEFI's
/// efifb inside the VGA's BAR 0, fbcon on vtcon1, no host driver on the VGA) and vhost-gpu (bochs-drm draws the
/// console itself). The real kernel's side runs in GpuBootConsoleVirtualHostTests.
/// </summary>
public sealed class BootConsoleTests : IDisposable
{
    private static readonly PciAddress Vga = PciAddress.Parse("0000:03:00.0");
    private readonly List<string> _trees = [];

    public void Dispose()
    {
        foreach (var t in _trees) Directory.Delete(t, true);
    }

    [Fact]
    public void Efifb_is_found_inside_bar_0_with_its_platform_device_driver_and_the_framebuffer_console()
    {
        var console = BootConsole.Of(new HostRoot(Repo.Capture("vhost-gpu-boot")), Vga);
        var fb = Assert.Single(console.Framebuffers);
        Assert.Equal("efifb (efi-framebuffer.0, driver efi-framebuffer) holds c0000000-c03e7fff in 0000:03:00.0's BAR 0", fb.Describe());
        Assert.Equal(["fb0"], console.FramebufferDevices);
        Assert.Equal(["vtcon1"], console.BoundFramebufferConsoles);
        // The audio function beside it holds none of it.
        Assert.False(BootConsole.Of(new HostRoot(Repo.Capture("vhost-gpu-boot")), PciAddress.Parse("0000:03:00.1")).Any);
    }

    [Fact]
    public void A_gpu_whose_own_driver_draws_the_console_has_a_framebuffer_but_no_firmware_one()
    {
        var console = BootConsole.Of(new HostRoot(Repo.Capture("vhost-gpu")), Vga);
        Assert.Empty(console.Framebuffers);
        Assert.Equal(["fb0"], console.FramebufferDevices);
        Assert.Equal(["vtcon0"], console.BoundFramebufferConsoles);
    }

    [Theory]
    [InlineData("vhost-gpu-boot", "0000:03:00.0 is the boot VGA device: the host's console would go dark (efifb (efi-framebuffer.0, driver efi-framebuffer) holds c0000000-c03e7fff in 0000:03:00.0's BAR 0); add --release-console")]
    [InlineData("vhost-gpu", "0000:03:00.0 is the boot VGA device: the host's console would go dark; add --release-console")]
    public void The_boot_gpu_is_refused_in_one_line_naming_what_holds_it(string capture, string expected)
    {
        var r = CliRunner.OnCapture(capture, ["bind", "03:00.0", "--group", "--dry-run"]);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("passthru: refusing: " + expected, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }

    [Fact]
    public void Release_console_plans_the_console_first_and_the_give_back_takes_it_back_last()
    {
        var r = CliRunner.OnCapture("vhost-gpu-boot", ["run", "--kernel", "/etc/hostname", "--device", "03:00.0", "--all-functions", "--release-console", "--dry-run"]);
        Assert.Equal(0, r.ExitCode);
        var lines = r.Stdout.Split('\n').Select(l => l.Trim()).ToList();
        int vt = lines.FindIndex(l => l == "3. write 0 > /sys/class/vtconsole/vtcon1/bind (the framebuffer console lets go of 0000:03:00.0; taken back with it)");
        int fb = lines.FindIndex(l => l.StartsWith("4. write efi-framebuffer.0 > /sys/bus/platform/drivers/efi-framebuffer/unbind", StringComparison.Ordinal));
        int move = lines.FindIndex(l => l == "5. write vfio-pci > /sys/bus/pci/devices/0000:03:00.0/driver_override");
        Assert.True(vt > 0 && fb > vt && move > fb, r.Stdout);
        // The give-back: the devices first, then efifb, then the console on it.
        int back = lines.FindIndex(l => l == "then, when QEMU exits (give back):");
        int fbBack = lines.FindIndex(l => l.EndsWith("write efi-framebuffer.0 > /sys/bus/platform/drivers/efi-framebuffer/bind (the host's console takes efi-framebuffer.0 back)", StringComparison.Ordinal));
        int vtBack = lines.FindIndex(l => l.EndsWith("write 1 > /sys/class/vtconsole/vtcon1/bind (the host's console takes vtcon1 back)", StringComparison.Ordinal));
        Assert.True(back > move && fbBack > back && vtBack > fbBack, r.Stdout);
        // The VGA and its audio as functions 0 and 1 of one device, and no emulated VGA beside them.
        Assert.Contains("-device vfio-pci,host=0000:03:00.0,id=hostdev-0000-03-00-0,bus=pt0,addr=0.0,multifunction=on -device vfio-pci,host=0000:03:00.1,id=hostdev-0000-03-00-1,bus=pt0,addr=0.1", r.Stdout);
        Assert.Contains(" -vga none ", r.Stdout);
        Assert.Contains("0000:03:00.1 goes to the guest with 0000:03:00.0 as one device (--all-functions)", r.Stdout);
    }

    [Fact]
    public void Group_alone_also_passes_the_devices_other_function_and_display_std_keeps_qemus_vga()
    {
        var r = CliRunner.OnCapture("vhost-gpu", ["run", "--kernel", "/etc/hostname", "--device", "03:00.0", "--group", "--release-console", "--display", "std", "--dry-run"]);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("-device vfio-pci,host=0000:03:00.1,id=hostdev-0000-03-00-1,bus=pt0,addr=0.1", r.Stdout);
        Assert.Contains(" -vga std ", r.Stdout);
        var bad = CliRunner.OnCapture("vhost-gpu", ["run", "--kernel", "/etc/hostname", "--display", "vga9000", "--dry-run"]);
        Assert.Equal(2, bad.ExitCode);
        Assert.Equal("passthru: --display 'vga9000': use one of none, std, cirrus, vmware, qxl, virtio\n", bad.Stderr);
    }

    /// <summary>
    /// Released and taken back through custody on a scratch copy: each release journaled before its write (a stand-in
    /// kernel checks, and unbinds efifb's driver link as the real one does), and restore takes both back in reverse.
    /// </summary>
    [Fact]
    public void Releases_are_journaled_before_their_writes_and_restore_takes_them_back()
    {
        var tree = Repo.CopyCapture("vhost-gpu-boot");
        _trees.Add(tree);
        var state = Path.Combine(tree, "run/passthru");
        var driverLink = Path.Combine(tree, "sys/devices/platform/efi-framebuffer.0/driver");
        var writes = new List<string>();
        var host = new HostRoot(tree)
        {
            AfterWrite = (path, value) =>
            {
                writes.Add($"/{path} {value}");
                var journaled = Journal.Load(state).Consoles.Select(c => c.Hold.Name).ToList();
                if (path.EndsWith("/unbind", StringComparison.Ordinal)) { Assert.Contains("efi-framebuffer.0", journaled); File.Delete(driverLink); }
                if (path.EndsWith("vtcon1/bind", StringComparison.Ordinal) && value == "0") Assert.Contains("vtcon1", journaled);
                if (path.EndsWith("efi-framebuffer/bind", StringComparison.Ordinal)) File.CreateSymbolicLink(driverLink, "../../../bus/platform/drivers/efi-framebuffer");
            },
        };
        File.WriteAllText(Path.Combine(tree, "sys/bus/platform/drivers/efi-framebuffer/unbind"), "");
        File.WriteAllText(Path.Combine(tree, "sys/bus/platform/drivers/efi-framebuffer/bind"), "");
        var release = new BindPlan(PlanKind.Bind, [], [
            new ReleaseConsole(ConsoleHold.Console("vtcon1"), [Vga]),
            new ReleaseConsole(ConsoleHold.PlatformFramebuffer("efi-framebuffer.0", "efi-framebuffer"), [Vga])], []);
        using (var custody = Custody.Take(host, state)) custody.Apply(release);
        Assert.Equal(["/sys/class/vtconsole/vtcon1/bind 0", "/sys/bus/platform/drivers/efi-framebuffer/unbind efi-framebuffer.0"], writes);
        Assert.Equal(2, Journal.Load(state).Consoles.Count);

        writes.Clear();
        using (var custody = Custody.Take(host, state))
        {
            var plan = custody.PlanRestore([], wholeGroup: false, restore: true);
            Assert.Equal([typeof(TakeBackConsole), typeof(TakeBackConsole)], plan.Steps.Select(s => s.GetType()));
            var result = custody.GiveBack(plan);
            Assert.Contains("gave efi-framebuffer.0 back to the host's console (efi-framebuffer)", result.Lines);
            Assert.Contains("gave the framebuffer console on vtcon1 back to the host's console", result.Lines);
        }
        Assert.Equal(["/sys/bus/platform/drivers/efi-framebuffer/bind efi-framebuffer.0", "/sys/class/vtconsole/vtcon1/bind 1"], writes);
        Assert.True(Journal.Load(state).IsEmpty);
    }

    [Theory]
    [InlineData("""{"kind": "vtconsole", "name": "../../../tmp/x", "for": []}""")]
    [InlineData("""{"kind": "framebuffer", "name": "efi-framebuffer.0", "driver": "../../x", "for": []}""")]
    [InlineData("""{"kind": "framebuffer", "name": "sda1", "driver": "efi-framebuffer", "for": []}""")]
    [InlineData("""{"kind": "tty", "name": "vtcon1", "for": []}""")]
    public void A_journal_naming_anything_but_a_vtconsole_or_a_firmware_framebuffer_is_refused(string entry)
    {
        var dir = Directory.CreateTempSubdirectory("passthru-consoles-").FullName;
        _trees.Add(dir);
        File.WriteAllText(Path.Combine(dir, Journal.FileName), $$"""{"version": 1, "functions": [], "consoles": [{{entry}}]}""");
        var e = Assert.Throws<UserError>(() => Journal.Load(dir));
        Assert.Contains("consoles[0]", e.Message);
        Assert.Contains("is not a vtconsole or a firmware framebuffer", e.Message);
    }

    [Fact]
    public void Iomem_nesting_and_unprivileged_zeros()
    {
        var ranges = Iomem.Parse("00000000-00000fff : Reserved\nc0000000-c10fffff : PCI Bus 0000:03\n  c0000000-c0ffffff : 0000:03:00.0\n    c0000000-c03e7fff : efifb\n00000000-00000000 : hidden\nzzz-1 : bad\n");
        Assert.Equal(["Reserved:0", "PCI Bus 0000:03:0", "0000:03:00.0:1", "efifb:2"], ranges.Select(r => $"{r.Name}:{r.Depth}"));
        Assert.Equal("c0000000-c03e7fff", ranges[^1].Span);
    }

    [Fact]
    public void Setup_keeps_the_firmware_framebuffer_off_at_boot_by_the_kernels_way()
    {
        Assert.Equal(FramebufferOff.SysfbBlacklist, Decide("6.1.0-57-amd64"));
        Assert.Equal(FramebufferOff.SysfbBlacklist, Decide("5.15.0-91-generic"));
        Assert.Equal(FramebufferOff.VideoOff, Decide("5.10.0-28-amd64"));
        CmdlineWord[] words = [new("quiet", "cmdline", 0), new("initcall_blacklist=foo_init", "cmdline", 6)];
        var changes = KernelParameters.Decide(words, new SetupDecisions { Vendor = IommuVendor.Intel, BootFramebufferOff = FramebufferOff.SysfbBlacklist });
        Assert.Contains(changes, c => c is ParameterChange.Replace { Text: "initcall_blacklist=foo_init,sysfb_init" });
        var old = KernelParameters.Decide([new("quiet", "cmdline", 0)], new SetupDecisions { Vendor = IommuVendor.Intel, BootFramebufferOff = FramebufferOff.VideoOff });
        Assert.Contains(old, c => c is ParameterChange.Add { Text: "video=efifb:off" });
        Assert.Contains(old, c => c is ParameterChange.Add { Text: "video=vesafb:off" });
    }

    private static FramebufferOff? Decide(string release)
    {
        var tree = Repo.CopyCapture("vhost-gpu-boot");
        try
        {
            File.WriteAllText(Path.Combine(tree, "proc/sys/kernel/osrelease"), release + "\n");
            var host = new HostRoot(tree);
            return SetupDecisions.Decide(new HostFacts(host), PciInventory.Load(host),
                new SetupRequest([], false) { NoBootFramebuffer = true }).BootFramebufferOff;
        }
        finally { Directory.Delete(tree, true); }
    }
}
