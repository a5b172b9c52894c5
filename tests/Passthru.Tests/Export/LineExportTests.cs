using Passthru.Tests.Launch;
using Passthru.Tests.Support;

namespace Passthru.Tests.Export;

/// <summary>
/// `export cloud-hypervisor` and `export proxmox`: command lines written from run's plan, so what they boot and pass
/// through is what `run --dry-run` shows (compared here after bash has split both), and what the VMM cannot take is
/// refused in one line or named in a note.
/// </summary>
public sealed class LineExportTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("passthru-lines-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private string NewFile(string name)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, "");
        return path;
    }

    private static string After(IReadOnlyList<string> argv, string flag) => argv[argv.ToList().IndexOf(flag) + 1];

    private static string[] RunArgv(params string[] options)
    {
        var run = CliRunner.OnCapture("vhost", ["run", "--dry-run", "--accel", "tcg", .. options]);
        Assert.True(run.ExitCode == 0, run.Stderr);
        return RunPlanTests.SplitShell(run.Lines[^1]);
    }

    private static IEnumerable<string> VfioHosts(IEnumerable<string> argv) =>
        argv.Where(a => a.StartsWith("vfio-pci,", StringComparison.Ordinal)).Select(a => a.Split(',')[1]["host=".Length..]);

    [Fact]
    public void Cloud_hypervisor_boots_what_run_boots_with_the_same_devices()
    {
        string[] options = ["--kernel", NewFile("vmlinux"), "--initrd", NewFile("initrd.img"), "--append", "console=ttyS0 root=/dev/vda", "--cpus", "3", "-m", "1536",
            "--device", "00:02.0", "--device", "00:04.0,rombar=0"];
        var r = CliRunner.OnCapture("vhost", ["export", "cloud-hypervisor", .. options]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var chv = RunPlanTests.SplitShell(r.Stdout.Trim());
        var run = RunArgv(options);
        Assert.Equal("cloud-hypervisor", chv[0]);
        Assert.Equal(After(run, "-kernel"), After(chv, "--kernel"));
        Assert.Equal(After(run, "-initrd"), After(chv, "--initramfs"));
        Assert.Equal(After(run, "-append"), After(chv, "--cmdline"));
        Assert.Equal("boot=3", After(chv, "--cpus"));
        Assert.Equal("size=1536M", After(chv, "--memory"));
        Assert.Equal(VfioHosts(run).Select(a => $"path=/sys/bus/pci/devices/{a}/"), chv.Where((_, i) => i > 0 && chv[i - 1] == "--device"));
        Assert.Contains("note: rombar=0 for 0000:00:04.0 cannot be expressed: cloud-hypervisor's --device has no ROM or VGA settings\n", r.Stderr);
        Assert.Contains("note: cloud-hypervisor does not bind devices itself: first `passthru bind 0000:00:02.0 0000:00:04.0`", r.Stderr);
    }

    [Fact]
    public void Proxmox_gets_the_vm_and_one_hostpci_per_device_and_runs_kernel_in_its_args()
    {
        string[] options = ["--kernel", NewFile("vmlinuz"), "--append", "console=ttyS0 quiet", "--device", "00:02.0", "--device", "00:04.0,rombar=0,x-vga=on",
            "--name", "probe", "--", "-d", "guest_errors"];
        var r = CliRunner.OnCapture("vhost", ["export", "proxmox", "--vmid", "120", .. options]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var lines = r.Stdout.TrimEnd('\n').Split('\n');
        Assert.Equal(3, lines.Length);
        var create = RunPlanTests.SplitShell(lines[0]);
        Assert.Equal(["qm", "create", "120", "--name", "probe", "--memory", "1024", "--cores", "2", "--machine", "q35", "--serial0", "socket", "--vga", "serial0", "--args"], create[..^1]);
        // Proxmox splits args as a shell would: the QEMU arguments are run's own.
        var args = RunPlanTests.SplitShell(create[^1]);
        var run = RunArgv(options);
        Assert.Equal(["-kernel", After(run, "-kernel"), "-append", After(run, "-append"), "-d", "guest_errors"], args);
        Assert.Equal("qm set 120 --hostpci0 0000:00:02.0,pcie=1", lines[1]);
        Assert.Equal("qm set 120 --hostpci1 0000:00:04.0,pcie=1,rombar=0,x-vga=1", lines[2]);
        Assert.Equal(VfioHosts(run), lines.Skip(1).Select(l => l.Split(' ')[4].Split(',')[0]));
    }

    [Fact]
    public void Proxmox_without_a_vmid_says_what_to_fill_in_and_tcg_turns_kvm_off()
    {
        var r = CliRunner.OnCapture("vhost", "export", "proxmox", "--kernel", NewFile("vmlinuz"), "--accel", "tcg", "--device", "00:02.0", "--machine", "pc");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.StartsWith("qm create VMID --name passthru-vmlinuz --memory 1024 --cores 2 --machine pc --serial0 socket --vga serial0 --kvm 0 --args", r.Stdout);
        Assert.Contains("qm set VMID --hostpci0 0000:00:02.0\n", r.Stdout);
        Assert.Contains("note: VMID stands for the VM's Proxmox ID", r.Stderr);
        Assert.Contains("note: --machine pc is not q35: the devices are plain PCI (pcie=1 needs q35)", r.Stderr);
    }

    [Theory]
    [InlineData("cloud-hypervisor", new[] { "--disk", "DISK" }, "export cloud-hypervisor needs --kernel")]
    [InlineData("cloud-hypervisor", new[] { "--kernel", "KERNEL", "--initrd", "KERNEL args,KERNEL" }, "cloud-hypervisor has no multiboot loader")]
    [InlineData("cloud-hypervisor", new[] { "--kernel", "KERNEL", "--cdrom", "DISK" }, "--cdrom: cloud-hypervisor emulates no CD-ROM drive")]
    [InlineData("cloud-hypervisor", new[] { "--kernel", "KERNEL", "--device", "02:01.0" }, "IOMMU group 8 of 0000:02:01.0 also holds 0000:02:02.0")]
    [InlineData("proxmox", new[] { "--kernel", "KERNEL", "--vmid", "42" }, "--vmid 42: give a Proxmox VM ID, a number from 100 to 999999999")]
    [InlineData("proxmox", new[] { "--kernel", "KERNEL", "--name", "bf_1" }, "--name 'bf_1' cannot name a Proxmox VM")]
    [InlineData("proxmox", new[] { "--disk", "DISK" }, "--disk: Proxmox VMs take disks from its storages")]
    [InlineData("proxmox", new[] { "--kernel", "KERNEL", "--device", "07:00.0" }, "no PCI function at 07:00.0")]
    public void What_the_target_cannot_take_is_one_line_and_exit_2(string target, string[] args, string message)
    {
        var kernel = NewFile("kernel");
        var disk = NewFile("disk.img");
        var r = CliRunner.OnCapture("vhost", ["export", target, .. args.Select(a => a.Replace("KERNEL", kernel).Replace("DISK", disk))]);
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("passthru: " + message, r.Stderr);
        Assert.Equal(1, r.Stderr.Count(c => c == '\n'));
        Assert.Empty(r.Stdout);
    }
}
