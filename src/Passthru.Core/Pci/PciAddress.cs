using System.Globalization;

namespace Passthru.Pci;

/// <summary>A PCI function's address, DDDD:BB:DD.F, parsed once and compared as a value.</summary>
public readonly record struct PciAddress(int Domain, int Bus, int Device, int Function) : IComparable<PciAddress>, ISpanFormattable
{
    // Formatted into the caller's buffer (ISpanFormattable), so that an address inside an interpolated string
    // ($"sys/bus/pci/devices/{address}/net") is written where it goes. Formatted through a string of its own, it was an
    // interpolation inside an interpolation: two of ArrayPool<char>.Shared's buffers out at once, and the second one
    // back found the first's place taken, so the pool set up its per-core stacks, whose first use times the CPU-number
    // instruction against a thread-static read (ProcessorIdCache's speed check: 40 clock reads, each a system call in
    // the virtual host). Every bind paid that once (bench/README.md).
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider) =>
        destination.TryWrite(CultureInfo.InvariantCulture, $"{Domain:x4}:{Bus:x2}:{Device:x2}.{Function:x1}", out charsWritten);

    public string ToString(string? format, IFormatProvider? formatProvider) => ToString();

    public override string ToString()
    {
        Span<char> text = stackalloc char[36]; // four ints in hex at most, and the separators
        TryFormat(text, out int length, default, null);
        return new string(text[..length]);
    }

    /// <summary>The short form lspci prints without -D and QEMU accepts for domain 0: BB:DD.F.</summary>
    public string ToShortString() => $"{Bus:x2}:{Device:x2}.{Function:x1}";

    public int CompareTo(PciAddress other)
    {
        int c = Domain.CompareTo(other.Domain);
        if (c == 0) c = Bus.CompareTo(other.Bus);
        if (c == 0) c = Device.CompareTo(other.Device);
        if (c == 0) c = Function.CompareTo(other.Function);
        return c;
    }

    /// <summary>The same slot, other function: used to keep multifunction devices together.</summary>
    public bool SameSlot(PciAddress other) => Domain == other.Domain && Bus == other.Bus && Device == other.Device;

    /// <summary>Parses DDDD:BB:DD.F or BB:DD.F (domain 0000); hex digits in either case.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out PciAddress address)
    {
        address = default;
        int domain = 0;
        int colons = text.Count(':');
        if (colons == 2)
        {
            int first = text.IndexOf(':');
            if (first != 4 || !TryHex(text[..first], out domain)) return false;
            text = text[(first + 1)..];
        }
        else if (colons != 1) return false;

        // BB:DD.F
        if (text.Length != 7 || text[2] != ':' || text[5] != '.') return false;
        if (!TryHex(text[..2], out int bus) || !TryHex(text[3..5], out int device) || !TryHex(text[6..], out int function))
            return false;
        if (device > 0x1f || function > 7) return false;
        address = new PciAddress(domain, bus, device, function);
        return true;
    }

    public static PciAddress Parse(string text) =>
        TryParse(text, out var a) ? a : throw new UserError(DeviceSelector.FormatError(text), ExitCodes.Usage);

    private static bool TryHex(ReadOnlySpan<char> s, out int value)
    {
        value = 0;
        foreach (var c in s) if (!char.IsAsciiHexDigit(c)) return false;
        return int.TryParse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }
}
