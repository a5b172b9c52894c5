using Passthru.Host;
using Passthru.Launch;

namespace Passthru.Export;

/// <summary>
/// `passthru export cloud-hypervisor`: the VM run would start, as a cloud-hypervisor command line (devices as
/// --device path=/sys/bus/pci/devices/ADDRESS/). From the same plan as run (<see cref="DomainExport.Describe"/>);
/// what cloud-hypervisor cannot take is refused in one line or left out with a note.
/// </summary>
public static class CloudHypervisorExport
{
    public static ExportResult Build(HostRoot host, RunOptions options)
    {
        if (options.Menu is not null || RunOptions.InitrdFiles(options.Initrd).Count() > 1 || (options.Initrd?.Contains(' ') ?? false))
            throw new UserError("cloud-hypervisor has no multiboot loader: a Barrelfish menu or a multiboot module list cannot boot there (passthru run or export libvirt can)", ExitCodes.Usage);
        if (options.Kernel is null)
            throw new UserError("export cloud-hypervisor needs --kernel: cloud-hypervisor boots a kernel (or firmware) directly, not a disk's boot loader", ExitCodes.Usage);
        if (options.Cdrom is not null)
            throw new UserError("--cdrom: cloud-hypervisor emulates no CD-ROM drive", ExitCodes.Usage);

        var (vm, plan) = DomainExport.Describe(host, options with { Accel = Accel.Tcg, Qemu = options.Qemu ?? RunSession.StandardQemu }, "cloud-hypervisor");
        var notes = new List<string>(plan.Warnings);
        var argv = new List<string> { "cloud-hypervisor", "--kernel", vm.Kernel! };
        if (vm.Initrd is not null) argv.AddRange(["--initramfs", vm.Initrd]);
        if (vm.Cmdline is not null) argv.AddRange(["--cmdline", vm.Cmdline]);
        argv.AddRange(["--cpus", $"boot={vm.Cpus}", "--memory", $"size={vm.MemoryMiB}M", "--serial", "tty", "--console", "off"]);
        foreach (var disk in vm.Disks) argv.AddRange(["--disk", $"path={disk}"]);
        foreach (var d in vm.Devices)
        {
            argv.AddRange(["--device", $"path=/sys/bus/pci/devices/{d.Address}/"]);
            foreach (var (set, what) in new[] { (!d.RomBar, "rombar=0"), (d.RomFile is not null, $"romfile={d.RomFile}"), (d.XVga, "x-vga=on") })
                if (set) notes.Add($"note: {what} for {d.Address} cannot be expressed: cloud-hypervisor's --device has no ROM or VGA settings");
        }
        if (options.Accel == Accel.Tcg) notes.Add("note: --accel tcg cannot be expressed: cloud-hypervisor runs guests on KVM only");
        if (options.Machine != "q35") notes.Add($"note: --machine {options.Machine} cannot be expressed: cloud-hypervisor has one machine type of its own");
        if (vm.Net is not null) notes.Add("note: --net user has no cloud-hypervisor equivalent (it has no user-mode network): add --net tap=NAME for a tap device");
        if (options.Qemu is not null) notes.Add("note: --qemu is not used: cloud-hypervisor is its own VMM");
        if (vm.Devices.Count > 0)
            notes.Add("note: cloud-hypervisor's seccomp filters are on by default (--seccomp true); to run it unprivileged as passthru run does QEMU, give its user the "
                + "vfio group nodes (chown USER /dev/vfio/N) and the locked memory the guest needs (prlimit --memlock), then start it with setpriv");
        if (options.Name is not null) notes.Add("note: --name is not used: a cloud-hypervisor VM has no name (its API socket, --api-socket, tells VMs apart)");
        if (vm.ExtraQemuArgs.Count > 0) notes.Add($"note: the QEMU arguments after -- ({string.Join(' ', vm.ExtraQemuArgs)}) have no cloud-hypervisor equivalent and are left out");
        if (vm.Devices.Count > 0)
            notes.Add($"note: cloud-hypervisor does not bind devices itself: first `passthru bind {string.Join(' ', vm.Devices.Select(d => d.Address))}` (passthru restore gives them back)");
        return new ExportResult(QemuArgs.ShellJoin(argv) + "\n", notes);
    }
}
