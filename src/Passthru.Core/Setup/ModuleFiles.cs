using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Setup;

/// <summary>
/// The files Passthru owns: which modules load at boot, the vfio-pci options and softdeps, and the udev rule for
/// devices claimed by address. Each run adds to what an earlier run wrote (so `setup --device A` then
/// `setup --device B` keeps both); `setup --undo` takes them away.
/// </summary>
public static class ModuleFiles
{
    public const string ModulesLoad = "etc/modules-load.d/passthru.conf";
    public const string Modprobe = "etc/modprobe.d/passthru.conf";
    public const string UdevRules = "etc/udev/rules.d/40-passthru-vfio-pci.rules";
    public const string SriovRules = "etc/udev/rules.d/39-passthru-sriov.rules";

    public static string ModulesLoadText =>
        "# Written by passthru setup (undo: passthru setup --undo): load vfio at boot.\nvfio\nvfio_iommu_type1\nvfio-pci\n";

    public static IReadOnlyList<FileChange> Plan(HostRoot host, SetupDecisions d)
    {
        var changes = new List<FileChange>();
        void Want(string path, string after)
        {
            var before = host.Exists(path) ? SetupFiles.ReadText(host, path) ?? throw new UserError($"cannot read {host.Path(path)}: run as root") : null;
            if (BootLoader.Changed(path, before, after) is { } c) changes.Add(c);
        }
        Want(ModulesLoad, ModulesLoadText);
        var vfs = ReadSriov(host);
        foreach (var v in d.BootVfs) vfs[v.Pf] = v.Count;
        // Read before the SR-IOV rule, which depends on which VFs are named; and before the return below: a setup run
        // for other reasons also brings a rule an earlier version wrote up to date.
        var addresses = ReadUdev(host).Concat(d.BootAddresses).Distinct().Order().ToList();
        if (vfs.Count > 0)
        {
            // On "bind", not "add": the kernel lets only the PF's driver create VFs, and at the PF's add event that
            // driver may not even be loaded yet. Not when vfio-pci takes the PF (it makes no VFs unless told to).
            var rules = "# Written by passthru setup (undo: passthru setup --undo): these physical functions get their VFs at boot.\n";
            foreach (var (pf, count) in vfs.OrderBy(v => v.Key))
            {
                var bind = OnPfBind(pf);
                var made = PredictVfs(host, pf, count);
                if (made is null || !made.Any(addresses.Contains))
                {
                    rules += bind + Attr("sriov_numvfs", $"{count}") + "\n";
                    continue;
                }
                // A VF claimed by address is made with autoprobe off, as `vfs --bind` makes it: otherwise the PF's
                // driver probes it in sriov_numvfs's write, before udev can set its driver_override, and the rule
                // below must take it back. nvme cannot start a VF that is not online, and gives it up from a work
                // item that nvme's remove does not wait for: when that item runs after vfio-pci took the VF, it
                // unbinds vfio-pci (the likely cause of a named VF found with no driver after a boot under load).
                // Autoprobe goes back on at once, and the VFs not named are probed here, as autoprobe would have.
                rules += bind + Attr("sriov_drivers_autoprobe", "0") + "\n"
                    + bind + Attr("sriov_numvfs", $"{count}") + "\n"
                    + bind + Attr("sriov_drivers_autoprobe", "1") + "\n";
                foreach (var vf in made.Where(vf => !addresses.Contains(vf)))
                    rules += bind + Attr("subsystem/drivers_probe", $"{vf}") + "\n";
            }
            Want(SriovRules, rules);
        }
        if (addresses.Count > 0)
        {
            // Before 80-drivers.rules loads the usual driver: with driver_override set, only vfio-pci may take the
            // function. Setting it probes nothing, so probe it: at coldplug the kernel has long tried the drivers it
            // had, and a function with none stays so (a driver module loaded later tries only itself). If vfio-pci is
            // not loaded yet, it takes the function when it loads. A driver may hold the function already (loaded
            // for a twin, or from the initramfs): unbind it first. The probe is a rule of its own because a driver
            // may also let go by itself between the test and the unbind (nvme gives up a VF it cannot start, after
            // its probe returned): driverctl's set-override, without driverctl or a shell.
            var rules = "# Written by passthru setup (undo: passthru setup --undo): these functions go to vfio-pci at boot, by address.\n";
            foreach (var a in addresses)
                rules += ByAddress(a) + Override + "\n" + ByAddress(a) + Unbind + "\n" + ByAddress(a) + Probe + "\n";
            Want(UdevRules, rules);
        }

        if (!d.BindsDevices) return changes;

        var (ids, drivers) = ReadModprobe(host);
        ids = ids.Concat(d.BootIds).Distinct().ToList();
        drivers = drivers.Concat(d.SoftdepDrivers).Distinct().ToList();
        var modprobe = "# Written by passthru setup (undo: passthru setup --undo): vfio-pci claims these devices at boot, before their usual drivers.\n";
        if (ids.Count > 0) modprobe += $"options vfio-pci ids={string.Join(',', ids)}\n";
        foreach (var driver in drivers) modprobe += $"softdep {driver} pre: vfio-pci\n";
        Want(Modprobe, modprobe);

        // The initramfs loads the drivers of the disks and often of the GPU: vfio-pci must be in it and load first,
        // or the usual driver takes the device before the root file system's modprobe.d is even read.
        const string why = "Written by passthru setup (undo: passthru setup --undo): vfio-pci in the initramfs, ahead of the devices' usual drivers.";
        if (Programs.Find(host, "update-initramfs") is not null)
        {
            // initramfs-tools has no drop-in directory for modules: add the missing lines to its list.
            var before = host.Exists(InitramfsToolsModules) ? SetupFiles.ReadText(host, InitramfsToolsModules) ?? throw new UserError($"cannot read {host.Path(InitramfsToolsModules)}: run as root") : "";
            var listed = before.Split('\n').Select(l => l.Trim().Split(' ')[0].Replace('-', '_')).ToHashSet();
            var missing = VfioModules.Where(m => !listed.Contains(m)).ToList();
            if (missing.Count > 0)
                Want(InitramfsToolsModules, before + (before.Length == 0 || before.EndsWith('\n') ? "" : "\n") + $"# {why}\n" + string.Concat(missing.Select(m => m + "\n")));
        }
        else if (Programs.Find(host, "dracut") is not null)
            Want(DracutConf, $"# {why}\nforce_drivers+=\" {string.Join(' ', VfioModules)} \"\n");
        else if (Programs.Find(host, "mkinitcpio") is not null)
            Want(MkinitcpioConf, $"# {why}\nMODULES+=(vfio_pci vfio vfio_iommu_type1)\n");
        return changes;
    }

    public const string InitramfsToolsModules = "etc/initramfs-tools/modules";
    public const string DracutConf = "etc/dracut.conf.d/passthru.conf";
    public const string MkinitcpioConf = "etc/mkinitcpio.conf.d/passthru.conf";
    private static readonly string[] VfioModules = ["vfio", "vfio_iommu_type1", "vfio_pci"];

    private static UserError Foreign(HostRoot host, string path, int line, string text) =>
        new($"{host.Path(path)}:{line}: unexpected line '{text}': passthru writes this file itself; remove the line (or the file) and run passthru setup again");

    private static (List<string> Ids, List<string> Drivers) ReadModprobe(HostRoot host)
    {
        var ids = new List<string>();
        var drivers = new List<string>();
        var text = SetupFiles.ReadText(host, Modprobe);
        if (text is null) return (ids, drivers);
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var f = lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length == 0 || f[0].StartsWith('#')) continue;
            if (f is ["options", "vfio-pci" or "vfio_pci", var option] && option.StartsWith("ids=", StringComparison.Ordinal))
                ids.AddRange(option[4..].Split(',', StringSplitOptions.RemoveEmptyEntries));
            else if (f is ["softdep", var driver, "pre:", "vfio-pci" or "vfio_pci"]) drivers.Add(driver);
            else throw Foreign(host, Modprobe, i + 1, lines[i]);
        }
        return (ids, drivers);
    }

    // The rule lines setup writes, made in one place so that reading them back accepts exactly those (and the forms an
    // earlier release wrote) and refuses any other line: a line that merely names a function, a user's own RUN+= for it
    // say, would be lost when setup rewrites the file.
    private static string ByAddress(PciAddress a) => $"ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"{a}\", ";
    private static string OnPfBind(PciAddress pf) => $"ACTION==\"bind\", SUBSYSTEM==\"pci\", KERNEL==\"{pf}\", DRIVER!=\"vfio-pci\", ";
    private static string Attr(string name, string value) => $"ATTR{{{name}}}=\"{value}\"";
    private static readonly string Override = Attr("driver_override", "vfio-pci");
    private static readonly string Unbind = "TEST==\"driver\", " + Attr("driver/unbind", "%k");
    private static readonly string Probe = Attr("subsystem/drivers_probe", "%k");
    // Until 2026-12-04 the unbind and the probe were one line (`check` warns about it; setup --apply rewrites it).
    private static readonly string[] ByAddressEnds = [Override, Unbind, Probe, Unbind + ", " + Probe];

    /// <summary>
    /// The function a line of setup's rules is for, and the rest of the line after the keys <paramref name="keys"/>
    /// makes for it; null when the line does not begin with those keys.
    /// </summary>
    private static (PciAddress Address, string Tail)? RuleFor(string line, Func<PciAddress, string> keys)
    {
        const string kernel = "KERNEL==\"";
        int k = line.IndexOf(kernel, StringComparison.Ordinal);
        int end = k < 0 ? -1 : line.IndexOf('"', k + kernel.Length);
        if (end < 0 || !PciAddress.TryParse(line.AsSpan(k + kernel.Length, end - k - kernel.Length), out var a)) return null;
        var head = keys(a);
        return line.StartsWith(head, StringComparison.Ordinal) ? (a, line[head.Length..]) : null;
    }

    /// <summary>The value of <paramref name="tail"/> when it is exactly ATTR{name}="value", else null.</summary>
    private static string? AttrValue(string tail, string name)
    {
        var head = $"ATTR{{{name}}}=\"";
        return tail.StartsWith(head, StringComparison.Ordinal) && tail.IndexOf('"', head.Length) == tail.Length - 1 ? tail[head.Length..^1] : null;
    }

    private static List<PciAddress> ReadUdev(HostRoot host)
    {
        var found = new List<PciAddress>();
        var text = SetupFiles.ReadText(host, UdevRules);
        if (text is null) return found;
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0 || lines[i].StartsWith('#')) continue;
            if (RuleFor(lines[i], ByAddress) is not { } rule || !ByAddressEnds.Contains(rule.Tail))
                throw Foreign(host, UdevRules, i + 1, lines[i]);
            found.Add(rule.Address);
        }
        return found;
    }

    /// <summary>
    /// The addresses a PF's VFs will have, or null when its SR-IOV attributes cannot be read (a PF an earlier run named
    /// that is gone from this host, whose rule then only sets the count).
    /// </summary>
    private static IReadOnlyList<PciAddress>? PredictVfs(HostRoot host, PciAddress pf, int count)
    {
        try { return Binding.VfPlanner.Predict(host, pf, count); }
        catch (UserError) { return null; }
    }

    /// <summary>The VF counts an earlier `setup --vfs` wrote, by PF (the autoprobe and probe lines follow from them).</summary>
    private static Dictionary<PciAddress, int> ReadSriov(HostRoot host)
    {
        var found = new Dictionary<PciAddress, int>();
        var text = SetupFiles.ReadText(host, SriovRules);
        if (text is null) return found;
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0 || lines[i].StartsWith('#')) continue;
            if (RuleFor(lines[i], OnPfBind) is not { } rule) throw Foreign(host, SriovRules, i + 1, lines[i]);
            if (int.TryParse(AttrValue(rule.Tail, "sriov_numvfs"), System.Globalization.NumberStyles.None, null, out var count))
                found[rule.Address] = count;
            // Autoprobe off and on, and the probes of the VFs not named, follow from the count and the named VFs.
            else if (AttrValue(rule.Tail, "sriov_drivers_autoprobe") is not ("0" or "1")
                && !(AttrValue(rule.Tail, "subsystem/drivers_probe") is { } vf && PciAddress.TryParse(vf, out var a) && a.ToString() == vf))
                throw Foreign(host, SriovRules, i + 1, lines[i]);
        }
        return found;
    }

    /// <summary>The distribution's initramfs tool: the initramfs must carry the new modprobe options and softdeps.</summary>
    public static PlannedCommand? InitramfsCommand(HostRoot host)
    {
        const string purpose = "rebuilds the initramfs, which carries the module options";
        if (Programs.Find(host, "update-initramfs") is not null) return new(["update-initramfs", "-u"], purpose);
        if (Programs.Find(host, "dracut") is not null) return new(["dracut", "-f"], purpose);
        if (Programs.Find(host, "mkinitcpio") is not null) return new(["mkinitcpio", "-P"], purpose);
        return null;
    }
}
