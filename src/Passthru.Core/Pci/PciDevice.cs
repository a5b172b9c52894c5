namespace Passthru.Pci;

/// <summary>One PCI function as sysfs describes it. Pure data: read by <see cref="PciInventory"/>.</summary>
public sealed record PciDevice
{
    public required PciAddress Address { get; init; }
    public required ushort VendorId { get; init; }
    public required ushort DeviceId { get; init; }
    /// <summary>24-bit class: base class, subclass, programming interface (0x020000 for Ethernet).</summary>
    public required int ClassCode { get; init; }
    public required byte Revision { get; init; }
    public ushort? SubsystemVendorId { get; init; }
    public ushort? SubsystemDeviceId { get; init; }
    /// <summary>Name of the bound driver, or null when no driver holds the function.</summary>
    public string? Driver { get; init; }
    /// <summary>The driver_override attribute, or null when unset ("(null)" in sysfs) or absent.</summary>
    public string? DriverOverride { get; init; }
    public int? IommuGroup { get; init; }
    /// <summary>boot_vga: true for the firmware's console GPU; null when the attribute is absent (not a VGA device).</summary>
    public bool? BootVga { get; init; }
    /// <summary>reset_method (e.g. "flr", "bus"); empty when the function has none; null when the kernel does not say.</summary>
    public IReadOnlyList<string>? ResetMethods { get; init; }
    public int? NumaNode { get; init; }
    /// <summary>For an SR-IOV virtual function, its physical function.</summary>
    public PciAddress? PhysicalFunction { get; init; }
    /// <summary>For an SR-IOV physical function, its enabled virtual functions.</summary>
    public IReadOnlyList<PciAddress> VirtualFunctions { get; init; } = [];
    public int? SriovTotalVfs { get; init; }
    /// <summary>For an SR-IOV physical function, its sriov_numvfs: how many VFs are enabled now.</summary>
    public int? SriovNumVfs { get; init; }

    public int BaseClass => ClassCode >> 16;
    public int SubClass => (ClassCode >> 8) & 0xff;
    /// <summary>The 16-bit class code lspci shows in brackets.</summary>
    public int ClassId => ClassCode >> 8;

    /// <summary>
    /// PCI-to-PCI bridges (and so PCIe root and downstream ports): never bound to vfio-pci themselves, and the
    /// kernel does not count them against a group's viability.
    /// </summary>
    public bool IsBridge => ClassId is 0x0604 or 0x0609 || Driver == "pcieport";

    public bool IsHostBridge => ClassId == 0x0600;

    /// <summary>An endpoint counts for group viability and moves with its group.</summary>
    public bool IsEndpoint => !IsBridge;

    public bool IsBoundToVfio => Driver == "vfio-pci";
}
