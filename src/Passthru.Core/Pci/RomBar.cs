using Passthru.Host;

namespace Passthru.Pci;

/// <summary>
/// A function's expansion ROM as sysfs shows it without reading it: the ROM resource (the seventh line of `resource`:
/// start, end, flags) and whether the `rom` attribute is there (the kernel makes it only for a function with a ROM).
/// Reading this changes nothing, so `show` can; reading the ROM itself means enabling it (`passthru rom`).
/// </summary>
public sealed record RomBar(ulong Start, ulong Size, bool Shadow, bool Enabled, bool Attribute)
{
    private const int RomResource = 6;
    private const ulong RomEnable = 1 << 0;  // IORESOURCE_ROM_ENABLE: the ROM BAR decodes (enabled by `echo 1 > rom`, or left on)
    private const ulong RomShadow = 1 << 1;  // IORESOURCE_ROM_SHADOW: a copy at 0xc0000, the boot VGA's BIOS shadow

    /// <summary>The function's ROM, or null when it has none (no ROM resource and no rom attribute).</summary>
    public static RomBar? Of(HostRoot host, PciAddress address)
    {
        var device = $"sys/bus/pci/devices/{address}";
        bool attribute = host.Exists($"{device}/rom");
        var lines = host.ReadText($"{device}/resource")?.Split('\n');
        if (lines is not null && lines.Length > RomResource && Bars.ParseLine(lines[RomResource]) is var (start, end, flags) && end > start)
            return new RomBar(start, end - start + 1, (flags & RomShadow) != 0, (flags & RomEnable) != 0, attribute);
        return attribute ? new RomBar(0, 0, false, false, true) : null;
    }

}
