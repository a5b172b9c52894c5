using CsCheck;
using Passthru.Launch;
using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>The QEMU command line `run --dry-run` prints, on the virtual host's capture (so the devices are real ones).</summary>
public sealed class RunPlanTests : IDisposable
{
    private readonly string _dir = GuestFiles.Directory("passthru-run-").FullName;
    private readonly string _kernel;
    public void Dispose() => Directory.Delete(_dir, true);

    public RunPlanTests()
    {
        _kernel = Path.Combine(_dir, "kernel.elf");
        foreach (var f in new[] { _kernel, Path.Combine(_dir, "m1"), Path.Combine(_dir, "m2") }) File.WriteAllText(f, "");
    }

    private string Qemu => $"{Repo.Capture("vhost")}/usr/bin/qemu-system-x86_64";

    /// <summary>The guest's control socket for attach/detach, under the capture's state directory.</summary>
    private static string[] Qmp(string name) => ["-qmp", $"unix:{Repo.Capture("vhost")}/run/passthru/guests/{name}.qmp,server=on,wait=off"];

    private string[] Argv(params string[] args)
    {
        var r = CliRunner.OnCapture("vhost", ["run", "--dry-run", .. args]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return SplitShell(r.Lines[^1]);
    }

    /// <summary>bash itself splits the printed command line: what users paste is what Passthru runs.</summary>
    internal static string[] SplitShell(string line) =>
        Repo.Exec("bash", "-c", "eval \"set -- $1\"; for a; do printf '%s\\0' \"$a\"; done", "split", line)
            .Stdout.Split('\0', StringSplitOptions.RemoveEmptyEntries);

    [Fact]
    public void A_kernel_with_a_device_on_its_own_root_port()
    {
        // The device's port first, then the two spare hot-plug ports after it, then the device itself.
        Assert.Equal([Qemu, "-machine", "q35,accel=tcg", "-m", "2048", "-smp", "4", "-nographic", "-name", "kernel-1", "-kernel", _kernel,
            "-append", "console=ttyS0 a=b", "-initrd", $"{_dir}/m1 a,,b,{_dir}/m2", "-nic", "none",
            "-device", "pcie-root-port,id=pt0,chassis=1,bus=pcie.0,addr=0x10",
            "-device", "pcie-root-port,id=hp0,chassis=2,bus=pcie.0,addr=0x11",
            "-device", "pcie-root-port,id=hp1,chassis=3,bus=pcie.0,addr=0x12",
            "-device", "vfio-pci,host=0000:00:02.0,id=hostdev-0000-00-02-0,bus=pt0,addr=0.0,rombar=0",
            .. Qmp("kernel-1"),
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
            Argv("--kernel", _kernel, "--append", "console=ttyS0 a=b", "--initrd", $"{_dir}/m1 a,,b,{_dir}/m2", "--memory", "2048", "--cpus", "4",
                 "--device", "00:02.0,rombar=0", "--", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"));
    }

    [Fact]
    public void A_shared_group_goes_whole_and_the_functions_keep_separate_ports()
    {
        var r = CliRunner.OnCapture("vhost", "run", "--dry-run", "--kernel", _kernel, "--device", "02:01.0", "--device", "02:02.0");
        Assert.Equal(0, r.ExitCode);
        var argv = SplitShell(r.Lines[^1]);
        Assert.Contains("vfio-pci,host=0000:02:01.0,id=hostdev-0000-02-01-0,bus=pt0,addr=0.0", argv);
        Assert.Contains("vfio-pci,host=0000:02:02.0,id=hostdev-0000-02-02-0,bus=pt1,addr=0.0", argv);
        Assert.Contains("pcie-root-port,id=hp0,chassis=3,bus=pcie.0,addr=0x12", argv);
        // The give-back, from the plan: each function's journaled driver, in the order a give-back writes.
        var giveBack = r.Lines.SkipWhile(l => l != "then, when QEMU exits (give back):").Skip(1).TakeWhile(l => l.StartsWith("  ", StringComparison.Ordinal)).ToList();
        Assert.Equal([
            "   1. clear /sys/bus/pci/devices/0000:02:01.0/driver_override",
            "   2. write 0000:02:01.0 > /sys/bus/pci/drivers/vfio-pci/unbind",
            "   3. write 0000:02:01.0 > /sys/bus/pci/drivers_probe",
            "   4. check 0000:02:01.0 is bound to e1000",
            "   5. clear /sys/bus/pci/devices/0000:02:02.0/driver_override",
            "   6. write 0000:02:02.0 > /sys/bus/pci/drivers/vfio-pci/unbind",
            "   7. write 0000:02:02.0 > /sys/bus/pci/drivers_probe",
            "   8. check 0000:02:02.0 is bound to e1000",
        ], giveBack);
    }

    [Fact]
    public void The_rest_of_a_group_must_be_named_or_taken_with_group()
    {
        var r = CliRunner.OnCapture("vhost", "run", "--dry-run", "--kernel", _kernel, "--device", "02:01.0");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("add --group to bind them too", r.Stderr);
        Assert.Equal(0, CliRunner.OnCapture("vhost", "run", "--dry-run", "--kernel", _kernel, "--device", "02:01.0", "--group").ExitCode);
    }

    /// <summary>iPXE's ROM for the virtual host's e1000e (8086:10d3): a romfile= run checks against the device.</summary>
    private const string Rom = "/usr/lib/ipxe/qemu/efi-e1000e.rom";

    [Fact]
    public void Disks_cdrom_and_options_users_expect()
    {
        var disk = Path.Combine(_dir, "disk a.img");
        File.WriteAllBytes(disk, [(byte)'Q', (byte)'F', (byte)'I', 0xfb, 0, 0, 0, 3]);
        var iso = Path.Combine(_dir, "x.iso");
        File.WriteAllText(iso, "");
        var argv = Argv("--disk", disk, "--cdrom", iso, "--machine", "pc", "--accel", "tcg", "--name", "disk.a", "--device", "00:03.0,x-vga=on,romfile=" + Rom);
        Assert.Equal([Qemu, "-machine", "pc,accel=tcg", "-m", "1024", "-smp", "2", "-nographic", "-name", "disk.a",
            "-device", "ahci,id=ahci", "-drive", $"id=disk0,file={disk},format=qcow2,if=none", "-device", "ide-hd,drive=disk0,bus=ahci.0",
            "-cdrom", iso, "-boot", "order=dc", "-nic", "none", "-device", $"vfio-pci,host=0000:00:03.0,id=hostdev-0000-00-03-0,bus=pci.0,addr=0x10.0,romfile={Rom},x-vga=on",
            .. Qmp("disk.a")], argv);
    }

    [Fact]
    public void An_iso_boots_first_beside_passed_devices_and_goes_with_neither_menu_nor_kernel()
    {
        var iso = Path.Combine(_dir, "bf.iso");
        File.WriteAllText(iso, "");
        var argv = Argv("--cdrom", iso, "--device", "00:02.0").ToList();
        var at = argv.IndexOf("-cdrom");
        Assert.Equal(["-cdrom", iso, "-boot", "order=d"], argv[at..(at + 4)]); // the CD before the passed NIC's network boot
        Assert.DoesNotContain("-kernel", argv);
        Assert.Contains(argv, a => a.StartsWith("vfio-pci,host=0000:00:02.0,", StringComparison.Ordinal));
        foreach (var (other, word) in new[] { (new[] { "--kernel", _kernel }, "kernel"), (["--menu", "/nonexistent/menu.lst"], "menu") })
        {
            var r = CliRunner.OnCapture("vhost", ["run", "--dry-run", "--cdrom", iso, .. other]);
            Assert.Equal(2, r.ExitCode);
            Assert.Equal($"passthru: --cdrom boots the guest from the ISO, --{word} from its own files: give one (a Barrelfish ISO: passthru image --menu MENU -o FILE.iso, then --cdrom FILE.iso)\n", r.Stderr);
        }
    }

    [Theory]
    [InlineData(new[] { "--menu", "/nonexistent.lst" }, "/nonexistent.lst: no such file")]
    [InlineData(new string[0], "nothing to boot: give --menu FILE (Barrelfish), --kernel FILE, --disk IMAGE or --cdrom ISO")]
    [InlineData(new[] { "--accel", "hvf" }, "--accel: accel 'hvf' is not kvm, tcg or auto")]
    [InlineData(new[] { "--device", "00:02.0,rombar=2" }, "--device '00:02.0,rombar=2': unknown option 'rombar=2' (use rombar=0, romfile=FILE or x-vga=on)")]
    [InlineData(new[] { "--device", "8086:10d3" }, "8086:10d3 matches 2 functions (0000:00:02.0, 0000:00:03.0): name one by its address")]
    [InlineData(new[] { "--expect", "(unclosed" }, "--expect '(unclosed' is not a regular expression: insufficient closing parentheses at character 9")]
    public void Bad_input_is_one_line_and_exit_2(string[] args, string error)
    {
        var withKernel = args.Length == 0 || args[0] == "--menu" ? args : ["--kernel", _kernel, .. args];
        var r = CliRunner.OnCapture("vhost", ["run", "--dry-run", .. withKernel]);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal($"passthru: {error}\n", r.Stderr);
    }

    [Fact]
    public void A_profile_holds_the_options_and_the_command_line_wins()
    {
        var profile = Path.Combine(_dir, "barrelfish.toml");
        File.WriteAllText(profile, """
            kernel = "kernel.elf"
            append = "loglevel=3"
            memory = 512
            cpus = 1
            accel = "tcg"
            devices = ["00:02.0,rombar=0"]
            net = "user,model=e1000"
            extra-args = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
            """);
        var argv = Argv("-f", profile, "--memory", "256");
        Assert.Equal([Qemu, "-machine", "q35,accel=tcg", "-m", "256", "-smp", "1", "-nographic", "-name", "kernel-1", "-kernel", _kernel, "-append", "loglevel=3",
            "-nic", "user,model=e1000",
            "-device", "pcie-root-port,id=pt0,chassis=1,bus=pcie.0,addr=0x10", "-device", "pcie-root-port,id=hp0,chassis=2,bus=pcie.0,addr=0x11",
            "-device", "pcie-root-port,id=hp1,chassis=3,bus=pcie.0,addr=0x12",
            "-device", "vfio-pci,host=0000:00:02.0,id=hostdev-0000-00-02-0,bus=pt0,addr=0.0,rombar=0", .. Qmp("kernel-1"),
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"], argv);
    }

    [Theory]
    [InlineData("colour = \"blue\"\n", "unknown key 'colour'")]
    [InlineData("memory = \"lots\"\n", "memory 'lots': not a size (give MiB, or a size such as 512M, 2G or 1.5G)")]
    [InlineData("memory = true\n", "'memory' must be MiB (2048) or a size (\"2G\")")]
    [InlineData("cpus = \"two\"\n", "'cpus' must be a whole number")]
    [InlineData("memory = [\n", "not valid TOML")]
    [InlineData("net = \"tap\"\n", "net 'tap': give none, user or user,model=NAME")]
    public void Bad_profiles_name_the_problem(string toml, string error)
    {
        var profile = Path.Combine(_dir, "bad.toml");
        File.WriteAllText(profile, toml);
        var r = CliRunner.OnCapture("vhost", "run", "--dry-run", "-f", profile);
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith($"passthru: {profile}: {error}", r.Stderr);
    }

    [Theory]
    [InlineData("2048", "2048")]
    [InlineData("2G", "2048")]
    [InlineData("2g", "2048")]
    [InlineData("512M", "512")]
    [InlineData("512MiB", "512")]
    [InlineData("1.5G", "1536")]
    [InlineData("1T", "1048576")]
    [InlineData("65536K", "64")]
    public void Memory_takes_what_qemus_m_takes(string memory, string mib)
    {
        var argv = Argv("--kernel", _kernel, "--memory", memory);
        Assert.Equal(mib, argv[Array.IndexOf(argv, "-m") + 1]);
    }

    [Fact]
    public void A_profile_memory_may_be_a_size()
    {
        var profile = Path.Combine(_dir, "size.toml");
        File.WriteAllText(profile, "kernel = \"kernel.elf\"\nmemory = \"1.5G\"\n");
        var argv = Argv("-f", profile);
        Assert.Equal("1536", argv[Array.IndexOf(argv, "-m") + 1]);
    }

    [Theory]
    [InlineData("--memory", "2X", "--memory '2X': unknown unit 'X' (give MiB, or a size such as 512M, 2G or 1.5G)")]
    [InlineData("--memory", "lots", "--memory 'lots': not a size (give MiB, or a size such as 512M, 2G or 1.5G)")]
    [InlineData("--memory", "0.5M", "--memory '0.5M': not a whole number of MiB (give MiB, or a size such as 512M, 2G or 1.5G)")]
    [InlineData("--memory", "-1G", "--memory '-1G': not a size (give MiB, or a size such as 512M, 2G or 1.5G)")]
    [InlineData("--memory", "8M", "--memory 8: give MiB between 16 and 16777216")]
    [InlineData("--cpus", "two", "--cpus 'two': give a whole number")]
    [InlineData("--timeout", "1m", "--timeout '1m': give a whole number")]
    public void Bad_numbers_name_the_option_and_the_forms_it_takes(string option, string value, string error)
    {
        var r = CliRunner.OnCapture("vhost", "run", "--dry-run", "--kernel", _kernel, option, value);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal($"passthru: {error}\n", r.Stderr);
    }

    [Theory]
    [InlineData(new string[0], "none")]
    [InlineData(new[] { "--net", "none" }, "none")]
    [InlineData(new[] { "--net", "user" }, "user")]
    [InlineData(new[] { "--net", "user,model=e1000" }, "user,model=e1000")]
    public void The_guest_gets_an_emulated_nic_only_when_asked(string[] net, string nic)
    {
        var argv = Argv(["--kernel", _kernel, "--device", "00:02.0", .. net]);
        Assert.Equal(nic, argv[Array.IndexOf(argv, "-nic") + 1]);
        Assert.Single(argv, "-nic");
    }

    [Theory]
    [InlineData("tap", "--net 'tap': give none, user or user,model=NAME (e.g. user,model=e1000)")]
    [InlineData("user,mac=1", "--net 'user,mac=1': unknown option 'mac=1' (only model=NAME, e.g. model=e1000)")]
    [InlineData("user,model=", "--net 'user,model=': unknown option 'model=' (only model=NAME, e.g. model=e1000)")]
    public void A_bad_net_is_one_line(string net, string error)
    {
        var r = CliRunner.OnCapture("vhost", "run", "--dry-run", "--kernel", _kernel, "--net", net);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal($"passthru: {error}\n", r.Stderr);
    }

    [Fact]
    public void Auto_accel_does_not_trust_a_pvm_dev_kvm()
    {
        var r = CliRunner.OnCapture("devvm", "run", "--dry-run", "--kernel", _kernel);
        Assert.StartsWith("warning: KVM is not usable here (/dev/kvm is provided by kvm_pvm", r.Stdout);
        Assert.Contains("accel=tcg", r.Lines[^1]);
        var kvm = CliRunner.OnCapture("devvm", "run", "--dry-run", "--kernel", _kernel, "--accel", "kvm");
        Assert.Equal(1, kvm.ExitCode);
        Assert.StartsWith("passthru: --accel kvm: KVM is not usable here", kvm.Stderr);
    }

    [Fact]
    public void Shell_quoting_round_trips_through_bash() =>
        Gen.String[Gen.Char["ab ,'\"$`\\*?;&|<>()=\t"], 0, 8].Array[1, 5]
            .Sample(args => SplitShellKeepingEmpty(QemuArgs.ShellJoin(args)).SequenceEqual(args), iter: 30);

    private static string[] SplitShellKeepingEmpty(string line)
    {
        var r = Repo.Exec("bash", "-c", "eval \"set -- $1\"; for a; do printf '%s\\0' \"$a\"; done", "split", line);
        var parts = r.Stdout.Split('\0');
        return parts[..^1];
    }
}
