using Passthru.Pci;

namespace Passthru.Export;

/// <summary>
/// A VM as libvirt needs to know it: what `passthru run` would start, without the QEMU-specific spelling.
/// Paths are absolute; <see cref="Initrd"/> is QEMU's -initrd string (for a multiboot guest, the module list with its
/// commas, which libvirt passes on to QEMU untouched).
/// </summary>
public sealed record VmDefinition
{
    public required string Name { get; init; }
    public int MemoryMiB { get; init; } = 1024;
    public int Cpus { get; init; } = 2;
    public string Machine { get; init; } = "q35";
    /// <summary>"kvm" or "tcg".</summary>
    public string Accelerator { get; init; } = "kvm";
    public string? Emulator { get; init; }
    public string? Kernel { get; init; }
    public string? Initrd { get; init; }
    public string? Cmdline { get; init; }
    public IReadOnlyList<string> Disks { get; init; } = [];
    public string? Cdrom { get; init; }
    public IReadOnlyList<HostDevice> Devices { get; init; } = [];
    /// <summary>An emulated NIC on QEMU's user network (libvirt: interface type='user'); null: none.</summary>
    public Passthru.Launch.GuestNetwork? Net { get; init; }
    /// <summary>Arguments given after `--`: kept as qemu:commandline so nothing the user asked for is lost.</summary>
    public IReadOnlyList<string> ExtraQemuArgs { get; init; } = [];
    /// <summary>The 64-bit PCI hole the passed devices' large BARs need (bytes; null: the machine's default holds them).</summary>
    public ulong? PciHole64 { get; init; }
}

/// <summary>A passed-through function and its per-device options.</summary>
public sealed record HostDevice(PciAddress Address, bool RomBar = true, string? RomFile = null)
{
    public bool XVga { get; init; }
    /// <summary>
    /// What this host's sysfs says about the function (IDs, class, SR-IOV role): what the fleet targets select devices
    /// by, since their nodes are other machines. Null only for definitions built by hand.
    /// </summary>
    public PciDevice? Facts { get; init; }
}
