using System.Text;
using Passthru.Binding;
using Passthru.Host;
using Passthru.Launch;
using Passthru.Pci;

namespace Passthru.Export;

/// <summary>
/// `passthru export libvirt`: the VM `passthru run` would start, as a libvirt domain. Planned exactly as run plans it
/// (same guest files, same accelerator decision, same device and group checks), so the two cannot drift apart.
/// </summary>
public static class DomainExport
{
    public static (VmDefinition Vm, IReadOnlyList<string> Notes) Define(HostRoot host, RunOptions options)
    {
        var (vm, plan) = Describe(host, options, DomainName(options));
        var notes = new List<string>(plan.Warnings);
        if (plan.Binding.Steps.OfType<SetModuleParameter>().Any())
            notes.Add("note: this host's IOMMU does not remap interrupts: libvirt can start the domain here only with vfio_iommu_type1.allow_unsafe_interrupts=1 (passthru setup --allow-unsafe-interrupts), and a guest's device can then forge interrupts against the host");
        if (vm.PciHole64 is { } hole) notes.Add($"note: set as <pcihole64 unit='KiB'>{hole >> 10}</pcihole64> on the pcie-root controller");
        foreach (var d in vm.Devices.Where(d => d.XVga))
            notes.Add($"note: x-vga=on for {d.Address} has no libvirt hostdev attribute: add it with <qemu:override> if the guest needs VGA");
        // Least privilege is libvirt's own default: only whose QEMU it is differs from passthru run's.
        if (vm.Devices.Count > 0)
            notes.Add("note: libvirt runs the domain's QEMU unprivileged itself (qemu.conf user/group, libvirt-qemu on Debian; seccomp_sandbox; the vfio group nodes handed to it): "
            + $"the guest's files must be readable by that user, not by {Accounts.DefaultQemuUser} as for passthru run");
        return (vm, notes);
    }

    /// <summary>
    /// The VM run would start, planned by run's own planner (<see cref="RunSession.Plan"/>): the one description every
    /// export target (libvirt, KubeVirt, cloud-hypervisor, Proxmox) is written from. Each target adds its own notes.
    /// </summary>
    public static (VmDefinition Vm, RunPlan Plan) Describe(HostRoot host, RunOptions options, string name)
    {
        var plan = RunSession.Plan(host, options, exporting: true);
        var devices = Functions(host, plan.Devices, options.WholeGroup);
        var vm = new VmDefinition
        {
            Name = name,
            MemoryMiB = options.MemoryMiB,
            Cpus = options.Cpus,
            Machine = options.Machine,
            Accelerator = plan.Kvm ? "kvm" : "tcg",
            Emulator = plan.Qemu,
            Kernel = plan.Boot.Kernel,
            Initrd = plan.Boot.Initrd,
            Cmdline = plan.Boot.Append is { Length: > 0 } a ? a : null,
            Disks = plan.Boot.Disks,
            Cdrom = plan.Boot.Cdrom,
            Devices = devices,
            Net = options.Net,
            ExtraQemuArgs = options.ExtraArgs,
            PciHole64 = plan.Hole64?.Size,
        };
        return (vm, plan);
    }

    /// <summary>
    /// The functions a VM is given: the planned devices with their options and this host's facts about them, and with
    /// --group the other endpoints of their IOMMU groups (libvirt's managed='yes' only detaches what it lists; a fleet
    /// node needs them on vfio-pci too).
    /// </summary>
    public static IReadOnlyList<HostDevice> Functions(HostRoot host, IReadOnlyList<(PciAddress Address, PassthroughDevice Options)> planned, bool wholeGroup)
    {
        var devices = new List<HostDevice>();
        if (planned.Count == 0) return devices;
        var inventory = PciInventory.Load(host);
        foreach (var (address, opts) in planned)
        {
            devices.Add(new HostDevice(address, opts.RomBar, opts.RomFile is null ? null : Path.GetFullPath(opts.RomFile))
            {
                XVga = opts.XVga,
                Facts = inventory.Find(address),
            });
            if (wholeGroup && inventory.Find(address) is PciDevice d && inventory.GroupOf(d) is IommuGroup g)
                foreach (var mate in g.Endpoints.Where(m => m.Address != address && planned.All(p => p.Address != m.Address)))
                    if (devices.All(x => x.Address != mate.Address)) devices.Add(new HostDevice(mate.Address) { Facts = mate });
        }
        return devices;
    }

    /// <summary>--name, or one made from the guest's file: libvirt names may hold anything but '/'.</summary>
    public static string DomainName(RunOptions o)
    {
        var name = o.Name ?? DefaultName(o);
        if (name.Length == 0 || name.Contains('/') || name.Any(char.IsControl))
            throw new UserError($"--name '{name}' cannot name a libvirt domain: use letters, digits, '-', '_' or '.', no '/'", ExitCodes.Usage);
        return name;
    }

    /// <summary>"passthru-" and the guest file's name without its extension.</summary>
    public static string DefaultName(RunOptions o) =>
        "passthru-" + Path.GetFileNameWithoutExtension(o.Menu ?? o.Kernel ?? o.Disks.FirstOrDefault() ?? o.Cdrom ?? "guest");
}
