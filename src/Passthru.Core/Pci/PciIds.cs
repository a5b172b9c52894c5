using System.Globalization;
using System.Text;

namespace Passthru.Pci;

/// <summary>
/// Names from the pci.ids database, formatted the way lspci -nn formats them. The file (about 1.3 MB) is read as
/// bytes and only its top-level lines are indexed, on first use; device and class lines are found by scanning
/// from their vendor's or class's offset, so start-up never parses the whole database.
/// </summary>
public sealed class PciIds
{
    public static readonly string[] DefaultLocations = ["usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids"];

    public string? Source { get; }
    private readonly byte[] _data;
    private Dictionary<int, int>? _vendorOffsets;
    private Dictionary<int, int>? _classOffsets;
    private readonly Dictionary<int, string?> _deviceCache = [];
    private readonly Lock _lock = new();

    private PciIds(string? source, byte[] data) { Source = source; _data = data; }

    /// <summary>No database: numeric IDs only, as lspci prints them without one.</summary>
    public static PciIds None { get; } = new(null, []);

    public bool HasNames => _data.Length > 0;

    /// <summary>Loads an explicit file (an error when unusable), or the first default location found under the host root.</summary>
    public static PciIds Load(string? explicitFile, Host.HostRoot host)
    {
        if (explicitFile is not null) return FromFile(explicitFile);
        foreach (var location in DefaultLocations)
        {
            // The host's database, then this machine's: a captured tree usually has none of its own.
            foreach (var candidate in new[] { host.Path(location), "/" + location })
                if (File.Exists(candidate)) return FromFile(candidate);
        }
        return None;
    }

    public static PciIds FromFile(string path)
    {
        return FromBytes(Passthru.Host.InputFile.ReadBytes("--pci-ids", path), path);
    }

    public static PciIds FromBytes(byte[] data, string source)
    {
        if (data.Length == 0)
            throw new UserError($"pci.ids file '{source}' is empty: reinstall the pci.ids package or pass another with --pci-ids", ExitCodes.Usage);
        if (data[^1] != (byte)'\n')
            throw new UserError($"pci.ids file '{source}' ends mid-line (truncated?): reinstall the pci.ids package or pass another with --pci-ids", ExitCodes.Usage);
        return new PciIds(source, data);
    }

    /// <summary>"Intel Corporation 82574L Gigabit Network Connection [8086:10d3]", as lspci -nn prints it.</summary>
    public string FormatVendorDevice(ushort vendor, ushort device)
    {
        var v = VendorName(vendor);
        var d = v is null ? null : DeviceName(vendor, device);
        var ids = $"{vendor:x4}:{device:x4}";
        return (v, d) switch
        {
            (not null, not null) => $"{v} {d} [{ids}]",
            (not null, null) => $"{v} Device [{ids}]",
            _ => $"Device [{ids}]",
        };
    }

    /// <summary>"Ethernet controller [0200]": the subclass's name, else the class's, else "Class [0200]".</summary>
    public string FormatClass(int classId) => $"{ClassName(classId) ?? "Class"} [{classId:x4}]";

    /// <summary>Subsystem as lspci -v names it: a subsystem entry, or the device's own name when the IDs repeat it.</summary>
    public string FormatSubsystem(ushort vendor, ushort device, ushort subVendor, ushort subDevice)
    {
        var v = VendorName(subVendor);
        var d = SubsystemName(vendor, device, subVendor, subDevice)
                ?? (vendor == subVendor && device == subDevice ? DeviceName(vendor, device) : null);
        var ids = $"{subVendor:x4}:{subDevice:x4}";
        return (v, d) switch
        {
            (not null, not null) => $"{v} {d} [{ids}]",
            (not null, null) => $"{v} Device [{ids}]",
            _ => $"Device [{ids}]",
        };
    }

    public string? VendorName(ushort vendor)
    {
        EnsureIndex();
        return _vendorOffsets!.TryGetValue(vendor, out var offset) ? NameAfterId(offset, 4) : null;
    }

    public string? DeviceName(ushort vendor, ushort device)
    {
        EnsureIndex();
        int key = vendor << 16 | device;
        lock (_lock)
            if (_deviceCache.TryGetValue(key, out var cached)) return cached;
        string? name = null;
        if (_vendorOffsets!.TryGetValue(vendor, out var offset))
            name = FindChild(offset, depth: 1, device, idLength: 4);
        lock (_lock) _deviceCache[key] = name;
        return name;
    }

    public string? SubsystemName(ushort vendor, ushort device, ushort subVendor, ushort subDevice)
    {
        EnsureIndex();
        if (!_vendorOffsets!.TryGetValue(vendor, out var offset)) return null;
        int deviceLine = FindChildOffset(offset, 1, device, 4);
        if (deviceLine < 0) return null;
        var wanted = $"{subVendor:x4} {subDevice:x4}";
        foreach (var (start, length) in Children(deviceLine, 2))
        {
            var line = Line(start, length).TrimStart('\t');
            if (line.Length > 9 && string.Equals(line[..9], wanted, StringComparison.OrdinalIgnoreCase))
                return line[9..].Trim();
        }
        return null;
    }

    public string? ClassName(int classId)
    {
        EnsureIndex();
        if (!_classOffsets!.TryGetValue(classId >> 8, out var offset)) return null;
        return FindChild(offset, depth: 1, classId & 0xff, idLength: 2) ?? NameAfterId(offset + 2, 2);
    }

    private void EnsureIndex()
    {
        if (_vendorOffsets is not null) return;
        lock (_lock)
        {
            if (_vendorOffsets is not null) return;
            var vendors = new Dictionary<int, int>(2600);
            var classes = new Dictionary<int, int>(32);
            var data = _data.AsSpan();
            int pos = 0, lineNumber = 0;
            while (pos < data.Length)
            {
                int end = data[pos..].IndexOf((byte)'\n');
                int length = end < 0 ? data.Length - pos : end;
                lineNumber++;
                var line = data.Slice(pos, length);
                if (line.Length > 0 && line[0] != (byte)'\t' && line[0] != (byte)'#')
                {
                    if (line.Length >= 6 && IsHex(line[..4]) && line[4] == (byte)' ')
                        vendors.TryAdd(ParseHex(line[..4]), pos);
                    else if (line.Length >= 5 && line[0] == (byte)'C' && line[1] == (byte)' ' && IsHex(line.Slice(2, 2)))
                        classes.TryAdd(ParseHex(line.Slice(2, 2)), pos);
                    else if (!IsBlank(line))
                        throw new UserError($"pci.ids file '{Source}' line {lineNumber} is not a vendor or class entry: the file is damaged; reinstall it or pass another with --pci-ids", ExitCodes.Usage);
                }
                pos += length + 1;
            }
            _classOffsets = classes;
            _vendorOffsets = vendors;
        }
    }

    /// <summary>The lines one level deeper below the line at <paramref name="parentOffset"/>, skipping comments.</summary>
    private IEnumerable<(int Start, int Length)> Children(int parentOffset, int depth)
    {
        int pos = NextLine(parentOffset);
        while (pos < _data.Length)
        {
            int end = Array.IndexOf(_data, (byte)'\n', pos);
            int length = (end < 0 ? _data.Length : end) - pos;
            int tabs = 0;
            while (tabs < length && _data[pos + tabs] == (byte)'\t') tabs++;
            bool comment = tabs < length && _data[pos + tabs] == (byte)'#';
            if (!comment && length > 0)
            {
                if (tabs < depth) yield break;
                if (tabs == depth) yield return (pos, length);
            }
            pos += length + 1;
        }
    }

    private int FindChildOffset(int parentOffset, int depth, int id, int idLength)
    {
        foreach (var (start, length) in Children(parentOffset, depth))
        {
            var span = _data.AsSpan(start + depth, length - depth);
            if (span.Length > idLength && IsHex(span[..idLength]) && ParseHex(span[..idLength]) == id) return start;
        }
        return -1;
    }

    private string? FindChild(int parentOffset, int depth, int id, int idLength)
    {
        int start = FindChildOffset(parentOffset, depth, id, idLength);
        return start < 0 ? null : NameAfterId(start + depth, idLength);
    }

    private string NameAfterId(int offset, int idLength)
    {
        int end = Array.IndexOf(_data, (byte)'\n', offset);
        if (end < 0) end = _data.Length;
        return Encoding.UTF8.GetString(_data, offset + idLength, end - offset - idLength).Trim();
    }

    private string Line(int start, int length) => Encoding.UTF8.GetString(_data, start, length);

    private int NextLine(int offset)
    {
        int end = Array.IndexOf(_data, (byte)'\n', offset);
        return end < 0 ? _data.Length : end + 1;
    }

    private static bool IsHex(ReadOnlySpan<byte> s)
    {
        foreach (var b in s) if (!char.IsAsciiHexDigit((char)b)) return false;
        return true;
    }

    private static bool IsBlank(ReadOnlySpan<byte> s)
    {
        foreach (var b in s) if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r')) return false;
        return true;
    }

    private static int ParseHex(ReadOnlySpan<byte> s) =>
        int.Parse(Encoding.ASCII.GetString(s), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
}
