using Passthru.Host;
using Passthru.Launch;
using Passthru.Tests.Binding;
using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>
/// The known vfio failures, from QEMU's and the kernel's real messages (tests/fixtures/qemu-failures, each file says
/// where it came from), against a copy of the virtual host's capture shaped to match. The real kernel provokes the ones
/// it can in <see cref="QemuFailureVirtualHostTests"/>.
/// </summary>
public sealed class QemuFailureTests : IDisposable
{
    private readonly string _tree = Repo.CopyCapture("vhost");
    public void Dispose() => Directory.Delete(_tree, true);

    private static (string Qemu, string[] Kernel) Fixture(string name)
    {
        var text = File.ReadAllText(Path.Combine(Repo.Root, "tests", "fixtures", "qemu-failures", name));
        var qemu = text.Split("--- kernel\n")[0].Replace("--- qemu\n", "");
        var kernel = text.Split("--- kernel\n")[1].Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return (qemu, kernel);
    }

    private string? Explain(string fixture, int memory = 128)
    {
        var (qemu, kernel) = Fixture(fixture);
        return QemuFailure.Explain(qemu, kernel, new HostRoot(_tree), memory);
    }

    [Fact]
    public void Not_viable_names_the_function_still_on_a_host_driver()
    {
        SysfsShaper.Rebind(_tree, "0000:02:01.0", "vfio-pci");
        Assert.Equal("IOMMU group 8 of 0000:02:01.0 is not viable: 0000:02:02.0 (e1000) is still on a host driver, and a group passes through whole; "
            + "fix: passthru run --group (or passthru bind --group 0000:02:01.0), or name every function of the group with --device", Explain("not-viable.txt"));
    }

    [Fact]
    public void Not_permitted_is_interrupt_remapping_with_the_opt_in()
    {
        var why = Explain("not-permitted.txt")!;
        Assert.StartsWith("the IOMMU does not remap interrupts and vfio_iommu_type1 does not allow unsafe interrupts", why);
        Assert.Contains("passthru run --allow-unsafe-interrupts", why);
        // QEMU's words alone are enough (the kernel's log may be unreadable).
        Assert.Equal(why, QemuFailure.Explain(Fixture("not-permitted.txt").Qemu, [], new HostRoot(_tree), 128));
    }

    [Fact]
    public void Memlock_says_the_limit_and_what_the_guest_needs()
    {
        Assert.Equal("QEMU could not pin the guest's memory for DMA: the locked-memory limit (1024 KiB) is below the 128 MiB the guest needs (vfio pins all of it, plus some MiB for device ROMs); "
            + "fix: raise it to at least 192 MiB (ulimit -l 196608, or unlimited; memlock in /etc/security/limits.conf), or run as root", Explain("memlock.txt"));
    }

    [Fact]
    public void Busy_names_the_process_that_holds_the_group()
    {
        Directory.CreateDirectory(Path.Combine(_tree, "proc/4242/fd"));
        File.WriteAllText(Path.Combine(_tree, "proc/4242/comm"), "qemu-system-x86\n");
        File.CreateSymbolicLink(Path.Combine(_tree, "proc/4242/fd/17"), "/dev/vfio/2");
        Assert.Equal("IOMMU group 2 is already open by qemu-system-x86 (pid 4242) (another guest has its devices); fix: stop that guest first, or pass a different device",
            Explain("busy.txt"));
    }

    [Fact]
    public void A_bar_held_by_the_boot_framebuffer_says_so_from_proc_iomem()
    {
        File.WriteAllText(Path.Combine(_tree, "proc/iomem"), "c0000000-febfffff : PCI Bus 0000:00\n  fe280000-fe29ffff : 0000:02:01.0\n    fe280000-fe28ffff : BOOTFB\n");
        var why = Explain("bar-bootfb.txt")!;
        Assert.StartsWith("BAR 1 of 0000:02:01.0 is held by the boot framebuffer (BOOTFB at fe280000-fe28ffff in /proc/iomem)", why);
        Assert.Contains("video=efifb:off", why);
        File.WriteAllText(Path.Combine(_tree, "proc/iomem"), "c0000000-febfffff : PCI Bus 0000:00\n");
        Assert.StartsWith("BAR 1 of 0000:02:01.0 cannot be reserved: another driver holds that memory", Explain("bar-bootfb.txt"));
    }

    [Fact]
    public void D3cold_and_no_reset_say_what_to_do()
    {
        Assert.StartsWith("0000:00:02.0 is stuck in D3cold (powered off) and does not answer; fix: keep it powered (echo on > /sys/bus/pci/devices/0000:00:02.0/power/control)", Explain("d3cold.txt"));
        Assert.StartsWith("0000:00:1f.3 has no reset mechanism (no FLR, power-management or bus reset)", Explain("no-reset.txt"));
    }

    [Fact]
    public void Anything_else_gets_no_guess()
    {
        Assert.Null(QemuFailure.Explain("qemu-system-x86_64: -kernel /x: No such file or directory\n", [], new HostRoot(_tree), 128));
    }
}
