using Passthru.Pci;

namespace Passthru.Discovery;

/// <summary>
/// What it would take to pass one device through: which functions would move to vfio-pci (the whole group), and
/// what stands in the way. Read-only: the binding engine turns this into writes.
/// </summary>
public sealed record PassthroughAssessment(
    PciDevice Device,
    IommuGroup? Group,
    IReadOnlyList<PciDevice> ToMove,
    IReadOnlyList<string> Obstacles,
    IReadOnlyList<string> Warnings)
{
    public bool Possible => Obstacles.Count == 0;
    public bool Ready => Possible && ToMove.Count == 0;

    public static PassthroughAssessment Of(PciDevice device, PciInventory inventory)
    {
        var obstacles = new List<string>();
        var warnings = new List<string>();
        var group = inventory.GroupOf(device);
        if (!inventory.HasIommuGroups)
            obstacles.Add("this host has no IOMMU groups (IOMMU off or absent): see `passthru check`");
        else if (group is null)
            obstacles.Add("the device is in no IOMMU group: the IOMMU does not cover it");
        if (device.IsBridge || device.IsHostBridge)
            obstacles.Add("bridges and ports stay with the host: pass through the endpoints behind them");
        if (device.BootVga == true)
            warnings.Add("this is the boot VGA device: the host console uses it (bind and run need --release-console, which hands the console over and takes it back after)");
        if (device.ResetMethods is { Count: 0 })
            warnings.Add("the device has no reset method: it may keep state between guests");

        var toMove = group is null ? [] : group.Endpoints.Where(d => !d.IsBoundToVfio).ToList();
        var others = group is null ? [] : group.Endpoints.Where(d => d.Address != device.Address).ToList();
        if (others.Count > 0)
            warnings.Add($"IOMMU group {group!.Number} also holds {string.Join(", ", others.Select(o => o.Address))}: they move with it (bind --group)");
        return new PassthroughAssessment(device, group, obstacles.Count > 0 ? [] : toMove, obstacles, warnings);
    }
}
