using System.Text.Json;
using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Discovery;

/// <summary>
/// What show says of a function's BARs: each one's size and kind (from sysfs `resource`), and the Resizable BAR
/// capability (from config space), which decide whether the guest's PCI holes can hold them.
/// </summary>
public sealed record BarReport(IReadOnlyList<Bar> Bars, ResizableBar? Resizable, string? ResizableNote)
{
    public static BarReport Of(HostRoot host, PciDevice d)
    {
        var bars = Pci.Bars.Of(host, d.Address);
        var config = host.ReadBytes($"sys/bus/pci/devices/{d.Address}/config", 4096) ?? [];
        if (!ResizableBar.ExtendedReadable(config))
            return new BarReport(bars, null, IsPcie(config) ? "not known: only the first 256 bytes of config space are readable (run as root for all 4096)" : null);
        try { return ResizableBar.Parse(config) is { } rebar ? new BarReport(bars, rebar, null) : new BarReport(bars, null, "none"); }
        catch (FormatException e) { return new BarReport(bars, null, $"unreadable: {e.Message}"); }
    }

    /// <summary>A PCI Express function (capability 0x10 in the standard list): it has extended config space to read.</summary>
    private static bool IsPcie(byte[] config)
    {
        if (config.Length < 0x40 || (config[0x06] & 0x10) == 0) return false;
        int at = config[0x34] & 0xfc;
        for (int hops = 0; hops < 48 && at >= 0x40 && at + 1 < config.Length; hops++)
        {
            if (config[at] == 0x10) return true;
            at = config[at + 1] & 0xfc;
        }
        return false;
    }

    public IEnumerable<(string Label, string Value)> Rows()
    {
        if (Bars.Count == 0) yield return ("BARs", "none assigned");
        for (int i = 0; i < Bars.Count; i++) yield return (i == 0 ? "BARs" : "", Bars[i].Describe());
        if (Resizable is { } r)
            foreach (var e in r.Bars)
                yield return (e == r.Bars[0] ? "Resizable BAR" : "", $"BAR{e.BarIndex}: now {Bytes.Format(e.CurrentSize)}; supports {string.Join(", ", e.SupportedSizes.Select(Bytes.Format))}");
        else if (ResizableNote is { } note) yield return ("Resizable BAR", note);
    }

    public void WriteJson(Utf8JsonWriter json)
    {
        json.WriteStartArray("bars");
        foreach (var b in Bars)
        {
            json.WriteStartObject();
            json.WriteNumber("index", b.Index);
            json.WriteNumber("size", b.Size);
            json.WriteString("type", b.IsIo ? "io" : "memory");
            json.WriteBoolean("is_64bit", b.Is64Bit);
            json.WriteBoolean("prefetchable", b.Prefetchable);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        if (Resizable is null) json.WriteNull("resizable_bar");
        else
        {
            json.WriteStartArray("resizable_bar");
            foreach (var e in Resizable.Bars)
            {
                json.WriteStartObject();
                json.WriteNumber("bar", e.BarIndex);
                json.WriteNumber("current_size", e.CurrentSize);
                json.WriteStartArray("supported_sizes");
                foreach (var s in e.SupportedSizes) json.WriteNumberValue(s);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndArray();
        }
    }
}
