using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Binding;

/// <summary>What the user asked bind for.</summary>
/// <param name="AllowUnsafeInterrupts">On an IOMMU without interrupt remapping, set vfio_iommu_type1's
/// allow_unsafe_interrupts until these devices are given back (the user's trust decision).</param>
/// <param name="ReleaseConsole">Let the host's console go of a GPU passed through (the boot VGA device, a firmware framebuffer
/// in its BARs): journaled steps, taken back when the GPU is given back.</param>
/// <param name="ResetMethods">--reset-method: the reset methods to write into the named functions' reset_method while
/// they are held (null: left as they are).</param>
public sealed record BindRequest(IReadOnlyList<DeviceSelector> Devices, bool WholeGroup = false, bool Force = false, bool AllowUnsafeInterrupts = false,
    string Verb = "bind", bool ReleaseConsole = false, IReadOnlyList<string>? ResetMethods = null);

/// <summary>
/// Decides, from what the host looks like now, exactly which writes move devices to vfio-pci or give them back.
/// Pure: it reads the host but changes nothing; refusals are one-line <see cref="UserError"/>s.
/// The per-function way: driver_override, unbind, drivers_probe. Never new_id, which would also grab every other
/// device with the same IDs (an identical NIC the host still uses).
/// </summary>
public static class BindPlanner
{
    public const string Vfio = "vfio-pci";

    public static BindPlan PlanBind(HostRoot host, PciInventory inventory, BindRequest request)
    {
        if (!inventory.HasIommuGroups)
            throw new UserError("this host has no IOMMU groups (the IOMMU is off or absent), so vfio-pci cannot take devices: see `passthru check`");
        var targets = new SortedDictionary<PciAddress, PciDevice>();
        foreach (var selector in request.Devices)
        {
            var found = selector.Resolve(inventory);
            if (selector is DeviceSelector.ByIds && found.Count > 1)
                throw new UserError($"{selector.Text} matches {found.Count} functions ({string.Join(", ", found.Select(d => d.Address))}): name the ones to bind by address, so an identical device the host uses stays with it", ExitCodes.Usage);
            foreach (var d in found) targets[d.Address] = d;
        }
        // --reset-method concerns the functions named, not the group mates --group adds.
        var named = targets.Values.ToList();

        var notes = new List<string>();
        foreach (var d in targets.Values.ToList())
        {
            var group = inventory.GroupOf(d) ?? throw new UserError($"{d.Address} is in no IOMMU group: the IOMMU does not cover it");
            var others = group.Endpoints.Where(o => !targets.ContainsKey(o.Address) && !o.IsBoundToVfio).ToList();
            if (others.Count == 0) continue;
            if (!request.WholeGroup)
                throw new UserError($"IOMMU group {group.Number} of {d.Address} also holds {string.Join(", ", others.Select(o => $"{o.Address} ({o.Driver ?? "no driver"})"))}: a group passes through whole; add --group to bind them too", ExitCodes.Usage);
            foreach (var o in others) targets[o.Address] = o;
            notes.Add($"IOMMU group {group.Number}: binding the whole group ({string.Join(", ", group.Endpoints.Select(e => e.Address))})");
        }

        var usage = new HostUsage(host);
        var routes = usage.DefaultRouteInterfaces();
        var refusals = new List<string>();
        var consoleSteps = new List<BindStep>();
        foreach (var d in targets.Values)
        {
            if (d.IsHostBridge || d.IsBridge) refusals.Add($"{d.Address} is a {(d.IsHostBridge ? "host" : "PCI")} bridge, which stays with the host");
            if (!d.IsBoundToVfio && ConsoleRelease(host, d, request, notes, consoleSteps) is { } consoleRefusal) refusals.Add(consoleRefusal);
            var mounts = usage.MountsUnder(d.Address);
            if (mounts.Count > 0) refusals.Add($"{d.Address} holds mounted file systems ({string.Join(", ", mounts)})");
            var interfaces = usage.InterfacesOf(d.Address);
            var routed = interfaces.Where(routes.Contains).ToList();
            if (routed.Count > 0) refusals.Add($"{d.Address} carries the default route ({string.Join(", ", routed)})");
            if (interfaces.Count > 0 && !d.IsBoundToVfio) notes.Add($"{d.Address}: network interface {string.Join(", ", interfaces)} goes away while it is bound");
            if (ResetFacts.WarningFor(host, inventory, d) is { } resetWarning) notes.Add("warning: " + resetWarning);
        }
        if (refusals.Count > 0)
        {
            if (!request.Force) throw new UserError($"refusing: {string.Join("; ", refusals)} (add --force to take it anyway)");
            notes.AddRange(refusals.Select(r => "forced: " + r));
        }

        // Before anything changes: on an IOMMU without interrupt remapping vfio would refuse the devices when QEMU
        // opens them, after the host lost them; stop here instead, unless the user allowed unsafe interrupts.
        var safety = InterruptSafety.Of(new HostFacts(host));
        bool setUnsafe = false;
        if (safety.Blocks)
        {
            if (!request.AllowUnsafeInterrupts) throw new UserError(InterruptSafety.Refusal(request.Verb));
            setUnsafe = true;
            notes.Add($"warning: allowing unsafe interrupts (--allow-unsafe-interrupts): this IOMMU does not remap interrupts, so {InterruptSafety.Risk}");
        }
        else if (request.AllowUnsafeInterrupts)
            notes.Add(safety.Allowed ? $"unsafe interrupts are already allowed ({safety.AllowedBy})"
                : safety.Remapping == true ? "--allow-unsafe-interrupts: not needed, this IOMMU remaps interrupts; left as it is"
                : "--allow-unsafe-interrupts: whether this IOMMU remaps interrupts is unknown here, so nothing was set; if QEMU then fails with \"Operation not permitted\", allow them with passthru setup --allow-unsafe-interrupts");

        var steps = new List<BindStep>();
        var functions = new List<FunctionState>();
        var moving = targets.Values.Where(d => !d.IsBoundToVfio).ToList();
        foreach (var d in targets.Values.Where(d => d.IsBoundToVfio)) notes.Add($"{d.Address} is already bound to vfio-pci");
        if (moving.Count > 0 && !host.DirectoryExists("sys/module/vfio_pci")) steps.Add(new LoadModule(Vfio));
        // Only a soft dependency of vfio-pci: without it QEMU fails with "No available IOMMU models".
        if ((moving.Count > 0 || setUnsafe) && !host.DirectoryExists("sys/module/vfio_iommu_type1")) steps.Add(new LoadModule("vfio_iommu_type1"));
        if (setUnsafe) steps.Add(new SetModuleParameter(InterruptSafety.ParameterPath, "Y", targets.Keys.ToList()));
        // The console lets go first: once its GPU leaves its driver (or vfio-pci wants its BAR) it would draw into nothing.
        steps.AddRange(consoleSteps);
        // Before the driver moves: vfio-pci resets the function when it takes it and when QEMU opens it.
        if (request.ResetMethods is { } methods) steps.AddRange(ResetMethodPlanner.Steps(host, named, methods, request.Verb));
        foreach (var d in moving)
        {
            functions.Add(new FunctionState(d.Address, d.Driver, d.DriverOverride, d.IommuGroup));
            if (d.Driver == "pci-stub") notes.Add($"{d.Address} moves from pci-stub to vfio-pci (QEMU's vfio cannot use pci-stub)");
            steps.Add(new WriteAttribute(d.Address, SysfsPaths.DriverOverride(d.Address), Vfio));
            if (d.Driver is not null) steps.Add(new WriteAttribute(d.Address, SysfsPaths.Unbind(d.Driver), d.Address.ToString()));
            steps.Add(new WriteAttribute(d.Address, SysfsPaths.DriversProbe, d.Address.ToString()));
            steps.Add(new VerifyDriver(d.Address, Vfio));
        }
        foreach (var g in moving.Select(d => d.IommuGroup!.Value).Distinct().Order()) steps.Add(new VerifyVfioGroup(g));
        return new BindPlan(PlanKind.Bind, functions, steps, notes);
    }

    /// <summary>
    /// What of the host's console holds <paramref name="d"/> and must let go of it: the boot VGA device, or a firmware
    /// framebuffer in its BARs (whose memory vfio could not reserve: QEMU's "BAR 0: can't reserve"). Without
    /// --release-console that is a refusal, returned; with it, the steps that release the console are added, with notes.
    /// A GPU whose own driver draws the console (no firmware framebuffer, not the boot device) needs nothing: its
    /// driver hands the framebuffer over when it lets go of the GPU.
    /// </summary>
    private static string? ConsoleRelease(HostRoot host, PciDevice d, BindRequest request, List<string> notes, List<BindStep> steps)
    {
        bool isDisplay = d.BaseClass == 0x03;
        if (d.BootVga != true && !isDisplay) return null;
        var console = BootConsole.Of(host, d.Address);
        if (d.BootVga != true && console.Framebuffers.Count == 0) return null;
        var held = console.Framebuffers.Select(f => f.Describe()).ToList();
        if (!request.ReleaseConsole)
            return (d.BootVga == true ? $"{d.Address} is the boot VGA device: the host's console would go dark" : $"{d.Address} holds the host's boot console")
                + (held.Count > 0 ? $" ({string.Join("; ", held)})" : "")
                + "; add --release-console to hand the console over with it (taken back when the device is given back), or keep the firmware's framebuffer off it at boot (passthru setup --no-boot-framebuffer)";
        foreach (var vt in console.BoundFramebufferConsoles)
            if (!steps.OfType<ReleaseConsole>().Any(r => r.Hold.Name == vt)) steps.Add(new ReleaseConsole(ConsoleHold.Console(vt), [d.Address]));
        foreach (var f in console.Framebuffers)
        {
            if (f.PlatformDevice is null || f.Driver is null) { notes.Add($"{f.Describe()}: no driver holds it, so vfio can reserve the BAR"); continue; }
            steps.Add(new ReleaseConsole(ConsoleHold.PlatformFramebuffer(f.PlatformDevice, f.Driver), [d.Address]));
        }
        notes.Add($"--release-console: the host's console lets go of {d.Address}{(held.Count > 0 ? $" ({string.Join("; ", held)})" : "")}; it comes back when {d.Address} is given back");
        return null;
    }

    /// <summary>
    /// Gives functions back to what the journal recorded for them; then puts back the VF counts in
    /// <paramref name="sriov"/>, which removes the VFs Passthru created once their functions are given back.
    /// </summary>
    public static BindPlan PlanReturn(PciInventory inventory, Journal journal, IReadOnlyList<PciAddress> functions, IReadOnlyList<SriovState>? sriov = null,
        IEnumerable<PciAddress>? released = null)
    {
        sriov ??= [];
        var steps = new List<BindStep>();
        var states = new List<FunctionState>();
        var notes = new List<string>();
        foreach (var address in functions)
        {
            var original = journal.Find(address);
            var device = inventory.Find(address);
            if (original is null)
            {
                throw new UserError(device?.IsBoundToVfio == true
                    ? $"{address} is on vfio-pci but Passthru did not put it there (not in {journal.Directory}/{Journal.FileName}): give it back by hand"
                    : $"{address} was not bound by Passthru: nothing to give back", ExitCodes.Usage);
            }
            states.Add(original);
            if (device is null)
            {
                // A VF Passthru created and a crash left uncreated (or already removed) is no news.
                if (!sriov.Any(x => x.Created.Contains(address))) notes.Add($"{address} no longer exists: dropped from the journal");
                continue;
            }
            if (device.Driver is { } now && now != Vfio && now != original.Driver && device.DriverOverride != Vfio)
            {
                // Not on vfio-pci, and not held for it: Passthru no longer has the function (someone gave it to another
                // driver by hand). Moving it again would reprobe a working device on every restore, and the journal's
                // driver is not a guess to act on: the function is left as it is and forgotten, and the user told.
                notes.Add($"{address} is on {now} now, not vfio-pci (the journal said it came from {original.Driver ?? "no driver"}): left as it is and dropped from the journal");
                continue;
            }
            steps.AddRange(ReturnSteps(original, device.Driver, device.DriverOverride));
        }
        int probes = 0;
        foreach (var x in sriov)
        {
            if (inventory.Find(x.Pf) is not { } pf) { notes.Add($"{x.Pf} no longer exists: dropped from the journal with its VFs"); continue; }
            // Autoprobe first, before the functions too: VFs that come back (to a non-zero count), and a VF whose host
            // driver the journal names (one a killed count change made anew with autoprobe off), are probed by it again.
            if (x.OriginalAutoprobe is string probe) steps.Insert(probes++, new SriovWrite(x.Pf, SriovWrite.Autoprobe, probe));
            int now = pf.SriovNumVfs ?? pf.VirtualFunctions.Count;
            // At its count again, but with VFs Passthru made (and bound): made anew, so their host driver probes them as before.
            if (now == x.OriginalCount && (now == 0 || x.Created.Count == 0)) continue;
            if (now > 0 && x.OriginalCount > 0) steps.Add(new SriovWrite(x.Pf, SriovWrite.NumVfs, "0"));
            steps.Add(new SriovWrite(x.Pf, SriovWrite.NumVfs, x.OriginalCount.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            steps.Add(new VerifyVfs(x.Pf, x.OriginalCount, null));
        }
        var leaving = states.Select(f => f.Address).Concat(sriov.SelectMany(x => x.Created)).Concat(released ?? []).ToList();
        steps.AddRange(ConsoleTakeBacks(journal, leaving));
        steps.AddRange(ParameterPutBacks(journal, leaving));
        steps.AddRange(ResetMethodPlanner.PutBacks(journal, leaving));
        return new BindPlan(PlanKind.Return, states, steps, notes) { Sriov = sriov };
    }

    /// <summary>
    /// The module parameters to put back once <paramref name="leaving"/> are given back (or their claim ends): those no
    /// function the journal still holds afterwards was set for. Last in a give-back, after the devices left vfio.
    /// </summary>
    private static IEnumerable<BindStep> ParameterPutBacks(Journal journal, IEnumerable<PciAddress> leaving)
    {
        if (journal.Parameters.Count == 0) yield break;
        var gone = leaving.ToHashSet();
        foreach (var p in journal.Parameters)
            if (p.For.All(a => gone.Contains(a) || journal.Find(a) is null))
                yield return new PutBackParameter(p.Path, p.Original);
    }

    /// <summary>
    /// The parts of the host's console to take back once <paramref name="leaving"/> are given back: those no function the
    /// journal still holds afterwards was released for. After the GPU left vfio-pci (its memory is free again), in the
    /// reverse order of their release: the framebuffer driver, then the console on it.
    /// </summary>
    private static IEnumerable<BindStep> ConsoleTakeBacks(Journal journal, IEnumerable<PciAddress> leaving)
    {
        // Most journals hold no console: then not even the set below (a first HashSet of addresses and a LINQ chain
        // cost a restore ~2 ms under emulation, where each generic interface call is resolved on first use).
        if (journal.Consoles.Count == 0) return [];
        var gone = leaving.ToHashSet();
        return journal.Consoles.Where(c => c.For.All(a => gone.Contains(a) || journal.Find(a) is null))
            .Reverse().Select(c => (BindStep)new TakeBackConsole(c.Hold)).ToList();
    }

    /// <summary>
    /// What giving back a bind's functions will take once it is applied, predicted from the plan itself (each function
    /// then on vfio-pci with its override set): shown by run's --dry-run as what happens when the guest ends.
    /// </summary>
    public static IReadOnlyList<BindStep> PredictReturn(HostRoot host, BindPlan bind)
    {
        var steps = new List<BindStep>();
        foreach (var f in bind.Functions) steps.AddRange(ReturnSteps(f, Vfio, Vfio));
        foreach (var r in bind.Steps.OfType<ReleaseConsole>().Reverse()) steps.Add(new TakeBackConsole(r.Hold));
        foreach (var m in bind.Steps.OfType<SetModuleParameter>())
            steps.Add(new PutBackParameter(m.Path, host.ReadAttribute(m.Path) ?? "its value before"));
        foreach (var r in bind.Steps.OfType<SetResetMethod>())
            steps.Add(new PutBackResetMethod(r.Function, host.ReadAttribute(r.Path)?.Trim() ?? "its methods before"));
        return steps;
    }

    /// <summary>
    /// The writes that give one function back: its driver_override first (while it says vfio-pci, no other driver
    /// may take the device), then away from the driver it has now, then a probe that lets its own driver take it.
    /// Used by unbind and restore, and by a bind's rollback.
    /// </summary>
    public static IEnumerable<BindStep> ReturnSteps(FunctionState original, string? currentDriver, string? currentOverride)
    {
        var a = original.Address;
        if (currentOverride != original.DriverOverride)
            yield return new WriteAttribute(a, SysfsPaths.DriverOverride(a), original.DriverOverride ?? "\n");
        if (currentDriver is not null && currentDriver != original.Driver)
            yield return new WriteAttribute(a, SysfsPaths.Unbind(currentDriver), a.ToString());
        if (original.Driver is not null && currentDriver != original.Driver)
            yield return new WriteAttribute(a, SysfsPaths.DriversProbe, a.ToString());
        yield return new VerifyDriver(a, original.Driver);
    }
}
