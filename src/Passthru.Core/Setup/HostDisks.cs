using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Setup;

/// <summary>
/// Which mounted file systems and swap live on disks behind a PCI function: claiming such a device at boot takes
/// them from the host, and when the root file system is one of them the host no longer boots. Follows partitions
/// and device-mapper (LVM, LUKS) through sys/class/block. Binding's safety checks ask the same question for a
/// running host; the two should share this once both are merged.
/// </summary>
public static class HostDisks
{
    public static IReadOnlyList<string> MountedOn(HostRoot host, PciAddress address)
    {
        const string blocks = "sys/class/block";
        var names = host.List(blocks);
        // Disks and partitions whose device lies under the function, then device-mapper devices built on them.
        var under = names.Where(n => host.ReadLink($"{blocks}/{n}") is { } target && target.Contains($"/{address}/", StringComparison.Ordinal)).ToHashSet();
        if (under.Count == 0) return [];
        bool grew = true;
        while (grew)
        {
            grew = false;
            foreach (var n in names.Where(n => !under.Contains(n)))
                if (host.List($"{blocks}/{n}/slaves").Any(under.Contains)) grew = under.Add(n) || grew;
        }
        var sources = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var n in under)
        {
            sources["/dev/" + n] = n;
            if (host.ReadAttribute($"{blocks}/{n}/dm/name") is { Length: > 0 } dm) sources["/dev/mapper/" + dm] = n;
        }
        var found = new List<string>();
        foreach (var line in (host.ReadText("proc/self/mounts") ?? "").Split('\n'))
        {
            var f = line.Split(' ');
            if (f.Length > 1 && sources.ContainsKey(f[0])) found.Add($"{f[0]} on {f[1].Replace("\\040", " ")}");
        }
        foreach (var line in (host.ReadText("proc/swaps") ?? "").Split('\n').Skip(1))
        {
            var f = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length > 0 && sources.ContainsKey(f[0])) found.Add($"{f[0]} as swap");
        }
        return found;
    }
}
