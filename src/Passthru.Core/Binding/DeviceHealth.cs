using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Binding;

/// <summary>
/// After a guest: did each device it had come back? Its config space must read (a device that fell off the bus or
/// sits in D3cold reads all-ones), its power state must not be D3cold or unknown (D0, or the low-power state its own
/// driver chose, is fine), and the driver it had before must hold it again. Each problem is one line with its fix.
/// </summary>
public static class DeviceHealth
{
    public static IReadOnlyList<string> Check(HostRoot host, IEnumerable<FunctionState> givenBack)
    {
        var problems = new List<string>();
        foreach (var f in givenBack)
        {
            var a = f.Address;
            var dir = $"sys/bus/pci/devices/{a}";
            if (!host.Exists(dir))
            {
                problems.Add($"{a} is gone from the PCI bus after the guest: rescan it (echo 1 > /sys/bus/pci/rescan)");
                continue;
            }
            var config = ReadConfigHead(host, a);
            var power = host.ReadAttribute($"{dir}/power_state")?.Trim();
            // The whole header, not just the IDs: an SR-IOV VF's vendor and device ID registers read 0xffff by design.
            if (config is { Length: 64 } c && c.All(b => b == 0xff))
                problems.Add($"{a} does not answer after the guest (its config space reads all-ones{(power is null ? "" : $", power state {power}")}): "
                    + $"remove and rescan it (echo 1 > /sys/bus/pci/devices/{a}/remove; echo 1 > /sys/bus/pci/rescan); if it drops into D3cold again, "
                    + $"keep it out (echo 0 > /sys/bus/pci/devices/{a}/d3cold_allowed) or load vfio-pci with disable_idle_d3=1");
            else if (power is "D3cold" or "unknown" or "error")
                problems.Add($"{a} is in power state {power} after the guest: bring it back (echo on > /sys/bus/pci/devices/{a}/power/control), "
                    + $"keep it out of D3cold (echo 0 > /sys/bus/pci/devices/{a}/d3cold_allowed), or load vfio-pci with disable_idle_d3=1");
            else if (host.ReadLinkName($"{dir}/driver") is var driver && driver != f.Driver)
                problems.Add($"{a} is on {driver ?? "no driver"} after the guest, not back on {f.Driver ?? "no driver"}: "
                    + (f.Driver is null ? $"unbind it (echo {a} > /sys/bus/pci/devices/{a}/driver/unbind)"
                        : $"bind it (echo {a} > /sys/bus/pci/drivers/{f.Driver}/bind), or remove and rescan it; `dmesg` says why its driver failed"));
        }
        return problems;
    }

    // 64 bytes, read unbuffered (HostRoot.ReadBytes): a buffered FileStream asked the kernel for 4 KiB, which it reads
    // from the device a dword at a time (1,024 config reads, each an exit to the hypervisor in a VM) to give back the header.
    private static byte[]? ReadConfigHead(HostRoot host, PciAddress a) => host.ReadBytes($"sys/bus/pci/devices/{a}/config", 64);
}
