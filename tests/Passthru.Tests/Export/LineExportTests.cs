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

    /// <summary>A build tree holding (empty) every file a small multiboot menu names, and the menu.</summary>
    private string SmallMenu()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "x86_64/sbin"));
        foreach (var f in new[] { "elver", "cpu", "init" }) File.WriteAllText(Path.Combine(_dir, "x86_64/sbin", f), "");
        return NewFileWith("menu.lst", "title Barrelfish\nkernel /x86_64/sbin/elver loglevel=3\nmodule /x86_64/sbin/cpu loglevel=3\nmodule /x86_64/sbin/init\n");
    }

    private string NewFileWith(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Proxmox_boots_the_menus_iso_from_its_iso_storage_instead_of_the_kernel()
    {
        var iso = TinyIso.Make(_dir, "barrelfish.iso");
        var r = CliRunner.OnCapture("vhost", "export", "proxmox", "--vmid", "120", "--menu", SmallMenu(), "--image", iso, "--device", "00:02.0");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("""
            qm create 120 --name passthru-barrelfish --memory 1024 --cores 2 --machine q35 --serial0 socket --vga serial0 --ide2 local:iso/barrelfish.iso,media=cdrom --boot order=ide2
            qm set 120 --hostpci0 0000:00:02.0,pcie=1

            """, r.Stdout);
        Assert.Contains($"note: the VM boots barrelfish.iso from the Proxmox host's ISO storage 'local': copy {iso} to /var/lib/vz/template/iso/barrelfish.iso there first\n", r.Stderr);
        Assert.DoesNotContain("--args", r.Stdout); // no kernel boot left
        // The same through --cdrom (an ISO of the user's own), and names Proxmox's ISO storage cannot hold refused.
        var cd = CliRunner.OnCapture("vhost", "export", "proxmox", "--vmid", "120", "--cdrom", iso, "--device", "00:02.0");
        Assert.Equal(r.Stdout, cd.Stdout);
        var odd = Path.Combine(_dir, "bf image.img");
        File.Copy(iso, odd);
        var bad = CliRunner.OnCapture("vhost", "export", "proxmox", "--cdrom", odd);
        Assert.Equal(2, bad.ExitCode);
        Assert.Equal($"passthru: --cdrom {odd}: Proxmox's ISO storage takes files named NAME.iso, without spaces or commas: give the image such a name\n", bad.Stderr);
    }

    [Theory]
    [InlineData(new[] { "--image", "{iso}" }, "--image is the image of a menu: give --menu MENU with it (to boot an ISO of your own, give --cdrom FILE.iso)")]
    [InlineData(new[] { "--menu", "{menu}", "--image", "{iso}", "--image-out", "{out}" }, "give --image FILE.iso (an image already built) or --image-out FILE.iso (build it now), not both")]
    [InlineData(new[] { "--menu", "{menu}", "--image", "{menu}" }, "--image {menu} is not an ISO 9660 image: build the menu's with --image-out FILE.iso (or passthru image --menu MENU -o FILE.iso)")]
    [InlineData(new[] { "--menu", "{menu}", "--image-out", "{out}", "--cdrom", "{iso}" }, "--image-out and --cdrom both name the VM's CD: give one")]
    public void A_menu_image_that_cannot_be_carried_is_one_line_and_exit_2(string[] args, string message)
    {
        var menu = SmallMenu();
        var iso = TinyIso.Make(_dir, "bf.iso");
        var output = Path.Combine(_dir, "new.iso");
        string Fill(string a) => a.Replace("{menu}", menu).Replace("{iso}", iso).Replace("{out}", output);
        foreach (var target in new[] { "libvirt", "proxmox" })
        {
            var r = CliRunner.OnCapture("vhost", ["export", target, .. args.Select(Fill)]);
            Assert.Equal(2, r.ExitCode);
            Assert.Equal($"passthru: {Fill(message)}\n", r.Stderr);
            Assert.False(File.Exists(output));
        }
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
