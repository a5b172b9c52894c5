using System.Globalization;
using System.Text.RegularExpressions;
using Passthru.Host;
using Passthru.Launch;

namespace Passthru.Export;

/// <summary>
/// `passthru export proxmox`: the VM run would start, as Proxmox VE `qm` commands: qm create for the VM, one
/// qm set --hostpciN per device. From the same plan as run (<see cref="DomainExport.Describe"/>). Proxmox has no
/// direct kernel boot of its own, so the kernel, initrd (with a multiboot module list) and command line go through
/// its `args` property, which hands QEMU arguments on unchanged.
/// </summary>
public static partial class ProxmoxExport
{
    /// <summary>Proxmox keeps option ROMs in /usr/share/kvm/ and takes romfile= relative to it.</summary>
    public const string RomDir = "/usr/share/kvm/";

    /// <summary>Proxmox's default storage for ISO images ("local"), and where it keeps them.</summary>
    public const string IsoStorage = "local";
    public const string IsoDir = "/var/lib/vz/template/iso/";

    public static ExportResult Build(HostRoot host, RunOptions options, string? vmid)
    {
        if (vmid is not null && !(int.TryParse(vmid, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id is >= 100 and <= 999_999_999))
            throw new UserError($"--vmid {vmid}: give a Proxmox VM ID, a number from 100 to 999999999", ExitCodes.Usage);
        var name = options.Name ?? KubeVirtExport.VmName(options);
        if (!DnsName().IsMatch(name))
            throw new UserError($"--name '{name}' cannot name a Proxmox VM: use letters, digits, '-' and '.' (a DNS name)", ExitCodes.Usage);
        if (options.Disks.Count > 0)
            throw new UserError("--disk: Proxmox VMs take disks from its storages: import the image with `qm disk import VMID FILE STORAGE` and export the kernel boot alone", ExitCodes.Usage);

        var (vm, plan) = DomainExport.Describe(host, options with { Accel = Accel.Tcg, Qemu = options.Qemu ?? RunSession.StandardQemu }, name);
        if (options.Cdrom is not null && !IsoName().IsMatch(Path.GetFileName(options.Cdrom)))
            throw new UserError($"--cdrom {Shown.Value(options.Cdrom)}: Proxmox's ISO storage takes files named NAME.iso, without spaces or commas: give the image such a name", ExitCodes.Usage);
        var notes = new List<string>(plan.Warnings);
        var id0 = vmid ?? "VMID";
        if (vmid is null) notes.Add("note: VMID stands for the VM's Proxmox ID (give --vmid N to fill it in; pvesh get /cluster/nextid gives a free one)");
        bool q35 = vm.Machine.StartsWith("q35", StringComparison.Ordinal) || vm.Machine.StartsWith("pc-q35", StringComparison.Ordinal);

        var create = new List<string> { "qm", "create", id0, "--name", name, "--memory", vm.MemoryMiB.ToString(CultureInfo.InvariantCulture),
            "--cores", vm.Cpus.ToString(CultureInfo.InvariantCulture), "--machine", vm.Machine, "--serial0", "socket", "--vga", "serial0" };
        if (options.Accel == Accel.Tcg) create.AddRange(["--kvm", "0"]);
        var args = new List<string>();
        if (vm.Kernel is not null)
        {
            args.AddRange(["-kernel", vm.Kernel]);
            if (vm.Initrd is not null) args.AddRange(["-initrd", vm.Initrd]);
            if (vm.Cmdline is not null) args.AddRange(["-append", vm.Cmdline]);
        }
        if (vm.Cdrom is not null)
        {
            // The CD from the node's ISO storage (local: /var/lib/vz/template/iso/), booted first.
            var iso = Path.GetFileName(vm.Cdrom);
            create.AddRange(["--ide2", $"{IsoStorage}:iso/{iso},media=cdrom", "--boot", "order=ide2"]);
            notes.Add($"note: the VM boots {iso} from the Proxmox host's ISO storage '{IsoStorage}': copy {vm.Cdrom} to {IsoDir}{iso} there first");
        }
        args.AddRange(vm.ExtraQemuArgs);
        if (args.Count > 0)
        {
            create.AddRange(["--args", QemuArgs.ShellJoin(args)]);
            notes.Add("note: the kernel boot goes in the VM's args (raw QEMU arguments), which only root@pam may set; the files must be at the same paths on the Proxmox host");
        }
        if (vm.Net is not null)
            notes.Add($"note: --net user has no Proxmox equivalent (its NICs sit on bridges): add --net0 {vm.Net.Model ?? "e1000"},bridge=vmbr0 for one");
        if (options.Qemu is not null) notes.Add("note: --qemu is not used: Proxmox runs its own QEMU");
        // (#24) Proxmox VE has no unprivileged QEMU user to name: say so rather than imply passthru run's.
        notes.Add($"note: Proxmox VE runs its QEMU as root (it has no equivalent of passthru run's {Accounts.DefaultQemuUser} user); its only confinement is the VM's own settings");

        var lines = new List<string> { QemuArgs.ShellJoin(create) };
        for (int i = 0; i < vm.Devices.Count; i++)
        {
            var d = vm.Devices[i];
            var value = d.Address.ToString() + (q35 ? ",pcie=1" : "");
            if (!d.RomBar) value += ",rombar=0";
            if (d.RomFile is not null)
            {
                value += ",romfile=" + Path.GetFileName(d.RomFile);
                notes.Add($"note: Proxmox reads romfile= from {RomDir}: copy {d.RomFile} to {RomDir}{Path.GetFileName(d.RomFile)} on the Proxmox host");
            }
            if (d.XVga) value += ",x-vga=1";
            lines.Add(QemuArgs.ShellJoin(["qm", "set", id0, $"--hostpci{i}", value]));
        }
        if (vm.Devices.Count > 0 && !q35) notes.Add($"note: --machine {vm.Machine} is not q35: the devices are plain PCI (pcie=1 needs q35)");
        return new ExportResult(string.Join('\n', lines) + "\n", notes);
    }

    [GeneratedRegex(@"^[^\s,/]+\.[iI][sS][oO]$")]
    private static partial Regex IsoName();

    [GeneratedRegex("^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")]
    private static partial Regex DnsName();
}
