using System.Globalization;
using Passthru.Pci;

namespace Passthru.Discovery;

/// <summary>The filters of `passthru list`: class (a name or a hex code), vendor (hex ID or part of its name), driver.</summary>
public sealed record DeviceFilter(string? Class, string? Vendor, string? Driver)
{
    /// <summary>Class names users type, mapped to the PCI base class (2 hex digits) or class+subclass (4).</summary>
    public static readonly IReadOnlyDictionary<string, int> ClassNames = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase)
    {
        ["storage"] = 0x01, ["net"] = 0x02, ["network"] = 0x02, ["display"] = 0x03, ["gpu"] = 0x03,
        ["multimedia"] = 0x04, ["audio"] = 0x0403, ["memory"] = 0x05, ["bridge"] = 0x06, ["communication"] = 0x07,
        ["system"] = 0x08, ["input"] = 0x09, ["serial-bus"] = 0x0c, ["usb"] = 0x0c03, ["wireless"] = 0x0d,
        ["crypto"] = 0x10, ["accelerator"] = 0x12,
    };

    public static DeviceFilter Create(string? cls, string? vendor, string? driver)
    {
        if (cls is not null) ParseClass(cls);
        return new DeviceFilter(cls, vendor, driver);
    }

    private static (int Code, int Digits) ParseClass(string text)
    {
        if (ClassNames.TryGetValue(text, out var code)) return (code, code > 0xff ? 4 : 2);
        var t = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;
        if (t.Length is 2 or 4 or 6 && int.TryParse(t, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out code))
            return (code, t.Length);
        throw new UserError($"--class '{text}' is not a class: use one of {string.Join(", ", ClassNames.Keys)} or a hex code like 02, 0200 or 020000", ExitCodes.Usage);
    }

    public bool Matches(PciDevice device, PciIds ids)
    {
        if (Class is not null)
        {
            var (code, digits) = ParseClass(Class);
            int actual = digits switch { 2 => device.BaseClass, 4 => device.ClassId, _ => device.ClassCode };
            if (actual != code) return false;
        }
        if (Vendor is not null && !VendorMatches(device, ids)) return false;
        if (Driver is not null)
        {
            bool wantNone = Driver is "none" or "-";
            if (wantNone ? device.Driver is not null : !string.Equals(device.Driver, Driver, StringComparison.Ordinal)) return false;
        }
        return true;
    }

    /// <summary>A 4-digit hex vendor ID matches exactly; anything else is a case-insensitive part of the vendor's name.</summary>
    private bool VendorMatches(PciDevice device, PciIds ids)
    {
        var v = Vendor!.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? Vendor[2..] : Vendor;
        if (v.Length == 4 && ushort.TryParse(v, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var id))
            return device.VendorId == id;
        return ids.VendorName(device.VendorId)?.Contains(Vendor, StringComparison.OrdinalIgnoreCase) ?? false;
    }
}
