using Passthru.Host;

namespace Passthru.Pci;

/// <summary>
/// Where a function sits (its bridges up to the root bus, from its sysfs path) and what its config space says about
/// isolation: the PCI Express port type and the ACS capability. Config space past the first 64 bytes is readable by
/// root only (sysfs returns 64 bytes to others), so the answers can be "unknown".
/// </summary>
public sealed class PciTopology(HostRoot host)
{
    // One question about a group walks the same few functions several times: each is read once.
    private readonly Dictionary<PciAddress, byte[]?> _config = [];
    private readonly Dictionary<PciAddress, IReadOnlyList<PciAddress>> _ancestors = [];

    /// <summary>PCI Express capability ID and its device/port types (PCIe base spec 7.5.3.2).</summary>
    private const byte PcieCapability = 0x10;
    public const int RootPort = 4, DownstreamPort = 6, PcieToPciBridge = 7;
    /// <summary>Access Control Services extended capability (PCIe base spec 7.7.8).</summary>
    private const ushort AcsCapability = 0x000d;
    /// <summary>What Linux requires of each port on the path for isolation (drivers/pci/pci.c, REQ_ACS_FLAGS): Source
    /// Validation, P2P Request Redirect, P2P Completion Redirect, Upstream Forwarding.</summary>
    private const ushort RequiredAcs = 0x01 | 0x04 | 0x08 | 0x10;

    /// <summary>The bridges above a function, nearest first (its sysfs path: .../0000:00:05.0/0000:01:00.0/0000:02:01.0).</summary>
    public IReadOnlyList<PciAddress> Ancestors(PciAddress a)
    {
        if (_ancestors.TryGetValue(a, out var known)) return known;
        var target = host.ReadLink($"sys/bus/pci/devices/{a}");
        var path = (target ?? "").Split('/').Select(p => PciAddress.TryParse(p, out var x) ? x : (PciAddress?)null).OfType<PciAddress>().ToList();
        return _ancestors[a] = path.Take(Math.Max(0, path.Count - 1)).Reverse().ToList();
    }

    /// <summary>The functions below a bridge (on its secondary bus and further down).</summary>
    public IReadOnlyList<PciAddress> Below(PciInventory inventory, PciAddress bridge) =>
        inventory.Devices.Where(d => Ancestors(d.Address).Contains(bridge)).Select(d => d.Address).ToList();

    public byte[]? Config(PciAddress a)
    {
        if (_config.TryGetValue(a, out var known)) return known;
        try { return _config[a] = File.ReadAllBytes(host.Path($"sys/bus/pci/devices/{a}/config")); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return _config[a] = null; }
    }

    /// <summary>The PCI Express device/port type, null for a conventional PCI function (or config space not readable).</summary>
    public int? PcieType(PciAddress a) => Config(a) is { } c && Capability(c, PcieCapability) is int at && at + 3 < c.Length ? (c[at + 2] >> 4) & 0xf : null;

    /// <summary>Whether ACS isolates below/at this function: true (the capability with Linux's required controls on), false (absent or off), null (extended config space not readable: not root).</summary>
    public bool? AcsIsolates(PciAddress a)
    {
        var c = Config(a);
        if (c is null || c.Length <= 64) return null;          // only root reads past the header
        if (c.Length <= 0x100) return false;                   // conventional PCI: no extended capabilities, no ACS
        if (ExtendedCapability(c, AcsCapability) is not int at || at + 8 > c.Length) return false;
        ushort control = (ushort)(c[at + 6] | c[at + 7] << 8);
        ushort capability = (ushort)(c[at + 4] | c[at + 5] << 8);
        // A control the port does not implement cannot be required of it (Linux masks by the capability too).
        return (control & RequiredAcs & capability) == (RequiredAcs & capability);
    }

    /// <summary>Whether config space past the 64-byte header could be read (sysfs gives more to root only).</summary>
    public bool Readable(PciAddress a) => Config(a) is { Length: > 64 };

    private static int? Capability(byte[] c, byte id)
    {
        if (c.Length < 0x40 || (c[6] & 0x10) == 0) return null; // status: capabilities list
        int at = c[0x34] & 0xfc;
        for (int guard = 0; at >= 0x40 && at + 1 < c.Length && guard < 48; guard++)
        {
            if (c[at] == id) return at;
            at = c[at + 1] & 0xfc;
        }
        return null;
    }

    private static int? ExtendedCapability(byte[] c, ushort id)
    {
        int at = 0x100;
        for (int guard = 0; at >= 0x100 && at + 4 <= c.Length && guard < 512; guard++)
        {
            uint header = (uint)(c[at] | c[at + 1] << 8 | c[at + 2] << 16 | c[at + 3] << 24);
            if (header == 0 || header == 0xffffffff) return null;
            if ((header & 0xffff) == id) return at;
            at = (int)(header >> 20) & 0xffc;
        }
        return null;
    }
}
