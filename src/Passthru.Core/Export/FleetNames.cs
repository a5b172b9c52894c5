using Passthru.Pci;

namespace Passthru.Export;

/// <summary>How a function is seen in a fleet: plain PCI, or one side of SR-IOV. Nova's device_type says the same.</summary>
public enum SriovRole { None, PhysicalFunction, VirtualFunction }

/// <summary>
/// Names for a kind of device, shared by every fleet target: KubeVirt's resource names and Nova's alias names. Fleet
/// engines select devices by vendor:device, so a name stands for every function with those IDs (and role) on a node.
/// The rule (docs/fleet.md): CLASS-VVVV-DDDD, plus -pf or -vf for the two sides of SR-IOV, where CLASS is a word for
/// the PCI class code (ethernet, nvme, gpu, ...) and VVVV:DDDD the vendor and device IDs in lowercase hex. Only what
/// the hardware reports goes in (never pci.ids names, which differ between pci.ids versions), so the same device gets
/// the same name on every node and in every export.
/// </summary>
public static class FleetNames
{
    /// <summary>KubeVirt resource names live under a prefix (a DNS subdomain) of their own.</summary>
    public const string ResourcePrefix = "pci.passthru";

    public static SriovRole Role(PciDevice d) =>
        d.PhysicalFunction is not null ? SriovRole.VirtualFunction
        : d.SriovTotalVfs is > 0 ? SriovRole.PhysicalFunction
        : SriovRole.None;

    /// <summary>"ethernet-8086-10d3", "nvme-1b36-0010", "ethernet-8086-10ca-vf".</summary>
    public static string Kind(PciDevice d) =>
        $"{ClassWord(d.ClassCode)}-{d.VendorId:x4}-{d.DeviceId:x4}" + Role(d) switch
        {
            SriovRole.PhysicalFunction => "-pf",
            SriovRole.VirtualFunction => "-vf",
            _ => "",
        };

    /// <summary>"pci.passthru/ethernet-8086-10d3": an extended resource name (prefix/name, name at most 63 characters).</summary>
    public static string ResourceName(PciDevice d) => $"{ResourcePrefix}/{Kind(d)}";

    /// <summary>"8086:10d3", as KubeVirt's pciVendorSelector and lspci -n write it.</summary>
    public static string VendorDevice(PciDevice d) => $"{d.VendorId:x4}:{d.DeviceId:x4}";

    /// <summary>"A", "A and B", "A, B and C".</summary>
    public static string Join(IReadOnlyList<PciAddress> a) =>
        a.Count == 1 ? a[0].ToString() : string.Join(", ", a.Take(a.Count - 1)) + " and " + a[^1];

    /// <summary>"both" or "all": how the twins of a kind are counted in a note.</summary>
    public static string BothOrAll(int count) => count == 2 ? "both" : "all";

    /// <summary>A word for the class code: the subclass where people name devices by it, else the base class.</summary>
    public static string ClassWord(int classCode) => (classCode >> 8) switch
    {
        0x0100 => "scsi",
        0x0101 => "ide",
        0x0104 => "raid",
        0x0106 => "sata",
        0x0107 => "sas",
        0x0108 => "nvme",
        0x0200 => "ethernet",
        0x0207 => "infiniband",
        0x0300 or 0x0302 => "gpu",
        0x0403 => "audio",
        0x0c03 => "usb",
        0x0c04 => "fibre-channel",
        0x0c05 => "smbus",
        0x0c0b => "infiniband",
        _ => (classCode >> 16) switch
        {
            0x01 => "storage",
            0x02 => "network",
            0x03 => "display",
            0x04 => "multimedia",
            0x05 => "memory",
            0x06 => "bridge",
            0x07 => "communication",
            0x08 => "system",
            0x09 => "input",
            0x0b => "processor",
            0x0c => "serial-bus",
            0x0d => "wireless",
            0x10 => "crypto",
            0x11 => "signal-processing",
            0x12 => "accelerator",
            _ => "pci",
        },
    };
}
