using System.Globalization;
using Passthru.Host;

namespace Passthru.Pci;

/// <summary>Every PCI function of a host and its IOMMU groups, read once from sys/bus/pci and sys/kernel/iommu_groups.</summary>
public sealed class PciInventory
{
    public const string DevicesDir = "sys/bus/pci/devices";
    public const string GroupsDir = "sys/kernel/iommu_groups";

    public IReadOnlyList<PciDevice> Devices { get; }
    public IReadOnlyList<IommuGroup> Groups { get; }
    /// <summary>False when the kernel exposes no IOMMU groups: the IOMMU is off or absent.</summary>
    public bool HasIommuGroups => Groups.Count > 0;

    private readonly Dictionary<PciAddress, PciDevice> _byAddress;

    public PciInventory(IReadOnlyList<PciDevice> devices)
    {
        Devices = devices;
        _byAddress = devices.ToDictionary(d => d.Address);
        Groups = devices.Where(d => d.IommuGroup is not null)
            .GroupBy(d => d.IommuGroup!.Value)
            .OrderBy(g => g.Key)
            .Select(g => new IommuGroup(g.Key, g.OrderBy(d => d.Address).ToList()))
            .ToList();
    }

    public PciDevice? Find(PciAddress address) => _byAddress.GetValueOrDefault(address);

    public IommuGroup? GroupOf(PciDevice device) =>
        device.IommuGroup is int n ? Groups.FirstOrDefault(g => g.Number == n) : null;

    /// <summary>
    /// Reads every function. <paramref name="full"/> false reads only what `list` prints (IDs, class, revision, driver,
    /// group): about half the files, which matters at thousands of SR-IOV functions; the rest stay null or empty.
    /// </summary>
    public static PciInventory Load(HostRoot host, bool full = true)
    {
        if (!host.DirectoryExists(DevicesDir))
            throw new UserError($"{host.Path(DevicesDir)} does not exist: --root must be a Linux host's root (with sysfs mounted) or a captured tree");
        var names = host.List(DevicesDir);
        var devices = new PciDevice[names.Length];
        // Thousands of functions (SR-IOV) mean tens of thousands of small reads: spread them over the cores.
        if (names.Length > 256)
            Parallel.For(0, names.Length, i => devices[i] = ReadDevice(host, names[i], full));
        else
            for (int i = 0; i < names.Length; i++) devices[i] = ReadDevice(host, names[i], full);
        Array.Sort(devices, (a, b) => a.Address.CompareTo(b.Address));
        return new PciInventory(devices);
    }

    internal static PciDevice ReadDevice(HostRoot host, string name, bool full = true)
    {
        if (!PciAddress.TryParse(name, out var address))
            throw new UserError($"{host.Path(DevicesDir)}/{name}: not a PCI address; the tree is damaged or not sysfs");
        var dir = DevicesDir + "/" + name + "/";
        var sysfs = new AttributeReader(host, dir, name);
        var basic = new PciDevice
        {
            Address = address,
            VendorId = (ushort)sysfs.RequiredHex("vendor", 0xffff),
            DeviceId = (ushort)sysfs.RequiredHex("device", 0xffff),
            ClassCode = sysfs.RequiredHex("class", 0xffffff),
            Revision = (byte)(sysfs.OptionalHex("revision", 0xff) ?? 0),
            Driver = host.ReadLinkName(dir + "driver"),
            IommuGroup = Group(host, dir, sysfs),
        };
        if (!full) return basic;

        var virtfns = new List<PciAddress>();
        int? totalVfs = sysfs.OptionalInt("sriov_totalvfs");
        if (totalVfs is > 0)
        {
            foreach (var entry in host.List(DevicesDir + "/" + name))
                if (entry.StartsWith("virtfn", StringComparison.Ordinal) &&
                    host.ReadLinkName(dir + entry) is string vf && PciAddress.TryParse(vf, out var vfAddress))
                    virtfns.Add(vfAddress);
            virtfns.Sort();
        }

        PciAddress? physfn = null;
        if (host.ReadLinkName(dir + "physfn") is string pf)
            physfn = PciAddress.TryParse(pf, out var pfAddress) ? pfAddress : throw sysfs.Garbage("physfn", pf, "a link to a PCI address");

        var overrideValue = host.ReadAttribute(dir + "driver_override");
        var reset = host.ReadAttribute(dir + "reset_method");
        var bootVga = sysfs.OptionalInt("boot_vga");

        return basic with
        {
            SubsystemVendorId = (ushort?)sysfs.OptionalHex("subsystem_vendor", 0xffff),
            SubsystemDeviceId = (ushort?)sysfs.OptionalHex("subsystem_device", 0xffff),
            DriverOverride = overrideValue is null or "(null)" or "" ? null : overrideValue,
            BootVga = bootVga is null ? null : bootVga == 1,
            ResetMethods = reset is null ? null : reset.Split(' ', StringSplitOptions.RemoveEmptyEntries),
            NumaNode = sysfs.OptionalInt("numa_node"),
            PhysicalFunction = physfn,
            VirtualFunctions = virtfns,
            SriovTotalVfs = totalVfs,
        };
    }

    private static int? Group(HostRoot host, string dir, AttributeReader sysfs) =>
        host.ReadLinkName(dir + "iommu_group") is string g
            ? (int.TryParse(g, NumberStyles.None, CultureInfo.InvariantCulture, out var group) ? group : throw sysfs.Garbage("iommu_group", g, "a link to a numbered group"))
            : null;

    /// <summary>Parses one device's attributes; garbage becomes a one-line error naming the file and its content.</summary>
    private readonly struct AttributeReader(HostRoot host, string dir, string name)
    {
        public int RequiredHex(string attribute, int max) =>
            OptionalHex(attribute, max) ?? throw new UserError($"{host.Path(dir + attribute)} is missing: the tree for {name} is incomplete");

        public int? OptionalHex(string attribute, int max)
        {
            var text = host.ReadAttribute(dir + attribute);
            if (text is null) return null;
            var digits = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text.AsSpan(2) : text.AsSpan();
            if (digits.Length == 0 || digits.Length > 8 ||
                !int.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value) || value < 0 || value > max)
                throw Garbage(attribute, text, $"a hex number up to 0x{max:x}");
            return value;
        }

        public int? OptionalInt(string attribute)
        {
            var text = host.ReadAttribute(dir + attribute);
            if (text is null) return null;
            return int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value)
                ? value : throw Garbage(attribute, text, "a decimal number");
        }

        public UserError Garbage(string attribute, string text, string expected)
        {
            var shown = text.Length > 40 ? text[..40] + "…" : text;
            shown = new string(shown.Select(c => char.IsControl(c) ? '?' : c).ToArray());
            return new UserError($"{host.Path(dir + attribute)} holds '{shown}', not {expected}: the tree is damaged or not sysfs");
        }
    }
}
