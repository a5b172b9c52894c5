using System.Globalization;

namespace Passthru.Launch;

/// <summary>
/// Guest memory as QEMU's -m takes it: a plain number is MiB; a suffix K, M, G or T (either case, an optional B or
/// iB after it) scales it; a fraction is allowed where the result is whole MiB ("1.5G" is 1536).
/// </summary>
public static class MemorySize
{
    public static int ParseMiB(string text, string where)
    {
        var t = text.Trim();
        string Bad(string why) => $"{where} '{Shown.Value(text)}': {why} (give MiB, or a size such as 512M, 2G or 1.5G)";
        int split = 0;
        while (split < t.Length && (char.IsAsciiDigit(t[split]) || t[split] == '.')) split++;
        var (number, unit) = (t[..split], t[split..]);
        if (number.Length == 0 || !decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
            throw new UserError(Bad("not a size"), ExitCodes.Usage);
        decimal scale = unit.ToUpperInvariant() switch // in MiB
        {
            "" or "M" or "MB" or "MIB" => 1,
            "K" or "KB" or "KIB" => 1m / 1024,
            "G" or "GB" or "GIB" => 1024,
            "T" or "TB" or "TIB" => 1024 * 1024,
            _ => throw new UserError(Bad($"unknown unit '{Shown.Value(unit)}'"), ExitCodes.Usage),
        };
        // A number so large that scaling it overflows decimal is too large as well.
        if (value > int.MaxValue / scale) throw new UserError(Bad("too large"), ExitCodes.Usage);
        var mib = value * scale;
        if (mib != decimal.Truncate(mib)) throw new UserError(Bad("not a whole number of MiB"), ExitCodes.Usage);
        if (mib > int.MaxValue) throw new UserError(Bad("too large"), ExitCodes.Usage);
        return (int)mib;
    }

    /// <summary>A whole number for a count option (--cpus, --timeout), with the option named when it is not one.</summary>
    public static int ParseCount(string text, string where)
    {
        if (text.Length > 0 && text.All(char.IsAsciiDigit) && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n)) return n;
        throw new UserError($"{where} '{Shown.Value(text)}': give a whole number", ExitCodes.Usage);
    }
}
