namespace Passthru.Pci;

/// <summary>One BAR the Resizable BAR capability lets the host resize: the sizes it supports and its size now.</summary>
public sealed record ResizableBarEntry(int BarIndex, IReadOnlyList<ulong> SupportedSizes, ulong CurrentSize);

/// <summary>The Resizable BAR extended capability (ID 0x15) of a function, where its config space holds it.</summary>
public sealed record ResizableBar(int Offset, IReadOnlyList<ResizableBarEntry> Bars)
{
    public const ushort CapabilityId = 0x15;
    private const int ExtendedStart = 0x100;

    /// <summary>
    /// The capability in config space bytes (as sysfs `config` gives them: 4096 as root, 256 otherwise). Null when the
    /// function has none, or when only the first 256 bytes are there (see <see cref="ExtendedReadable"/>). A capability
    /// whose structure does not fit is a <see cref="FormatException"/> with the reason.
    /// </summary>
    public static ResizableBar? Parse(ReadOnlySpan<byte> config)
    {
        if (FindExtended(config, CapabilityId) is not int at) return null;
        // Per BAR: a capability register (sizes 1 MiB to 128 TiB in bits 4-31) and a control register (index, count,
        // current size, and sizes from 256 TiB up in bits 16-31).
        if (at + 12 > config.Length) throw new FormatException($"its capability at 0x{at:x} is cut off by the end of config space");
        uint firstControl = U32(config, at + 8);
        int count = (int)((firstControl >> 5) & 7);
        if (count is < 1 or > 6) throw new FormatException($"its capability at 0x{at:x} says {count} resizable BARs (1 to 6 can be)");
        if (at + 4 + 8 * count > config.Length) throw new FormatException($"its capability at 0x{at:x} lists {count} BARs but config space ends at 0x{config.Length:x}");
        var entries = new List<ResizableBarEntry>();
        for (int i = 0; i < count; i++)
        {
            uint cap = U32(config, at + 4 + 8 * i), control = U32(config, at + 8 + 8 * i);
            var sizes = new List<ulong>();
            for (int bit = 4; bit < 32; bit++) if ((cap & (1u << bit)) != 0) sizes.Add(1UL << (bit + 16));   // bit 4: 1 MiB
            for (int bit = 16; bit < 32; bit++) if ((control & (1u << bit)) != 0) sizes.Add(1UL << (bit + 32)); // bit 16: 256 TiB
            int index = (int)(control & 7);
            if (index > 5) throw new FormatException($"its entry {i} names BAR{index} (a function has BAR0 to BAR5)");
            int encoded = (int)((control >> 8) & 0x3f);
            if (encoded > 43) throw new FormatException($"its entry {i} gives BAR{index} a size of 2^{encoded + 20} bytes, beyond 2^63");
            entries.Add(new ResizableBarEntry(index, sizes, 1UL << (encoded + 20)));
        }
        return new ResizableBar(at, entries);
    }

    /// <summary>Whether <paramref name="config"/> reaches past the first 256 bytes, where extended capabilities live.</summary>
    public static bool ExtendedReadable(ReadOnlySpan<byte> config) => config.Length > ExtendedStart;

    /// <summary>
    /// The offset of an extended capability, walking the list from 0x100 (each header: ID in bits 0-15, the next
    /// header's offset in bits 20-31, 0 or below 0x100 ending it). A loop or a list past the end stops the walk.
    /// </summary>
    public static int? FindExtended(ReadOnlySpan<byte> config, ushort id)
    {
        int at = ExtendedStart;
        for (int hops = 0; hops < (4096 - ExtendedStart) / 4 && at >= ExtendedStart && at + 4 <= config.Length; hops++)
        {
            uint header = U32(config, at);
            if (header is 0 or 0xffff_ffff) return null;
            if ((header & 0xffff) == id) return at;
            at = (int)((header >> 20) & 0xffc);
        }
        return null;
    }

    private static uint U32(ReadOnlySpan<byte> b, int at) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(b[at..]);
}
