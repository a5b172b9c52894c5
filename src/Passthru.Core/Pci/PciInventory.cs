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
        using var dir = OpenDevices(host);
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
            // No stat first: the read says whether the function is there (a missing vendor is only then asked about).
            if (ReadDevice(dir, address.ToString(), full: true, absentIsNull: true) is not { } read) return false;
            devices[address] = device = read;
            return true;
        }
    }

    /// <summary>sys/bus/pci/devices, held open: every function's attributes are read relative to it.</summary>
    private static HostDirectory OpenDevices(HostRoot host) =>
        host.OpenDirectory(DevicesDir)
        ?? throw new UserError($"{host.Path(DevicesDir)} does not exist: --root must be a Linux host's root (with sysfs mounted) or a captured tree");

    /// <summary>
    /// Reads every function. <paramref name="full"/> false reads only what `list` prints (IDs, class, revision, driver,
    /// group): about half the files, which matters at thousands of SR-IOV functions; the rest stay null or empty.
    /// </summary>
    public static PciInventory Load(HostRoot host, bool full = true)
    {
        using var dir = OpenDevices(host);
        var names = host.List(DevicesDir);
        var devices = new PciDevice[names.Length];
        // Thousands of functions (SR-IOV) mean tens of thousands of small reads: spread them over the cores.
        if (names.Length > 256)
        {
            try { Parallel.For(0, names.Length, i => devices[i] = ReadDevice(dir, names[i], full)!); }
            // A damaged function's UserError (a garbage vendor ID, say) is the answer, as it is for a small tree.
            catch (AggregateException e) when (e.InnerExceptions.OfType<UserError>().FirstOrDefault() is { } first) { throw first; }
        }
        else
            for (int i = 0; i < names.Length; i++) devices[i] = ReadDevice(dir, names[i], full)!;
        Array.Sort(devices, (a, b) => a.Address.CompareTo(b.Address));
        return new PciInventory(devices);
    }

    /// <summary>
    /// One function's attributes, each with one open and one read relative to sys/bus/pci/devices. With
    /// <paramref name="absentIsNull"/>, null when the function is not there at all (rather than a tree missing its vendor).
    /// </summary>
    private static PciDevice? ReadDevice(HostDirectory devices, string name, bool full = true, bool absentIsNull = false)
    {
        var host = devices.Host;
        if (!PciAddress.TryParse(name, out var address))
            throw new UserError($"{host.Path(DevicesDir)}/{name}: not a PCI address; the tree is damaged or not sysfs");
        var sysfs = new AttributeReader(devices, name);
        // The IDs and the class in one file where the kernel gives it (every Linux since 2.6: its modalias holds the
        // vendor, device, subsystem and class it keeps for the function); trees without it, the attribute files.
        var ids = sysfs.Modalias();
        if (absentIsNull && ids is null && sysfs.OptionalHex("vendor", 0xffff) is null && !host.DirectoryExists($"{DevicesDir}/{name}")) return null;
        var basic = new PciDevice
        {
            Address = address,
            VendorId = ids?.Vendor ?? (ushort)sysfs.RequiredHex("vendor", 0xffff),
            DeviceId = ids?.Device ?? (ushort)sysfs.RequiredHex("device", 0xffff),
            ClassCode = ids?.Class ?? sysfs.RequiredHex("class", 0xffffff),
            Revision = (byte)(sysfs.OptionalHex("revision", 0xff) ?? 0),
            Driver = devices.ReadLinkName(name, "driver"),
            IommuGroup = Group(devices, name, sysfs),
            PhysicalFunction = PhysicalFunctionOf(devices, name, sysfs),
        };
        if (!full) return basic;

        int? totalVfs = sysfs.OptionalInt("sriov_totalvfs");
        var virtfns = totalVfs is > 0 ? VirtualFunctionsOf(host, address) : [];
        int? numVfs = totalVfs is > 0 ? sysfs.OptionalInt("sriov_numvfs") : null;

        var overrideValue = devices.ReadAttribute(name, "driver_override");
        var reset = devices.ReadAttribute(name, "reset_method");
        var bootVga = sysfs.OptionalInt("boot_vga");

        return basic with
        {
            SubsystemVendorId = ids?.SubsystemVendor ?? (ushort?)sysfs.OptionalHex("subsystem_vendor", 0xffff),
            SubsystemDeviceId = ids?.SubsystemDevice ?? (ushort?)sysfs.OptionalHex("subsystem_device", 0xffff),
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
    private static PciAddress? PhysicalFunctionOf(HostDirectory devices, string name, AttributeReader sysfs) =>
        devices.ReadLinkName(name, "physfn") is string pf
            ? (PciAddress.TryParse(pf, out var a) ? a : throw sysfs.Garbage("physfn", pf, "a link to a PCI address"))
            : null;

    private static int? Group(HostDirectory devices, string name, AttributeReader sysfs) =>
        devices.ReadLinkName(name, "iommu_group") is string g
            ? (int.TryParse(g, NumberStyles.None, CultureInfo.InvariantCulture, out var group) ? group : throw sysfs.Garbage("iommu_group", g, "a link to a numbered group"))
            : null;

    /// <summary>
    /// Parses one device's attributes, straight from the bytes read (no string unless it is garbage); garbage becomes a
    /// one-line error naming the file and its content.
    /// </summary>
    private readonly struct AttributeReader(HostDirectory devices, string name)
    {
        public int RequiredHex(string attribute, int max) =>
            OptionalHex(attribute, max) ?? throw new UserError($"{devices.Path(name, attribute)} is missing: the tree for {name} is incomplete");

        public int? OptionalHex(string attribute, int max)
        {
            Span<byte> buffer = stackalloc byte[64];
            int n = devices.ReadAttribute(name, attribute, buffer);
            if (n < 0) return null;
            var text = buffer[..n];
            var digits = text.StartsWith("0x"u8) || text.StartsWith("0X"u8) ? text[2..] : text;
            if (digits.Length == 0 || digits.Length > 8 || n == buffer.Length ||
                !int.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value) || value < 0 || value > max)
                throw Garbage(attribute, Text(attribute, text), $"a hex number up to 0x{max:x}");
            return value;
        }

        /// <summary>
        /// The kernel's modalias, "pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X" (drivers/pci/pci-sysfs.c); null when the
        /// tree has none.
        /// </summary>
        public (ushort Vendor, ushort Device, ushort SubsystemVendor, ushort SubsystemDevice, int Class)? Modalias()
        {
            Span<byte> buffer = stackalloc byte[64];
            int n = devices.ReadAttribute(name, "modalias", buffer);
            if (n < 0) return null;
            var m = buffer[..n];
            if (n == 53 && m.StartsWith("pci:v"u8) && m[13] == (byte)'d' && m.Slice(22, 2).SequenceEqual("sv"u8) && m.Slice(32, 2).SequenceEqual("sd"u8)
                && m.Slice(42, 2).SequenceEqual("bc"u8) && m.Slice(46, 2).SequenceEqual("sc"u8) && m[50] == (byte)'i'
                && Hex(m.Slice(5, 8), 0xffff) is int v && Hex(m.Slice(14, 8), 0xffff) is int d && Hex(m.Slice(24, 8), 0xffff) is int sv
                && Hex(m.Slice(34, 8), 0xffff) is int sd && Hex(m.Slice(44, 2), 0xff) is int bc && Hex(m.Slice(48, 2), 0xff) is int sc
                && Hex(m.Slice(51, 2), 0xff) is int pi)
                return ((ushort)v, (ushort)d, (ushort)sv, (ushort)sd, bc << 16 | sc << 8 | pi);
            throw Garbage("modalias", Text("modalias", m), "a PCI modalias (pci:vVVVVVVVVdDDDDDDDDsv...sd...bc..sc..i..)");

            static int? Hex(ReadOnlySpan<byte> digits, int max) =>
                int.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value) && value >= 0 && value <= max ? value : null;
        }

        public int? OptionalInt(string attribute)
        {
            Span<byte> buffer = stackalloc byte[64];
            int n = devices.ReadAttribute(name, attribute, buffer);
            if (n < 0) return null;
            return n < buffer.Length && int.TryParse(buffer[..n], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value)
                ? value : throw Garbage(attribute, Text(attribute, buffer[..n]), "a decimal number");
        }

        /// <summary>The attribute as text for a message: read again whole when it filled the small buffer.</summary>
        private string Text(string attribute, ReadOnlySpan<byte> read) =>
            read.Length == 64 ? devices.ReadAttribute(name, attribute) ?? "" : System.Text.Encoding.UTF8.GetString(read);

        public UserError Garbage(string attribute, string text, string expected)
        {
            var shown = text.Length > 40 ? text[..40] + "…" : text;
            shown = new string(shown.Select(c => char.IsControl(c) ? '?' : c).ToArray());
            return new UserError($"{devices.Path(name, attribute)} holds '{shown}', not {expected}: the tree is damaged or not sysfs");
        }
    }
}
