using Passthru.Binding;
using Passthru.Host;
using Passthru.Tests.Support;

namespace Passthru.Tests.Binding;

/// <summary>
/// Interrupt remapping on a copy of the virtual host's capture, shaped into a host whose IOMMU cannot remap (its DMAR
/// unit's ecap IR bit cleared, as QEMU's intremap=off reports it). The real kernel's side is
/// <see cref="UnsafeInterruptsVirtualHostTests"/>.
/// </summary>
public sealed class UnsafeInterruptsTests : IDisposable
{
    private readonly string _tree = Repo.CopyCapture("vhost");
    private const string Param = "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";

    public UnsafeInterruptsTests()
    {
        File.WriteAllText(Path.Combine(_tree, "sys/class/iommu/dmar0/intel-iommu/ecap"), "f00f42\n"); // IR (bit 3) clear
        Directory.CreateDirectory(Path.Combine(_tree, "sys/module/vfio_pci"));
        Directory.CreateDirectory(Path.Combine(_tree, "sys/module/vfio_iommu_type1/parameters"));
        File.WriteAllText(Path.Combine(_tree, Param), "N\n");
    }

    public void Dispose() => Directory.Delete(_tree, true);

    private CliResult Cli(params string[] args) => CliRunner.Run(["--root", _tree, "--pci-ids", Repo.SystemPciIds, .. args]);
    private string ParameterNow() => File.ReadAllText(Path.Combine(_tree, Param)).Trim();
    private string JournalFile => Path.Combine(_tree, "run/passthru/state.json");

    /// <summary>The refusal, written out here: the expectation is not computed by the code under test.</summary>
    private static string Refusal(string verb) =>
        "passthru: this host's IOMMU does not remap interrupts, and vfio refuses devices until unsafe interrupts are allowed "
        + "(vfio_iommu_type1.allow_unsafe_interrupts): a guest's device can then forge MSI interrupts against the host, so allow it only for guests you trust. "
        + $"To allow them: passthru {verb} --allow-unsafe-interrupts (undone when the devices are given back), "
        + "or passthru setup --allow-unsafe-interrupts (from the next boot on); nothing was changed\n";

    [Fact]
    public void Bind_and_run_stop_before_any_change_and_name_the_opt_in()
    {
        var overrideBefore = File.ReadAllText(Path.Combine(_tree, "sys/bus/pci/devices/0000:00:02.0/driver_override"));
        foreach (var (verb, args) in new[] { ("bind", new[] { "bind", "00:02.0" }), ("bind", ["bind", "00:02.0", "--dry-run"]), ("run", ["run", "--kernel", "/bin/true", "--device", "00:02.0", "--dry-run"]) })
        {
            var r = Cli(args);
            Assert.Equal(1, r.ExitCode);
            Assert.Equal(Refusal(verb), r.Stderr);
        }
        // Nothing changed: the parameter, the device, no journal. (A capture's sysfs has symlink loops: no tree walk.)
        Assert.Equal("N", ParameterNow());
        Assert.Equal(overrideBefore, File.ReadAllText(Path.Combine(_tree, "sys/bus/pci/devices/0000:00:02.0/driver_override")));
        Assert.False(File.Exists(JournalFile));
    }

    [Fact]
    public void The_opt_in_is_a_planned_step_after_the_modules_and_before_the_first_device_write()
    {
        var r = Cli("bind", "00:02.0", "--allow-unsafe-interrupts", "--dry-run");
        Assert.Equal(0, r.ExitCode);
        var lines = r.Lines;
        Assert.StartsWith("warning: allowing unsafe interrupts (--allow-unsafe-interrupts): this IOMMU does not remap interrupts, so a guest's device can then forge MSI interrupts", lines[0]);
        Assert.Equal("plan:", lines[1]);
        Assert.Equal($"   1. write Y > /{Param} (put back when 0000:00:02.0 is given back)", lines[2]);
        Assert.Equal("   2. write vfio-pci > /sys/bus/pci/devices/0000:00:02.0/driver_override", lines[3]);
    }

    [Theory]
    [InlineData("Y")]
    [InlineData("1")]
    public void Allowed_already_nothing_is_set_and_check_calls_it_a_trust_decision(string value)
    {
        File.WriteAllText(Path.Combine(_tree, Param), value + "\n");
        var plan = Cli("bind", "00:02.0", "--dry-run");
        Assert.Equal(0, plan.ExitCode);
        Assert.DoesNotContain("allow_unsafe_interrupts", plan.Stdout);
        var check = Cli("check").Stdout;
        Assert.Contains($"WARN  Interrupt remapping     the IOMMU does not remap interrupts; unsafe interrupts are allowed (/{Param} is {value}): passthrough works, and that is a trust decision", check);
    }

    [Fact]
    public void Before_the_module_loads_the_kernel_command_line_or_a_modprobe_option_allow_them()
    {
        Directory.Delete(Path.Combine(_tree, "sys/module/vfio_iommu_type1"), true);
        Assert.Equal(1, Cli("bind", "00:02.0", "--dry-run").ExitCode);

        Directory.CreateDirectory(Path.Combine(_tree, "etc/modprobe.d"));
        File.WriteAllText(Path.Combine(_tree, "etc/modprobe.d/vfio.conf"), "# trusted guests only\noptions vfio_iommu_type1 allow_unsafe_interrupts=1\n");
        Assert.Equal(0, Cli("bind", "00:02.0", "--dry-run").ExitCode);
        Assert.Contains("unsafe interrupts are allowed (options vfio_iommu_type1 allow_unsafe_interrupts=1 in /etc/modprobe.d/vfio.conf)", Cli("check").Stdout);

        File.Delete(Path.Combine(_tree, "etc/modprobe.d/vfio.conf"));
        File.WriteAllText(Path.Combine(_tree, "proc/cmdline"), "console=ttyS0 intel_iommu=on vfio_iommu_type1.allow_unsafe_interrupts=1\n");
        Assert.Equal(0, Cli("bind", "00:02.0", "--dry-run").ExitCode);
        Assert.Contains("unsafe interrupts are allowed (vfio_iommu_type1.allow_unsafe_interrupts=1 on the kernel command line)", Cli("check").Stdout);
    }

    [Fact]
    public void A_bind_that_fails_half_way_puts_the_parameter_back_too()
    {
        // A tree has no driver unbind file: the write after the parameter's fails, and everything goes back.
        var r = Cli("bind", "00:02.0", "--allow-unsafe-interrupts");
        Assert.Equal(1, r.ExitCode);
        Assert.EndsWith($"; rolled back: gave 0000:00:02.0 to e1000e, N to /{Param}\n", r.Stderr);
        Assert.Equal("N", ParameterNow());
        Assert.False(File.Exists(JournalFile));
    }

    [Fact]
    public void Journaled_before_it_is_set_and_restore_puts_it_back()
    {
        // Already on vfio-pci (as after a bind without the opt-in): the plan is just the parameter.
        SysfsShaper.Rebind(_tree, "0000:00:02.0", "vfio-pci");
        var bind = Cli("bind", "00:02.0", "--allow-unsafe-interrupts");
        Assert.True(bind.ExitCode == 0, bind.Stderr);
        Assert.Equal("Y", ParameterNow());
        var journal = File.ReadAllText(JournalFile);
        Assert.Contains($"\"path\": \"{Param}\"", journal);
        Assert.Contains("\"original\": \"N\"", journal);
        Assert.Contains("\"for\": [\n        \"0000:00:02.0\"\n      ]", journal);

        var dry = Cli("restore", "--dry-run");
        Assert.Equal($"plan (give back):\n   1. write N > /{Param} (no device it was set for is held any more)\n", dry.Stdout);
        Assert.Equal("Y", ParameterNow());
        var restore = Cli("restore");
        Assert.Equal($"put N back into /{Param}\n", restore.Stdout);
        Assert.Equal("N", ParameterNow());
        Assert.False(File.Exists(JournalFile));
    }

    [Fact]
    public void On_an_iommu_that_remaps_the_opt_in_changes_nothing_and_says_so()
    {
        File.WriteAllText(Path.Combine(_tree, "sys/class/iommu/dmar0/intel-iommu/ecap"), "f00f4a\n");
        var r = Cli("bind", "00:02.0", "--allow-unsafe-interrupts", "--dry-run");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("--allow-unsafe-interrupts: not needed, this IOMMU remaps interrupts; left as it is", r.Lines[0]);
        Assert.DoesNotContain("allow_unsafe_interrupts", r.Stdout);
    }
}
