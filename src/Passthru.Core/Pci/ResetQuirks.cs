using System.Globalization;

namespace Passthru.Pci;

/// <summary>A GPU that needs a device-specific reset, and the family vendor-reset knows it as.</summary>
public sealed record ResetQuirk(ushort VendorId, ushort DeviceId, string Family);

/// <summary>
/// The GPUs known to need a device-specific reset (the AMD reset bug: after a guest used them, a bus reset or FLR
/// leaves them hung, and the next guest's driver fails). Kept as data in ResetQuirks.txt, with its source named there, and compiled in as TableText (Passthru.Core.csproj):
/// the device table of gnif/vendor-reset, whose module adds `device_specific` to these functions' reset_method.
/// </summary>
public static partial class ResetQuirks
{
    public const string Module = "vendor_reset";
    public const string DeviceSpecific = "device_specific";

    private static readonly Lazy<IReadOnlyDictionary<(ushort, ushort), ResetQuirk>> Table = new(() => Parse(TableText));

    public static IReadOnlyCollection<ResetQuirk> All => Table.Value.Values.ToList();

    public static ResetQuirk? Find(ushort vendor, ushort device) => Table.Value.GetValueOrDefault((vendor, device));

    public static ResetQuirk? Find(PciDevice d) => Find(d.VendorId, d.DeviceId);

    /// <summary>The table's text: "VENDOR:DEVICE family [(note)]" lines, '#' comments. A malformed line is a build mistake.</summary>
    public static IReadOnlyDictionary<(ushort, ushort), ResetQuirk> Parse(string text)
    {
        var table = new Dictionary<(ushort, ushort), ResetQuirk>();
        int n = 0;
        foreach (var raw in text.Split('\n'))
        {
            n++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var words = line.Split(' ', 2);
            var ids = words[0].Split(':');
            if (words.Length < 2 || ids.Length != 2
                || !ushort.TryParse(ids[0], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var v)
                || !ushort.TryParse(ids[1], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var d)
                || ids[0].Length != 4 || ids[1].Length != 4)
                throw new FormatException($"ResetQuirks.txt line {n}: '{line}' is not 'VENDOR:DEVICE family'");
            if (!table.TryAdd((v, d), new ResetQuirk(v, d, words[1].Trim())))
                throw new FormatException($"ResetQuirks.txt line {n}: {words[0]} is listed twice");
        }
        return table;
    }
}
