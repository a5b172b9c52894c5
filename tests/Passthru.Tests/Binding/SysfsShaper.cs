namespace Passthru.Tests.Binding;

/// <summary>Edits a scratch copy of a real capture into the cases a capture of one machine lacks.</summary>
internal static class SysfsShaper
{
    public static void Rebind(string tree, string address, string driver)
    {
        var link = Path.Combine(tree, "sys/bus/pci/devices", address, "driver");
        File.Delete(link);
        Directory.CreateDirectory(Path.Combine(tree, "sys/bus/pci/drivers", driver));
        File.CreateSymbolicLink(link, $"../../../bus/pci/drivers/{driver}");
        if (driver is "vfio-pci" or "pci-stub")
            File.WriteAllText(Path.Combine(tree, "sys/bus/pci/devices", address, "driver_override"), driver + "\n");
    }

    public static void NetInterface(string tree, string name, string address, bool defaultRoute)
    {
        var dir = Path.Combine(tree, "sys/class/net", name);
        Directory.CreateDirectory(dir);
        File.CreateSymbolicLink(Path.Combine(dir, "device"), $"../../../bus/pci/devices/{address}");
        if (defaultRoute)
        {
            Directory.CreateDirectory(Path.Combine(tree, "proc/net"));
            File.WriteAllText(Path.Combine(tree, "proc/net/route"),
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
                $"{name}\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n");
        }
    }

    public static void MountedDisk(string tree, string disk, string address, string mountPoint)
    {
        Directory.CreateDirectory(Path.Combine(tree, "sys/class/block"));
        File.CreateSymbolicLink(Path.Combine(tree, "sys/class/block", disk + "p1"), $"../../devices/pci0000:00/{address}/nvme/nvme0/{disk}/{disk}p1");
        Directory.CreateDirectory(Path.Combine(tree, "proc/self"));
        File.WriteAllText(Path.Combine(tree, "proc/self/mounts"), $"/dev/{disk}p1 {mountPoint} ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n");
    }
}
