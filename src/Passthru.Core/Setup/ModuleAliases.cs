using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Setup;

/// <summary>
/// A device's usual driver when none is bound now (it may sit on vfio-pci already): the first module of the running
/// kernel whose modules.alias pattern matches the device's modalias, as modprobe would choose it.
/// </summary>
public static class ModuleAliases
{
    public static string? DriverFor(HostFacts facts, PciDevice device)
    {
        var modalias = facts.Host.ReadAttribute($"{PciInventory.DevicesDir}/{device.Address}/modalias");
        if (modalias is null || facts.KernelRelease is not { } release) return null;
        var aliases = facts.Host.ReadText($"lib/modules/{release}/modules.alias") ?? facts.Host.ReadText($"usr/lib/modules/{release}/modules.alias");
        if (aliases is null) return null;
        foreach (var line in aliases.Split('\n'))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length != 3 || f[0] != "alias" || !f[1].StartsWith("pci:", StringComparison.Ordinal)) continue;
            if (f[2] is "vfio_pci" or "pci_stub" || !Glob(f[1], modalias)) continue;
            return f[2];
        }
        return null;
    }

    /// <summary>fnmatch with '*', '?' and [set], the patterns modules.alias uses.</summary>
    internal static bool Glob(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        while (pattern.Length > 0)
        {
            switch (pattern[0])
            {
                case '*':
                    for (int skip = 0; skip <= text.Length; skip++)
                        if (Glob(pattern[1..], text[skip..])) return true;
                    return false;
                case '?':
                    if (text.IsEmpty) return false;
                    break;
                case '[':
                    int close = pattern.IndexOf(']');
                    if (close < 0 || text.IsEmpty || !pattern[1..close].Contains(text[0])) return false;
                    pattern = pattern[close..];
                    break;
                default:
                    if (text.IsEmpty || text[0] != pattern[0]) return false;
                    break;
            }
            pattern = pattern[1..];
            text = text[1..];
        }
        return text.IsEmpty;
    }
}
