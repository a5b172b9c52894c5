namespace Passthru.Pci;

/// <summary>
/// The unit the IOMMU isolates: QEMU (through the kernel's vfio) takes a group whole, so every endpoint in it must be
/// held by vfio-pci, or by no driver, before any member can be passed through.
/// </summary>
public sealed record IommuGroup(int Number, IReadOnlyList<PciDevice> Members)
{
    public IEnumerable<PciDevice> Endpoints => Members.Where(m => m.IsEndpoint);

    /// <summary>
    /// Viable as the kernel judges it (vfio_dev_driver_allowed): endpoints bound to vfio-pci, to pci-stub or to no
    /// driver; bridges and ports do not count.
    /// </summary>
    public bool IsViable => Endpoints.All(IsHeld);

    /// <summary>The endpoints that stop the group from being viable, with the driver that holds each.</summary>
    public IEnumerable<PciDevice> Blockers => Endpoints.Where(d => !IsHeld(d));

    private static bool IsHeld(PciDevice d) => d.Driver is null or "vfio-pci" or "pci-stub";
}
