using Passthru.Tests.Support;

namespace Passthru.Tests.Binding;

/// <summary>
/// bind --reset-method on a copy of the SR-IOV virtual host's capture, whose NVMe physical function (0000:03:00.0,
/// behind a root port) lists two reset methods, "flr bus". The real kernel's side is <see cref="VirtualHostResetMethodTests"/>.
/// </summary>
public sealed class ResetMethodTests : IDisposable
{
    private const string Pf = "0000:03:00.0";
    private readonly string _tree = Repo.CopyCapture("vhost-sriov");

    public ResetMethodTests()
    {
        Directory.CreateDirectory(Path.Combine(_tree, "sys/module/vfio_pci"));
        Directory.CreateDirectory(Path.Combine(_tree, "sys/module/vfio_iommu_type1"));
    }

    public void Dispose() => Directory.Delete(_tree, true);

    private CliResult Cli(params string[] args) => CliRunner.Run(["--root", _tree, "--pci-ids", Repo.SystemPciIds, .. args]);
    private string ResetMethod(string a = Pf) => File.ReadAllText(Path.Combine(_tree, $"sys/bus/pci/devices/{a}/reset_method")).Trim();
    private string JournalFile => Path.Combine(_tree, "run/passthru/state.json");

    [Fact]
    public void The_write_is_planned_before_the_driver_moves_and_its_put_back_is_shown()
    {
        var r = Cli("bind", "03:00.0", "--reset-method", "bus", "--dry-run");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("plan:", r.Lines[0]);
        Assert.Equal($"   1. write bus > /sys/bus/pci/devices/{Pf}/reset_method (put back when {Pf} is given back)", r.Lines[1]);
        Assert.Equal($"   2. write vfio-pci > /sys/bus/pci/devices/{Pf}/driver_override", r.Lines[2]);
        var run = Cli("run", "--kernel", "/bin/true", "--device", "03:00.0", "--reset-method", "bus", "--dry-run");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains($"write bus > /sys/bus/pci/devices/{Pf}/reset_method (put back when {Pf} is given back)", run.Stdout);
        Assert.Contains($"write flr bus > /sys/bus/pci/devices/{Pf}/reset_method (its reset methods before Passthru)", run.Stdout);
        Assert.Equal("flr bus", ResetMethod());
    }

    [Fact]
    public void Journaled_before_it_is_written_and_restore_puts_it_back()
    {
        SysfsShaper.Rebind(_tree, Pf, "vfio-pci"); // already on vfio-pci: the plan is the reset method alone
        var bind = Cli("bind", "03:00.0", "--reset-method", "bus");
        Assert.True(bind.ExitCode == 0, bind.Stderr);
        Assert.Equal($"0000:03:00.0 is already bound to vfio-pci\nreset methods of {Pf}: bus until it is given back\n", bind.Stdout);
        Assert.Equal("bus", ResetMethod());
        var journal = File.ReadAllText(JournalFile);
        Assert.Contains($"\"reset_methods\": [\n    {{\n      \"function\": \"{Pf}\",\n      \"original\": \"flr bus\"\n    }}\n  ]", journal);

        // The kernel lists what was written: flr is no longer offered until the methods are put back.
        Assert.Equal($"passthru: {Pf} does not offer reset method 'flr' (its reset_method lists: bus): give methods it lists\n", Cli("bind", "03:00.0", "--reset-method", "flr").Stderr);
        Assert.Equal(0, Cli("bind", "03:00.0", "--reset-method", "bus").ExitCode);
        Assert.Equal("bus", ResetMethod());
        Assert.Contains("\"original\": \"flr bus\"", File.ReadAllText(JournalFile));

        Assert.Equal($"plan (give back):\n   1. write flr bus > /sys/bus/pci/devices/{Pf}/reset_method (its reset methods before Passthru)\n", Cli("restore", "--dry-run").Stdout);
        var restore = Cli("restore");
        Assert.Equal($"put {Pf}'s reset methods back: flr bus\n", restore.Stdout);
        Assert.Equal("flr bus", ResetMethod());
        Assert.False(File.Exists(JournalFile));
    }

    [Fact]
    public void A_bind_that_fails_half_way_puts_the_reset_methods_back_too()
    {
        // A tree has no nvme driver unbind file: the write after the reset method's fails, and everything goes back.
        var r = Cli("bind", "03:00.0", "--reset-method", "bus");
        Assert.Equal(1, r.ExitCode);
        Assert.EndsWith($"; rolled back: gave {Pf} to nvme, flr bus to /sys/bus/pci/devices/{Pf}/reset_method\n", r.Stderr);
        Assert.Equal("flr bus", ResetMethod());
        Assert.False(File.Exists(JournalFile));
    }

    [Theory]
    [InlineData("03:00.0", "pm", "passthru: 0000:03:00.0 does not offer reset method 'pm' (its reset_method lists: flr bus): give methods it lists\n")]
    [InlineData("03:00.0", "bus,florp", "passthru: --reset-method bus,florp: 'florp' is not a reset method (the kernel's are device_specific, acpi, flr, af_flr, pm, bus, cxl_bus)\n")]
    [InlineData("03:00.0", "bus,bus", "passthru: --reset-method bus,bus: a method is named twice\n")]
    [InlineData("00:07.0", "bus", "passthru: 0000:00:07.0 has no reset_method (a kernel older than 5.15, or a function with no reset at all): nothing to set; bind it without --reset-method\n")]
    public void Refused_in_one_line_before_anything_changes(string device, string methods, string error)
    {
        var r = Cli("bind", device, "--reset-method", methods, "--force");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal(error, r.Stderr);
        Assert.Equal("flr bus", ResetMethod());
        Assert.False(File.Exists(JournalFile));
    }

    [Fact]
    public void Show_names_a_gpu_of_vendor_resets_table_and_what_to_do()
    {
        // The NVMe function made into a Radeon RX 5700 XT (1002:731f, Navi 10) for the table to find.
        var dir = Path.Combine(_tree, $"sys/bus/pci/devices/{Pf}");
        File.WriteAllText(Path.Combine(dir, "vendor"), "0x1002\n");
        File.WriteAllText(Path.Combine(dir, "device"), "0x731f\n");
        File.Delete(Path.Combine(dir, "modalias")); // list and show read the IDs from modalias first
        var show = Cli("show", "03:00.0").Stdout;
        Assert.Contains("  Reset methods:   flr, bus\n", show);
        Assert.Contains("  Reset quirk:     needs a device-specific reset: AMD navi10 (the AMD reset bug: after a guest, a bus reset or FLR can leave it hung; gnif/vendor-reset knows it)\n"
            + "                   vendor_reset module: not loaded; reset_method offers device_specific: no\n"
            + $"                   what to do: install vendor-reset (github.com/gnif/vendor-reset, as DKMS), `modprobe vendor_reset`, then `passthru bind --reset-method device_specific {Pf}`\n", show);
        Assert.Equal("passthru: 0000:03:00.0 does not offer reset method 'device_specific' (its reset_method lists: flr bus): load vendor-reset first (modprobe vendor_reset)\n",
            Cli("bind", "03:00.0", "--reset-method", "device_specific", "--dry-run").Stderr);

        // vendor_reset loaded: the kernel lists device_specific only once it is written, so bind may ask for it.
        Directory.CreateDirectory(Path.Combine(_tree, "sys/module/vendor_reset"));
        show = Cli("show", "03:00.0").Stdout;
        Assert.Contains("vendor_reset module: loaded; reset_method offers device_specific: not yet (vendor_reset supplies it once written)\n", show);
        Assert.Contains($"what to do: `passthru bind --reset-method device_specific {Pf}` (put back when it is given back)\n", show);
        var plan = Cli("bind", "03:00.0", "--reset-method", "device_specific,bus", "--dry-run");
        Assert.Contains($"write device_specific bus > /sys/bus/pci/devices/{Pf}/reset_method", plan.Stdout);
        Assert.Contains("\"reset_quirk\": {\n    \"family\": \"navi10\",\n    \"vendor_reset_loaded\": true,\n    \"device_specific_offered\": false\n  }", Cli("show", "03:00.0", "--json").Stdout);

        // Every other device: no quirk line.
        Assert.DoesNotContain("Reset quirk", Cli("show", "00:02.0").Stdout);
    }
}
