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
    public bool HasIommuGroups { get; }

    private readonly Dictionary<PciAddress, PciDevice> _byAddress;

    /// <param name="devices">Sorted by address.</param>
    /// <param name="hasIommuGroups">Whether the host has IOMMU groups at all, when <paramref name="devices"/> are only some of its functions.</param>
    private PciInventory(IReadOnlyList<PciDevice> devices, bool? hasIommuGroups = null)
    {
        Devices = devices;
        // Plain loops rather than LINQ's GroupBy/OrderBy: bind and restore build an inventory in every process, and
        // under emulation each generic LINQ shape costs run-time type loading.
        _byAddress = new Dictionary<PciAddress, PciDevice>(devices.Count);
        var members = new SortedDictionary<int, List<PciDevice>>();
        foreach (var d in devices)
        {
            _byAddress.Add(d.Address, d);
            if (d.IommuGroup is not int g) continue;
            if (!members.TryGetValue(g, out var list)) members[g] = list = [];
            list.Add(d);
        }
        var groups = new List<IommuGroup>(members.Count);
        foreach (var (number, list) in members) groups.Add(new IommuGroup(number, list));
        Groups = groups;
        HasIommuGroups = hasIommuGroups ?? groups.Count > 0;
    }

    public PciDevice? Find(PciAddress address) => _byAddress.GetValueOrDefault(address);

    public IommuGroup? GroupOf(PciDevice device)
    {
        if (device.IommuGroup is not int n) return null;
        foreach (var g in Groups) if (g.Number == n) return g;
        return null;
    }

    /// <summary>
    /// Only the functions that <paramref name="selectors"/> and <paramref name="alsoRead"/> name, with all their
    /// attributes, and with <paramref name="groupMates"/> every other member of their IOMMU groups (so each group
    /// in it is whole): what bind, unbind and restore need. They run as one process each, and reading every
    /// function of the host for one device was the largest part of their own work. Addresses that name no function
    /// are left out (a selector then resolves to nothing, as it would on a full inventory); vendor:device selectors
    /// are found with a scan of the IDs only.
    /// </summary>
    public static PciInventory LoadFor(HostRoot host, IEnumerable<DeviceSelector> selectors, bool groupMates, IEnumerable<PciAddress>? alsoRead = null)
    {
        RequireSysfs(host);
        var wanted = new List<PciAddress>();
        if (alsoRead is not null) wanted.AddRange(alsoRead);
        PciInventory? scan = null;
        foreach (var s in selectors)
        {
            if (s is DeviceSelector.ByAddress a) { wanted.Add(a.Address); continue; }
            scan ??= Load(host, full: false);
            foreach (var d in scan.Devices) if (s.Matches(d)) wanted.Add(d.Address);
        }

        var devices = new SortedDictionary<PciAddress, PciDevice>();
        var groupsRead = new HashSet<int>();
        foreach (var address in wanted)
        {
            if (!TryRead(address, out var device) || !groupMates || device.IommuGroup is not int g || !groupsRead.Add(g)) continue;
            foreach (var mate in host.List($"{GroupsDir}/{g}/devices"))
                if (PciAddress.TryParse(mate, out var m)) TryRead(m, out _);
        }
        var list = new List<PciDevice>(devices.Values);
        // Whether the host has IOMMU groups at all: a function read says so; only when none has one is the list asked.
        bool anyGroup = false;
        foreach (var d in list) anyGroup |= d.IommuGroup is not null;
        return new PciInventory(list, anyGroup || host.List(GroupsDir).Length > 0);

        bool TryRead(PciAddress address, out PciDevice device)
        {
            if (devices.TryGetValue(address, out device!)) return true;
            var name = address.ToString();
            if (!host.DirectoryExists($"{DevicesDir}/{name}")) return false;
            devices[address] = device = ReadDevice(host, name);
            return true;
        }
    }

    private static void RequireSysfs(HostRoot host)
    {
        if (!host.DirectoryExists(DevicesDir))
            throw new UserError($"{host.Path(DevicesDir)} does not exist: --root must be a Linux host's root (with sysfs mounted) or a captured tree");
    }

    /// <summary>
    /// Reads every function. <paramref name="full"/> false reads only what `list` prints (IDs, class, revision, driver,
    /// group): about half the files, which matters at thousands of SR-IOV functions; the rest stay null or empty.
    /// </summary>
    public static PciInventory Load(HostRoot host, bool full = true)
    {
        RequireSysfs(host);
        var names = host.List(DevicesDir);
        var devices = new PciDevice[names.Length];
        // Thousands of functions (SR-IOV) mean tens of thousands of small reads: spread them over the cores.
        if (names.Length > 256)
        {
            try { Parallel.For(0, names.Length, i => devices[i] = ReadDevice(host, names[i], full)); }
            // A damaged function's UserError (a garbage vendor ID, say) is the answer, as it is for a small tree.
            catch (AggregateException e) when (e.InnerExceptions.OfType<UserError>().FirstOrDefault() is { } first) { throw first; }
        }
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
            PhysicalFunction = PhysicalFunctionOf(host, dir, sysfs),
        };
        if (!full) return basic;

        int? totalVfs = sysfs.OptionalInt("sriov_totalvfs");
        var virtfns = totalVfs is > 0 ? VirtualFunctionsOf(host, address) : [];
        int? numVfs = totalVfs is > 0 ? sysfs.OptionalInt("sriov_numvfs") : null;

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
            VirtualFunctions = virtfns,
            SriovTotalVfs = totalVfs,
            SriovNumVfs = numVfs,
        };
    }

    /// <summary>A physical function's enabled VFs (its virtfnN links), sorted.</summary>
    public static List<PciAddress> VirtualFunctionsOf(HostRoot host, PciAddress pf)
    {
        var dir = DevicesDir + "/" + pf + "/";
        var virtfns = new List<PciAddress>();
        foreach (var entry in host.List(dir))
            if (entry.StartsWith("virtfn", StringComparison.Ordinal) &&
                host.ReadLinkName(dir + entry) is string vf && PciAddress.TryParse(vf, out var vfAddress))
                virtfns.Add(vfAddress);
        virtfns.Sort();
        return virtfns;
    }

    /// <summary>A VF's physical function (its physfn link), which `list` shows too.</summary>
    private static PciAddress? PhysicalFunctionOf(HostRoot host, string dir, AttributeReader sysfs) =>
        host.ReadLinkName(dir + "physfn") is string pf
            ? (PciAddress.TryParse(pf, out var a) ? a : throw sysfs.Garbage("physfn", pf, "a link to a PCI address"))
            : null;

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
