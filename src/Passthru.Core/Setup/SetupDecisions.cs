using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Setup;

/// <summary>Whose IOMMU: Intel's VT-d (intel_iommu=) or AMD-Vi (amd_iommu=).</summary>
public enum IommuVendor { Intel, Amd }

/// <summary>What the user asked `setup` for.</summary>
public sealed record SetupRequest(IReadOnlyList<DeviceSelector> Devices, bool IommuPassThrough, string? BootLoader = null, bool Force = false,
    bool AllowUnsafeInterrupts = false)
{
    /// <summary>SR-IOV physical functions and how many VFs each gets at boot (--vfs PF=N).</summary>
    public IReadOnlyList<VfsAtBoot> Vfs { get; init; } = [];
    /// <summary>Keep the firmware's framebuffer off the GPUs at boot (--no-boot-framebuffer).</summary>
    public bool NoBootFramebuffer { get; init; }
}

public enum FramebufferOff { SysfbBlacklist, VideoOff }

/// <summary>A physical function (by address) whose driver creates <see cref="Count"/> VFs at boot.</summary>
public sealed record VfsAtBoot(PciAddress Pf, int Count)
{
    /// <summary>Parses --vfs PF=N: the PF's address (VF counts are per function) and a count of 1 or more.</summary>
    public static VfsAtBoot Parse(string text)
    {
        int eq = text.IndexOf('=');
        if (eq < 0 || !PciAddress.TryParse(text.AsSpan(0, eq).Trim(), out var pf))
            throw new UserError($"--vfs '{text}': give a physical function's address and a VF count, like --vfs 0000:03:00.0=4", ExitCodes.Usage);
        var n = text[(eq + 1)..].Trim();
        if (n.Length is 0 or > 5 || !n.All(char.IsAsciiDigit) || int.Parse(n, System.Globalization.CultureInfo.InvariantCulture) == 0)
            throw new UserError($"--vfs '{text}': '{n}' is not a VF count of 1 or more (setup --undo removes VFs made at boot)", ExitCodes.Usage);
        return new VfsAtBoot(pf, int.Parse(n, System.Globalization.CultureInfo.InvariantCulture));
    }
}

/// <summary>
/// What this host needs, before looking at any file: the IOMMU switch for its CPU, the optional iommu=pt, whether
/// vfio must be allowed unsafe interrupts, and how each requested device is claimed at boot.
/// </summary>
public sealed record SetupDecisions
{
    public required IommuVendor Vendor { get; init; }
    public bool IommuPassThrough { get; init; }
    public bool AllowUnsafeInterrupts { get; init; }
    /// <summary>vendor:device IDs vfio-pci claims at boot (vfio-pci.ids and options vfio-pci ids=).</summary>
    public IReadOnlyList<string> BootIds { get; init; } = [];
    /// <summary>Functions claimed by address (a udev rule writes driver_override), for twins that share IDs.</summary>
    public IReadOnlyList<PciAddress> BootAddresses { get; init; } = [];
    /// <summary>The devices' usual drivers: each gets "softdep DRIVER pre: vfio-pci" so vfio-pci is there first.</summary>
    public IReadOnlyList<string> SoftdepDrivers { get; init; } = [];
    /// <summary>Physical functions whose VFs a udev rule creates when the PF's driver binds at boot.</summary>
    public IReadOnlyList<VfsAtBoot> BootVfs { get; init; } = [];
    /// <summary>
    /// How the kernel is kept from putting a firmware framebuffer on a GPU at boot: from 5.15 sysfb registers efifb's,
    /// vesafb's and simplefb/simpledrm's device (initcall_blacklist=sysfb_init stops all three); before, efifb and
    /// vesafb each take video=NAME:off. Null: left as it is.
    /// </summary>
    public FramebufferOff? BootFramebufferOff { get; init; }
    public IReadOnlyList<string> Notes { get; init; } = [];

    public bool BindsDevices => BootIds.Count > 0 || BootAddresses.Count > 0;

    /// <summary>sysfb (and its sysfb_init) came in Linux 5.15; an unknown release gets it too (every supported distribution's kernel is newer).</summary>
    private static FramebufferOff FramebufferOffFor(string? release)
    {
        var parts = (release ?? "").Split('.', '-');
        bool old = parts.Length >= 2 && int.TryParse(parts[0], out var major) && int.TryParse(parts[1], out var minor) && (major < 5 || (major == 5 && minor < 15));
        return old ? FramebufferOff.VideoOff : FramebufferOff.SysfbBlacklist;
    }

    /// <summary>
    /// The module of a function's usual driver, as softdep names modules: the bound driver's module link says which
    /// (xhci_hcd lives in xhci_pci), else the driver's name, which modprobe reads with '-' and '_' alike; for a
    /// function on vfio-pci or none, modules.alias's match. Null when nothing says.
    /// </summary>
    private static string? UsualModule(HostFacts facts, PciDevice d) =>
        d.Driver is { } driver && driver is not ("vfio-pci" or "pci-stub")
            ? facts.Host.ReadLinkName($"sys/bus/pci/drivers/{driver}/module") ?? driver.Replace('-', '_')
            : ModuleAliases.DriverFor(facts, d);

    public static SetupDecisions Decide(HostFacts facts, PciInventory inventory, SetupRequest request)
    {
        // The IOMMU's own ACPI table says whose it is (an emulated Intel IOMMU may sit beside an AMD CPU); without
        // one (the firmware has it off), the CPU's vendor does.
        var vendor = facts.IommuIsAmd ? IommuVendor.Amd : facts.HasAcpiTable("DMAR") || facts.IsIntel ? IommuVendor.Intel
            : throw new UserError($"cannot tell the CPU vendor from {facts.Host.Path("proc/cpuinfo")} (GenuineIntel or AuthenticAMD), and there is no ACPI DMAR or IVRS table: is the host root right?");
        var notes = new List<string>();
        if (!facts.HasAcpiTable("DMAR") && !facts.HasAcpiTable("IVRS"))
            notes.Add($"the firmware announces no IOMMU (no ACPI DMAR or IVRS table): also enable {(vendor == IommuVendor.Intel ? "VT-d" : "AMD-Vi (often called IOMMU)")} in the firmware setup (BIOS/UEFI), or these parameters change nothing");

        bool? remapping = facts.IommuCanRemapInterrupts();
        // Unsafe interrupts are the user's trust decision: never added unasked, never added where nothing needs them.
        bool allowUnsafe = request.AllowUnsafeInterrupts && remapping != true;
        if (remapping is null)
            notes.Add(request.AllowUnsafeInterrupts
                ? "interrupt remapping: unknown (no IOMMU unit or readable DMAR table): unsafe interrupts are allowed as asked (--allow-unsafe-interrupts)"
                : "interrupt remapping: unknown (no IOMMU unit or readable DMAR table); if vfio then refuses devices, "
                    + $"{KernelParameters.UnsafeInterrupts}=1 lets it (passthru setup --allow-unsafe-interrupts), at the cost that a guest's device can forge interrupts against the host");
        else if (remapping == false && !request.AllowUnsafeInterrupts)
            notes.Add("this IOMMU does not remap interrupts, so vfio refuses every device until unsafe interrupts are allowed: "
                + "passthru setup --allow-unsafe-interrupts adds " + KernelParameters.UnsafeInterrupts + "=1 (a guest's device can then forge interrupts against the host: only for guests you trust)");
        else if (remapping == true && request.AllowUnsafeInterrupts)
            notes.Add("--allow-unsafe-interrupts: not needed, this IOMMU remaps interrupts; left out");
        if (facts.InterruptRemappingOffOnCmdline)
            notes.Add("interrupt remapping is turned off on the running kernel's command line (intremap=off or nointremap): remove that by hand");

        var ids = new List<string>();
        var addresses = new List<PciAddress>();
        var drivers = new List<string>();
        var chosen = new List<PciDevice>();
        // VFs made at boot: each PF checked as `vfs` does, and the addresses its VFs will have.
        var bootVfs = new Dictionary<PciAddress, PciAddress>();
        foreach (var v in request.Vfs)
        {
            var pf = inventory.Find(v.Pf) ?? throw new UserError($"--vfs: no PCI function at {v.Pf}: see `passthru list` for the devices of this host", ExitCodes.Usage);
            if (pf.PhysicalFunction is PciAddress parent)
                throw new UserError($"--vfs: {v.Pf} is a virtual function (of {parent}), not a physical function", ExitCodes.Usage);
            if (pf.SriovTotalVfs is not int total || total == 0)
                throw new UserError($"--vfs: {v.Pf} is not an SR-IOV physical function (it has no SR-IOV capability: no sriov_totalvfs): it cannot have VFs", ExitCodes.Usage);
            if (v.Count > total) throw new UserError($"--vfs: {v.Pf} supports at most {total} VFs (sriov_totalvfs), not {v.Count}", ExitCodes.Usage);
            foreach (var vf in Binding.VfPlanner.Predict(facts.Host, pf, v.Count)) bootVfs[vf] = v.Pf;
            notes.Add($"{v.Pf} gets {v.Count} VF{(v.Count == 1 ? "" : "s")} at boot ({string.Join(", ", Binding.VfPlanner.Predict(facts.Host, pf, v.Count))}), "
                + "from a udev rule run when its driver binds");
        }
        foreach (var selector in request.Devices)
        {
            // A VF that exists only once the boot creates it: claimed by address, as twins are.
            if (selector is DeviceSelector.ByAddress vfSelector && bootVfs.TryGetValue(vfSelector.Address, out var ofPf))
            {
                addresses.Add(vfSelector.Address);
                notes.Add($"{vfSelector.Address}, a VF of {ofPf} made at boot, is claimed by address (a udev rule sets its driver_override as it appears)");
                continue;
            }
            var devices = selector.Resolve(inventory);
            foreach (var d in devices)
            {
                if (d.IsBridge || d.IsHostBridge)
                    throw new UserError($"{d.Address} is a {(d.IsHostBridge ? "host" : "PCI")} bridge: bridges stay with the host; name the devices behind it", ExitCodes.Usage);
                chosen.Add(d);
            }
            var idText = $"{devices[0].VendorId:x4}:{devices[0].DeviceId:x4}";
            var twins = inventory.Devices.Where(o => o.VendorId == devices[0].VendorId && o.DeviceId == devices[0].DeviceId && o.Address != devices[0].Address).ToList();
            if (selector is DeviceSelector.ByAddress && twins.Count > 0)
            {
                addresses.Add(devices[0].Address);
                notes.Add($"{devices[0].Address} shares IDs {idText} with {string.Join(", ", twins.Select(t => t.Address))}: it is claimed by address "
                    + "(a udev rule sets its driver_override), so the other keeps its driver");
            }
            else if (devices.Select(d => (d, Module: UsualModule(facts, d))).FirstOrDefault(u => u.Module is { } m && facts.ModuleBuiltIn(m)) is ({ } held, { } builtIn))
            {
                // vfio-pci's ids= acts when vfio-pci loads, and a built-in driver took the device before any module
                // did (no softdep orders a built-in): only the udev rule, which takes the device from its driver, works.
                addresses.AddRange(devices.Select(d => d.Address));
                notes.Add($"{string.Join(", ", devices.Select(d => d.Address))}: {held.Driver ?? builtIn} is built into the kernel and takes {(devices.Count == 1 ? "it" : "them")} "
                    + "while the kernel starts, before vfio-pci's ids= can act: claimed by address (a udev rule sets the driver_override and takes the device from that driver)");
            }
            else
            {
                ids.Add(idText);
                if (devices.Count > 1)
                    notes.Add($"{selector.Text} matches {devices.Count} functions ({string.Join(", ", devices.Select(d => d.Address))}): all go to vfio-pci at boot; to keep one, name the other by address");
            }
        }
        foreach (var d in chosen)
        {
            // A softdep orders module loads: a built-in driver gets none (the udev rule above takes the device from it).
            if (UsualModule(facts, d) is { } usual) { if (!facts.ModuleBuiltIn(usual)) drivers.Add(usual); }
            else notes.Add($"{d.Address}: its usual driver is not known (no driver bound, none in modules.alias), so no softdep orders vfio-pci before it");
            if (new Binding.HostUsage(facts.Host).MountsUnder(d.Address) is { Count: > 0 } mounted)
            {
                var what = $"{d.Address} holds mounted file systems ({string.Join(", ", mounted)})";
                if (!request.Force)
                    throw new UserError($"{what}: claimed at boot, they are gone, and if the root file system is one of them the host will not boot; name another device, or pass --force if you are sure");
                notes.Add(what + ": claimed at boot anyway (--force)");
            }
            if (d.BootVga == true)
                notes.Add($"{d.Address} is the boot display: after the reboot the console no longer shows on it");
            if (inventory.GroupOf(d) is { } group)
            {
                var left = group.Members.Where(m => m.IsEndpoint && !chosen.Contains(m) && !request.Devices.Any(s => s.Matches(m))).ToList();
                if (left.Count > 0)
                    notes.Add($"{d.Address} is in IOMMU group {group.Number} with {string.Join(", ", left.Select(m => m.Address))}: vfio needs the whole group, so name those with --device too");
            }
        }
        return new SetupDecisions
        {
            Vendor = vendor,
            IommuPassThrough = request.IommuPassThrough,
            AllowUnsafeInterrupts = allowUnsafe,
            BootIds = ids.Distinct().ToList(),
            BootAddresses = addresses.Distinct().ToList(),
            SoftdepDrivers = drivers.Distinct().ToList(),
            BootVfs = request.Vfs.GroupBy(v => v.Pf).Select(g => g.Last()).ToList(),
            BootFramebufferOff = request.NoBootFramebuffer ? FramebufferOffFor(facts.KernelRelease) : null,
            Notes = notes,
        };
    }
}
