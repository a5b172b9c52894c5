using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Discovery;

/// <summary>Why an IOMMU group holds more than one function: the cause found in the topology, and what a user can do.</summary>
public sealed record GroupExplanation(string Cause, string Advice);

/// <summary>Isolation facts for `show`: why a group holds more than one function (reset facts: <see cref="ResetFacts"/>, in Pci, since bind warns by them too).</summary>
public static class DeviceSafety
{
    public const string Advice = "put the device in another slot (one whose root port isolates it), use a platform whose root ports have ACS, "
        + "or pass the whole group (--group); the pcie_acs_override kernel patch only makes Linux pretend the devices are isolated "
        + "(they can still reach each other behind the IOMMU's back), so Passthru never applies it";

    /// <summary>Why the function's group holds other functions, from the bridges above it and their ACS capabilities; null when it is alone.</summary>
    public static GroupExplanation? ExplainGroup(HostRoot host, PciInventory inventory, PciDevice d)
    {
        var group = inventory.GroupOf(d);
        if (group is null || group.Members.Count(m => m.Address != d.Address && !m.IsBridge) == 0) return null;
        var topology = new PciTopology(host);
        var up = topology.Ancestors(d.Address);
        // A loop, not Where().Select(): Select on LINQ's iterators is a generic virtual method, which the static binary
        // resolves through its type loader on first use (about a millisecond under emulation).
        var mates = new List<PciAddress>();
        foreach (var m in group.Members)
            if (m.Address != d.Address && !m.IsBridge) mates.Add(m.Address);
        var others = string.Join(", ", mates);
        // Conventional PCI behind a PCIe-to-PCI bridge: the bridge takes over its children's requests (its requester
        // ID), so the IOMMU sees one source for all of them.
        foreach (var b in up)
            if (topology.PcieType(b) == PciTopology.PcieToPciBridge)
                return new GroupExplanation($"{b} is a PCIe-to-PCI bridge: every function behind it reaches the IOMMU with the bridge's requester ID, "
                    + $"so the IOMMU cannot tell {d.Address} from {others} and they form one group", Advice);
        if (!topology.Readable(d.Address) || up.Any(b => !topology.Readable(b)))
            return new GroupExplanation($"its group also holds {others}; the reason is in the ACS capabilities, in config space that only root can read (run show as root)", Advice);
        // A multifunction device whose functions may talk to each other directly.
        var siblings = group.Members.Where(m => m.Address != d.Address && m.Address.Domain == d.Address.Domain && m.Address.Bus == d.Address.Bus && m.Address.Device == d.Address.Device).ToList();
        if (siblings.Count > 0 && topology.AcsIsolates(d.Address) != true)
            return new GroupExplanation($"{d.Address} is one function of a multifunction device without ACS isolation between its functions "
                + $"({string.Join(", ", siblings.Select(s => s.Address))}): they may reach each other without the IOMMU, so they share a group", Advice);
        foreach (var b in up)
            if (topology.PcieType(b) is PciTopology.RootPort or PciTopology.DownstreamPort && topology.AcsIsolates(b) == false)
                return new GroupExplanation($"{b}, a PCIe {(topology.PcieType(b) == PciTopology.RootPort ? "root" : "switch downstream")} port above {d.Address}, "
                    + $"has no ACS isolation (no ACS capability, or its P2P redirect and upstream forwarding controls are off): devices below it may reach each other "
                    + $"without the IOMMU, so {d.Address} shares its group with {others}", Advice);
        return new GroupExplanation($"its group also holds {others}; no bridge without isolation was found above it (the platform's firmware or an IOMMU quirk may group them)", Advice);
    }
}
