using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Binding;

/// <summary>
/// What the host itself is using a device for, found through the host root: mounted file systems on its block
/// devices, the default route through its network interface, its network interfaces at all.
/// </summary>
public sealed class HostUsage(HostRoot host)
{
    /// <summary>Mount points whose block device lives under the function (directly, through a partition, or a dm/md slave).</summary>
    public IReadOnlyList<string> MountsUnder(PciAddress function)
    {
        var found = new List<string>();
        foreach (var line in (host.ReadText("proc/self/mounts") ?? "").Split('\n'))
        {
            var fields = line.Split(' ');
            if (fields.Length < 2 || !fields[0].StartsWith("/dev/", StringComparison.Ordinal)) continue;
            var name = fields[0][5..];
            if (name.StartsWith("mapper/", StringComparison.Ordinal))
                name = host.ReadLinkName("dev/" + name) ?? name;
            if (BlockDeviceUnder(name, function, depth: 0)) found.Add(fields[1].Replace("\\040", " "));
        }
        return found;
    }

    private bool BlockDeviceUnder(string name, PciAddress function, int depth)
    {
        var link = host.ReadLink("sys/class/block/" + name);
        if (link is null) return false;
        if (link.Contains("/" + function + "/", StringComparison.Ordinal)) return true;
        if (depth > 3) return false;
        // Device-mapper and md devices sit on top of others: follow their slaves.
        foreach (var slave in host.List($"sys/class/block/{name}/slaves"))
            if (BlockDeviceUnder(slave, function, depth + 1)) return true;
        return false;
    }

    /// <summary>
    /// The function's network interfaces: the kernel lists those whose parent it is in its own net/ directory (the
    /// same set as sys/class/net/*/device pointing at it, in one directory read instead of a link read per interface
    /// on the host: a bind in the virtual host spent ~1 ms on its five, a host with containers has hundreds).
    /// </summary>
    public IReadOnlyList<string> InterfacesOf(PciAddress function) => host.List($"sys/bus/pci/devices/{function}/net");

    /// <summary>Interfaces that carry a default route (proc/net/route: destination 00000000).</summary>
    public IReadOnlySet<string> DefaultRouteInterfaces()
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in (host.ReadText("proc/net/route") ?? "").Split('\n').Skip(1))
        {
            var f = line.Split('\t', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (f.Length > 2 && f[1] == "00000000") set.Add(f[0]);
        }
        return set;
    }
}
