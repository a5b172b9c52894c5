using System.Globalization;

namespace Passthru.Host;

/// <summary>One line of /proc/iomem: a physical address range, who holds it, and how deep it nests (two spaces a level).</summary>
public sealed record IomemRange(ulong Start, ulong End, string Name, int Depth)
{
    public bool Overlaps(ulong start, ulong end) => Start <= end && End >= start;
    /// <summary>As /proc/iomem writes it: at least 8 hex digits each.</summary>
    public string Span => $"{Start:x8}-{End:x8}";
}

/// <summary>
/// /proc/iomem, the kernel's map of physical memory and who holds what: where a boot framebuffer sits inside a GPU's
/// BAR. Only root sees the addresses (others read zeros, which hold nothing and are dropped).
/// </summary>
public static class Iomem
{
    public static IReadOnlyList<IomemRange> Read(HostRoot host) => Parse(host.ReadText("proc/iomem") ?? "");

    public static IReadOnlyList<IomemRange> Parse(string text)
    {
        var ranges = new List<IomemRange>();
        foreach (var raw in text.Split('\n'))
        {
            int depth = 0;
            while (depth < raw.Length && raw[depth] == ' ') depth++;
            var line = raw[depth..];
            int dash = line.IndexOf('-'), colon = line.IndexOf(" : ", StringComparison.Ordinal);
            // A range beyond 64 bits is no line the kernel writes: skipped, as other lines that do not parse.
            if (dash <= 0 || colon <= dash
                || !ulong.TryParse(line.AsSpan(0, dash), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var start)
                || !ulong.TryParse(line.AsSpan(dash + 1, colon - dash - 1), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var end)
                || end < start || (start == 0 && end == 0)) continue;
            ranges.Add(new IomemRange(start, end, line[(colon + 3)..].Trim(), depth / 2));
        }
        return ranges;
    }
}
