using System.Globalization;

namespace Passthru.Pci;

/// <summary>
/// How a user names a device on the command line: a full address (0000:83:00.0), a short one (83:00.0, domain 0000)
/// or vendor:device IDs (15b3:1003), which may match several functions.
/// </summary>
public abstract record DeviceSelector(string Text)
{
    public sealed record ByAddress(string Text, PciAddress Address) : DeviceSelector(Text);
    public sealed record ByIds(string Text, ushort Vendor, ushort Device) : DeviceSelector(Text);

    public static DeviceSelector Parse(string text)
    {
        var t = text.Trim();
        if (PciAddress.TryParse(t, out var address)) return new ByAddress(text, address);
        if (t.Length == 9 && t[4] == ':' && ushort.TryParse(t.AsSpan(0, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var v)
            && ushort.TryParse(t.AsSpan(5, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var d)
            && IsHex(t.AsSpan(0, 4)) && IsHex(t.AsSpan(5, 4)))
            return new ByIds(text, v, d);
        throw new UserError(FormatError(text), ExitCodes.Usage);
    }

    internal static string FormatError(string text) =>
        $"'{Shown.Value(text)}' is not a PCI device: use a full address like 0000:83:00.0, a short one like 83:00.0, or vendor:device IDs like 15b3:1003";

    private static bool IsHex(ReadOnlySpan<char> s)
    {
        foreach (var c in s) if (!char.IsAsciiHexDigit(c)) return false;
        return true;
    }

    public bool Matches(PciDevice device) => this switch
    {
        ByAddress a => a.Address == device.Address,
        ByIds i => i.Vendor == device.VendorId && i.Device == device.DeviceId,
        _ => false,
    };

    /// <summary>Every function this selector names; an error when it names none.</summary>
    public IReadOnlyList<PciDevice> Resolve(PciInventory inventory)
    {
        var found = inventory.Devices.Where(Matches).ToList();
        if (found.Count == 0)
            throw new UserError(this is ByIds
                ? $"no PCI function has IDs {Text}: see `passthru list` for the devices of this host"
                : $"no PCI function at {Text}: see `passthru list` for the devices of this host", ExitCodes.Usage);
        return found;
    }

    /// <summary>Exactly one function, for commands that act on one device; several candidates are listed and refused.</summary>
    public PciDevice ResolveOne(PciInventory inventory)
    {
        var found = Resolve(inventory);
        if (found.Count > 1)
            throw new UserError($"{Text} matches {found.Count} functions ({string.Join(", ", found.Select(d => d.Address))}): name one by its address", ExitCodes.Usage);
        return found[0];
    }
}
