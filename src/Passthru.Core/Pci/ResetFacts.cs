using Passthru.Host;

namespace Passthru.Pci;

/// <summary>How a function can be reset, and which others a reset would hit with it.</summary>
/// <param name="Methods">The kernel's reset_method, in the order it tries them (null: the kernel does not say; empty: none).</param>
/// <param name="BlastRadius">When the first method is a bus reset (a secondary bus reset on the parent bridge): every other function below that bridge, which the reset hits too.</param>
public sealed record ResetFacts(IReadOnlyList<string>? Methods, PciAddress? ResetBridge, IReadOnlyList<PciAddress> BlastRadius, string? PowerState, bool? D3coldAllowed)
{
    public bool NoReset => Methods is { Count: 0 };
    public bool BusResetOnly => Methods is { Count: > 0 } m && m[0] is "bus" or "cxl_bus";

    /// <summary>When the function is a GPU known to need a device-specific reset (see <see cref="ResetQuirks"/>).</summary>
    public ResetQuirk? Quirk { get; init; }

    /// <summary>vendor-reset's module is loaded (sys/module/vendor_reset): it supplies device_specific for the quirk table's GPUs.</summary>
    public bool VendorResetLoaded { get; init; }

    public bool OffersDeviceSpecific => Methods?.Contains(ResetQuirks.DeviceSpecific) == true;

    /// <summary>
    /// What show says of a function in the quirk table: which family, whether vendor-reset can serve it here, and what
    /// to do. Empty for every other function.
    /// </summary>
    public IEnumerable<string> QuirkAdvice(PciAddress a)
    {
        if (Quirk is not { } q) yield break;
        yield return $"needs a device-specific reset: AMD {q.Family} (the AMD reset bug: after a guest, a bus reset or FLR can leave it hung; gnif/vendor-reset knows it)";
        yield return $"vendor_reset module: {(VendorResetLoaded ? "loaded" : "not loaded")}; reset_method offers device_specific: "
            + (Methods is null ? "no (this kernel has no reset_method: 5.15 or newer has)" : OffersDeviceSpecific ? "yes" : VendorResetLoaded ? "not yet (vendor_reset supplies it once written)" : "no");
        if (Methods is null) yield return "what to do: use a kernel with reset_method (5.15 or newer) and vendor-reset";
        else if (!VendorResetLoaded) yield return $"what to do: install vendor-reset (github.com/gnif/vendor-reset, as DKMS), `modprobe {ResetQuirks.Module}`, then `passthru bind --reset-method {ResetQuirks.DeviceSpecific} {a}`";
        else if (Methods.Count == 0 || Methods[0] != ResetQuirks.DeviceSpecific) yield return $"what to do: `passthru bind --reset-method {ResetQuirks.DeviceSpecific} {a}` (put back when it is given back)";
    }

    /// <summary>The warning bind and run give, or null.</summary>
    public string? Warning(PciAddress a) =>
        NoReset ? $"{a} has no reset method: it may carry state from the host into the guest, and from one guest into the next"
        : BusResetOnly && BlastRadius.Count > 0 ? $"{a} can only be reset by a bus reset on {ResetBridge}, which also resets {string.Join(", ", BlastRadius)}: vfio needs them all free to reset it (pass them together)"
        : null;

    /// <summary>How <paramref name="d"/> resets and what else a reset hits, from the kernel's reset_method and the topology above it.</summary>
    public static ResetFacts Of(HostRoot host, PciInventory inventory, PciDevice d)
    {
        var (bridge, radius) = Reach(host, inventory, d);
        var power = host.ReadAttribute($"sys/bus/pci/devices/{d.Address}/power_state")?.Trim();
        var d3 = host.ReadAttribute($"sys/bus/pci/devices/{d.Address}/d3cold_allowed")?.Trim();
        return new ResetFacts(d.ResetMethods, bridge, radius, power, d3 switch { "1" => true, "0" => false, _ => null })
        {
            Quirk = ResetQuirks.Find(d),
            VendorResetLoaded = host.DirectoryExists($"sys/module/{ResetQuirks.Module}"),
        };
    }

    /// <summary>
    /// The warning bind and run give (see <see cref="Warning"/>), from reset_method and the topology alone: bind needs
    /// nothing else of the facts (power state, the quirk table, vendor-reset), which cost it reads on every run.
    /// </summary>
    public static string? WarningFor(HostRoot host, PciInventory inventory, PciDevice d)
    {
        var (bridge, radius) = Reach(host, inventory, d);
        return new ResetFacts(d.ResetMethods, bridge, radius, null, null).Warning(d.Address);
    }

    /// <summary>The bridge a bus reset would come from, and the other functions below it, when bus reset is the first method.</summary>
    private static (PciAddress? Bridge, IReadOnlyList<PciAddress> Radius) Reach(HostRoot host, PciInventory inventory, PciDevice d)
    {
        if (d.ResetMethods is not { Count: > 0 } m || m[0] is not ("bus" or "cxl_bus")) return (null, []);
        var topology = new PciTopology(host);
        return topology.Ancestors(d.Address) is { Count: > 0 } up ? (up[0], topology.Below(inventory, up[0]).Where(x => x != d.Address).ToList()) : (null, []);
    }
}
