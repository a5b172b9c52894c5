using System.Globalization;
using Passthru.Host;

namespace Passthru.Pci;

/// <summary>One base address register of a function, as the kernel assigned it.</summary>
/// <param name="Index">0 to 5.</param>
/// <param name="Start">Where the kernel placed it (0 when it could not).</param>
/// <param name="Size">Its size in bytes (always a power of two).</param>
public sealed record Bar(int Index, ulong Start, ulong Size, bool IsIo, bool Is64Bit, bool Prefetchable)
{
    /// <summary>Memory that sits above 4 GiB in a guest: what QEMU's 64-bit PCI hole must hold.</summary>
    public bool Is64BitPrefetchable => !IsIo && Is64Bit && Prefetchable;

    public string Describe() =>
        IsIo ? $"BAR{Index}: {Bytes.Format(Size)} I/O ports"
        : $"BAR{Index}: {Bytes.Format(Size)} memory, {(Is64Bit ? "64-bit" : "32-bit")}, {(Prefetchable ? "prefetchable" : "non-prefetchable")}";
}

/// <summary>
/// A function's BARs from its sysfs `resource` file: one line per resource, "START END FLAGS" in hex, lines 0 to 5 the
/// BARs (then the expansion ROM, then a bridge's windows). The flags are the kernel's IORESOURCE_* bits.
/// </summary>
public static class Bars
{
    private const ulong IoResourceIo = 0x100, IoResourceMem = 0x200, IoResourcePrefetch = 0x2000, IoResourceMem64 = 0x0010_0000;

    public static IReadOnlyList<Bar> Of(HostRoot host, PciAddress a) =>
        host.ReadAttribute($"sys/bus/pci/devices/{a}/resource") is { } text ? Parse(text) : [];

    /// <summary>The BARs a `resource` file lists (unused ones left out); a line that is not three hex numbers ends the list.</summary>
    public static IReadOnlyList<Bar> Parse(string text)
    {
        var bars = new List<Bar>();
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < Math.Min(6, lines.Length); i++)
        {
            if (ParseLine(lines[i]) is not var (start, end, flags)) break;
            if ((flags & (IoResourceIo | IoResourceMem)) == 0 || end < start || (start == 0 && end == 0)) continue;
            bars.Add(new Bar(i, start, end - start + 1, (flags & IoResourceIo) != 0, (flags & IoResourceMem64) != 0, (flags & IoResourcePrefetch) != 0));
        }
        return bars;
    }

    /// <summary>One line of `resource`: START END FLAGS, three hex numbers; null when it is not that.</summary>
    public static (ulong Start, ulong End, ulong Flags)? ParseLine(string line) =>
        line.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [var s, var e, var f] && Hex(s, out var start) && Hex(e, out var end) && Hex(f, out var flags)
            ? (start, end, flags) : null;

    private static bool Hex(string s, out ulong value) =>
        ulong.TryParse(s.StartsWith("0x", StringComparison.Ordinal) ? s[2..] : s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
}

/// <summary>Byte counts as people write them: 16 MiB, 64 GiB, 4 KiB, 100 bytes.</summary>
public static class Bytes
{
    private static readonly string[] Units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

    public static string Format(ulong n)
    {
        int unit = 0;
        ulong whole = n;
        while (whole >= 1024 && whole % 1024 == 0 && unit < Units.Length - 1) { whole /= 1024; unit++; }
        return $"{whole} {Units[unit]}";
    }

    /// <summary>QEMU's size suffixes (K, M, G, T): what -global and -device size properties take.</summary>
    public static string Qemu(ulong n)
    {
        string[] suffix = ["", "K", "M", "G", "T", "P", "E"];
        int unit = 0;
        while (n >= 1024 && n % 1024 == 0 && unit < suffix.Length - 1) { n /= 1024; unit++; }
        return $"{n}{suffix[unit]}";
    }
}
