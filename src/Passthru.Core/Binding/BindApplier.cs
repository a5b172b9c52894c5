using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Binding;

/// <summary>
/// Runs a <see cref="BindPlan"/> against the host. A bind is journaled before its first write; if any step fails (or
/// the user interrupts) the functions already touched are given back, newest first, and the error says so.
/// </summary>
public sealed class BindApplier(HostRoot host, Journal journal, TextWriter progress)
{
    /// <summary>How long to wait for the kernel's probe and udev's device node, which may finish after the write returns.</summary>
    public TimeSpan SettleTime { get; init; } = TimeSpan.FromSeconds(3);

    private sealed class StepFailed(string message) : Exception(message);

    /// <summary>
    /// Applies the plan. Before each step <paramref name="interrupted"/> is asked (a signal the command holds: see
    /// Host.InterruptHold, or run's interrupt); when it says so, the plan ends there, rolled back.
    /// </summary>
    public void Apply(BindPlan plan, Func<bool>? interrupted = null)
    {
        if (plan.IsEmpty && plan.Kind == PlanKind.Bind) return;
        _sriovBefore.Clear();
        _vanished.Clear();
        if (plan.Kind == PlanKind.Bind)
        {
            // VFs a count change removes are forgotten before its write, not after: a kill in between would leave them
            // to restore, which would give VFs made later at their addresses their drivers; and a VF this plan makes at
            // the same address is journaled as made (a rollback records the old ones again while they still exist).
            foreach (var a in plan.Vanishing)
                if (journal.Find(a) is { } gone) { _vanished.Add(gone); journal.Remove(a); }
            foreach (var f in plan.Functions) journal.Record(f);
            foreach (var x in plan.Sriov)
            {
                _sriovBefore[x.Pf] = journal.FindSriov(x.Pf);
                journal.Record(x);
            }
            journal.Save(); // before the first write: a crash from here on can be restored
        }
        var touched = new List<FunctionState>();
        _changedParameters.Clear();
        _changedNodes.Clear();
        _changedConsoles.Clear();
        _changedSriov.Clear();
        _changedResets.Clear();
        _changedRoms.Clear();
        BindStep? current = null;
        try
        {
            foreach (var step in plan.Steps)
            {
                if (interrupted?.Invoke() == true) throw new OperationCanceledException();
                current = step;
                if (step is WriteAttribute w && plan.Kind == PlanKind.Bind && touched.All(t => t.Address != w.Function))
                    touched.Add(plan.Functions.First(f => f.Address == w.Function));
                if (step is SriovWrite sw && plan.Kind == PlanKind.Bind && !_changedSriov.Contains(sw.Pf)) _changedSriov.Add(sw.Pf);
                Execute(step);
                if (plan.Kind == PlanKind.Bind) AfterSriovStep(step, plan);
                progress.WriteLine($"done: {step.Describe()}");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or StepFailed or OperationCanceledException)
        {
            var what = e is OperationCanceledException ? "interrupted" : $"{current!.Describe()} failed: {Reason(e)}";
            if (plan.Kind != PlanKind.Bind) throw new UserError($"{what}; the journal still records what to give back: run `passthru restore` again");
            throw new UserError($"{what}; {RollBack(touched, plan)}");
        }
        if (plan.Kind == PlanKind.Return)
        {
            foreach (var f in plan.Functions) journal.Remove(f.Address);
            foreach (var x in plan.Sriov) journal.Remove(x);
            journal.Save();
        }
        else if (plan.Sriov.Count > 0)
        {
            // Back at the count it had before Passthru first changed it, with autoprobe put back: nothing is left to undo,
            // unless this plan bound the new VFs (restore makes them anew, for their host driver to probe as before).
            foreach (var x in plan.Sriov)
                if (journal.FindSriov(x.Pf) is { OriginalAutoprobe: null } j && j.OriginalCount == x.Created.Count && plan.Functions.Count == 0) journal.Remove(j);
            journal.Save();
        }
    }

    /// <summary>
    /// Keeps the journal true as a VF count change goes: the groups of the VFs it created are recorded once they
    /// exist, and autoprobe put back needs no restore any more (the VFs it removes were forgotten before it began).
    /// </summary>
    private void AfterSriovStep(BindStep step, BindPlan plan)
    {
        switch (step)
        {
            case VerifyVfs { Expected: { Count: > 0 } created }:
                foreach (var vf in created)
                    if (journal.Find(vf) is { Group: null } f && ReadGroup(vf) is int g) journal.Replace(f with { Group = g });
                journal.Save();
                break;
            case SriovWrite { Attribute: SriovWrite.Autoprobe } sw when journal.FindSriov(sw.Pf) is { } j && j.OriginalAutoprobe == sw.Value:
                journal.Replace(j with { OriginalAutoprobe = null });
                journal.Save();
                break;
        }
    }

    private readonly List<PciAddress> _changedSriov = [];
    private readonly List<FunctionState> _vanished = [];
    private readonly Dictionary<PciAddress, SriovState?> _sriovBefore = [];

    private int? ReadGroup(PciAddress function) =>
        int.TryParse(host.ReadLinkName(SysfsPaths.IommuGroup(function)), out var g) ? g : null;

    private readonly List<ParameterState> _changedParameters = [];
    private readonly List<NodeState> _changedNodes = [];
    private readonly List<ConsoleState> _changedConsoles = [];
    private readonly List<ResetMethodState> _changedResets = [];
    private readonly List<PciAddress> _changedRoms = [];

    /// <summary>Gives back every touched function, newest first; says what happened, and what could not be undone.</summary>
    private string RollBack(List<FunctionState> touched, BindPlan plan)
    {
        var failures = new List<string>();
        for (int i = touched.Count - 1; i >= 0; i--)
        {
            var f = touched[i];
            try
            {
                var driver = host.ReadLinkName(SysfsPaths.Driver(f.Address));
                var over = host.ReadAttribute(SysfsPaths.DriverOverride(f.Address)) is { } o && o != "(null)" && o.Length > 0 ? o : null;
                foreach (var step in BindPlanner.ReturnSteps(f, driver, over)) Execute(step);
                journal.Remove(f.Address);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or StepFailed)
            {
                failures.Add($"{f.Address}: {Reason(e)}");
            }
        }
        foreach (var n in _changedNodes)
        {
            try { if (host.Exists(n.Path)) host.SetOwner(n.Path, n.Uid, n.Gid, n.Mode); journal.Remove(n); }
            catch (IOException e) { failures.Add($"/{n.Path}: {Reason(e)}"); }
        }
        for (int i = _changedConsoles.Count - 1; i >= 0; i--)
        {
            var c = _changedConsoles[i];
            try { TakeBack(c.Hold); journal.Remove(c); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { failures.Add($"{c.Hold}: {Reason(e)}"); }
        }
        foreach (var r in _changedResets)
        {
            try { PutBackReset(r.Function, r.Original); journal.Remove(r); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { failures.Add($"/{ResetMethodState.PathOf(r.Function)}: {Reason(e)}"); }
        }
        foreach (var r in _changedRoms)
        {
            try { if (host.Exists(SysfsPaths.Rom(r))) host.WriteAttribute(SysfsPaths.Rom(r), "0"); journal.RemoveRom(r); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { failures.Add($"/{SysfsPaths.Rom(r)}: {Reason(e)}"); }
        }
        foreach (var p in _changedParameters)
        {
            try { host.WriteAttribute(p.Path, p.Original); journal.Remove(p); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { failures.Add($"/{p.Path}: {Reason(e)}"); }
        }
        var counts = new List<string>();
        foreach (var before in plan.SriovRollback.Where(b => _changedSriov.Contains(b.Pf)))
        {
            try
            {
                PutBackVfCount(before.Pf, before.OriginalCount, before.OriginalAutoprobe);
                counts.Add($"{before.Pf} its {before.OriginalCount} VF{(before.OriginalCount == 1 ? "" : "s")}");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or StepFailed) { failures.Add($"{before.Pf}: {Reason(e)}"); continue; }
        }
        // The journal as it was before this plan, for the PFs whose count is back (or was never changed).
        foreach (var x in plan.Sriov)
        {
            if (failures.Any(f => f.StartsWith(x.Pf + ":", StringComparison.Ordinal))) continue;
            journal.Remove(x);
            if (_sriovBefore.GetValueOrDefault(x.Pf) is { } earlier) journal.Record(earlier);
            // VFs journaled before they existed and never touched: nothing to give back (touched ones were, above).
            foreach (var vf in x.Created) if (!touched.Any(t => t.Address == vf)) journal.Remove(vf);
        }
        // VFs the count change was to remove and that are still there, on vfio-pci: known again.
        foreach (var f in _vanished)
            if (host.ReadLinkName(SysfsPaths.Driver(f.Address)) == BindPlanner.Vfio) { journal.Remove(f.Address); journal.Record(f); }
        journal.Save();
        if (touched.Count == 0 && _changedParameters.Count == 0 && _changedNodes.Count == 0 && _changedConsoles.Count == 0 && _changedResets.Count == 0 && _changedRoms.Count == 0 && counts.Count == 0) return "nothing had been changed";
        var list = string.Join(", ", touched.Select(t => $"{t.Address} to {t.Driver ?? "no driver"}")
            .Concat(_changedNodes.Select(n => $"/{n.Path} to {n.Uid}:{n.Gid}"))
            .Concat(_changedConsoles.Select(c => $"{c.Hold} to the host's console"))
            .Concat(_changedRoms.Select(r => $"0 to /{SysfsPaths.Rom(r)}"))
            .Concat(_changedParameters.Select(p => $"{p.Original} to /{p.Path}"))
            .Concat(_changedResets.Select(r => $"{r.Original} to /{ResetMethodState.PathOf(r.Function)}")).Concat(counts));
        return failures.Count == 0
            ? $"rolled back: gave {list}"
            : $"rollback incomplete ({string.Join("; ", failures)}): the journal keeps them, run `passthru restore`";
    }

    /// <summary>
    /// Sets a PF's VF count back (through 0: the kernel refuses to change one non-zero count into another) and its
    /// autoprobe, when known.
    /// </summary>
    public void PutBackVfCount(PciAddress pf, int count, string? autoprobe)
    {
        if (!host.Exists(SysfsPaths.Sriov(pf, SriovWrite.NumVfs))) return; // the PF is gone, and its VFs with it
        int now = int.TryParse(host.ReadAttribute(SysfsPaths.Sriov(pf, SriovWrite.NumVfs)), out var n) ? n : -1;
        if (now != count)
        {
            if (now != 0 && count != 0) Execute(new SriovWrite(pf, SriovWrite.NumVfs, "0"));
            Execute(new SriovWrite(pf, SriovWrite.NumVfs, count.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
        if (autoprobe is not null) Execute(new SriovWrite(pf, SriovWrite.Autoprobe, autoprobe));
    }

    private void Execute(BindStep step)
    {
        switch (step)
        {
            case LoadModule m:
                LoadModule(m.Name);
                break;
            case WriteAttribute w:
                host.WriteAttribute(w.Path, w.Value);
                break;
            case SetModuleParameter m:
                SetParameter(m);
                break;
            case PutBackParameter p:
                // A module unloaded since has lost the changed value with it: nothing is left to put back.
                if (host.Exists(p.Path)) host.WriteAttribute(p.Path, p.Value);
                if (journal.FindParameter(p.Path) is { } state) journal.Remove(state);
                journal.Save();
                break;
            case SetResetMethod r:
                SetReset(r);
                break;
            case PutBackResetMethod r:
                PutBackReset(r.Function, r.Value);
                if (journal.FindResetMethod(r.Function) is { } reset) journal.Remove(reset);
                journal.Save();
                break;
            case HandOverNode h:
                HandOver(h);
                break;
            case PutBackNode n:
                // The node goes with its group's last vfio-pci function (and comes back root's when bound again).
                if (host.Exists(n.Path)) host.SetOwner(n.Path, n.Uid, n.Gid, n.Mode);
                if (journal.FindNode(n.Path) is { } node) journal.Remove(node);
                journal.Save();
                break;
            case ReleaseConsole r:
                Release(r);
                break;
            case TakeBackConsole t:
                TakeBack(t.Hold);
                if (journal.FindConsole(t.Hold) is { } console) journal.Remove(console);
                journal.Save();
                break;
            case EnableRom r:
                journal.RecordRom(r.Function);
                journal.Save(); // before the write: a kill from here on leaves restore the ROM to turn off
                _changedRoms.Add(r.Function);
                host.WriteAttribute(r.Path, "1");
                break;
            case DisableRom r:
                // A function gone from the bus took its ROM's state with it: nothing is left to turn off.
                if (host.Exists(r.Path)) host.WriteAttribute(r.Path, "0");
                journal.RemoveRom(r.Function);
                journal.Save();
                break;
            case VerifyDriver v:
                if (!WaitFor(() => host.ReadLinkName(SysfsPaths.Driver(v.Function)) == v.Driver))
                    throw new StepFailed($"{v.Function} is bound to {host.ReadLinkName(SysfsPaths.Driver(v.Function)) ?? "no driver"}, not {v.Driver ?? "no driver"}");
                break;
            case SriovWrite sw:
                host.WriteAttribute(sw.Path, sw.Value);
                break;
            case VerifyVfs v:
                if (!WaitFor(() => PciInventory.VirtualFunctionsOf(host, v.Pf).Count == v.Count))
                    throw new StepFailed($"{v.Pf} has {PciInventory.VirtualFunctionsOf(host, v.Pf).Count} VFs, not {v.Count}");
                if (v.Expected is not null && !PciInventory.VirtualFunctionsOf(host, v.Pf).SequenceEqual(v.Expected))
                    throw new StepFailed($"{v.Pf}'s VFs are {string.Join(", ", PciInventory.VirtualFunctionsOf(host, v.Pf))}, not {string.Join(", ", v.Expected)} as its offset and stride said");
                break;
            case VerifyVfioGroupOf vg:
                var group = ReadGroup(vg.Function) ?? throw new StepFailed($"{vg.Function} is in no IOMMU group");
                if (!WaitFor(() => host.Exists(SysfsPaths.VfioGroup(group))))
                    throw new StepFailed($"/dev/vfio/{group} did not appear");
                break;
            case VerifyVfioGroup g:
                if (!WaitFor(() => host.Exists(SysfsPaths.VfioGroup(g.Group))))
                    throw new StepFailed($"/dev/vfio/{g.Group} did not appear");
                break;
        }
    }

    /// <summary>Journals the parameter's value, then changes it; a value already as wanted is left alone (nothing to undo).</summary>
    private void SetParameter(SetModuleParameter m)
    {
        var original = host.ReadAttribute(m.Path) ?? throw new StepFailed($"/{m.Path} does not exist (is the module loaded?)");
        if (original == m.Value && journal.FindParameter(m.Path) is null) return;
        var state = new ParameterState(m.Path, journal.FindParameter(m.Path)?.Original ?? original, m.For);
        journal.Record(state);
        journal.Save(); // before the write: a crash from here on leaves restore what to put back
        if (original == m.Value) return; // already set by Passthru for other devices: now kept for these too
        _changedParameters.Add(state);
        host.WriteAttribute(m.Path, m.Value);
    }

    /// <summary>Journals the function's reset_method, then writes the new one; a function already set keeps its first original.</summary>
    private void SetReset(SetResetMethod r)
    {
        var now = host.ReadAttribute(r.Path)?.Trim() ?? throw new StepFailed($"{r.Function} has no reset_method");
        if (now == r.Value) return;
        var earlier = journal.FindResetMethod(r.Function);
        var state = earlier ?? new ResetMethodState(r.Function, now);
        if (earlier is null)
        {
            if (!ResetMethodState.IsMethodList(now)) throw new StepFailed($"{r.Function}'s reset_method reads '{Shown.Value(now)}', not a list of methods to put back later");
            journal.Record(state);
            journal.Save(); // before the write: a crash from here on leaves restore what to put back
            _changedResets.Add(state);
        }
        try { host.WriteAttribute(r.Path, r.Value); }
        catch (IOException e) { throw new StepFailed($"the kernel refused {r.Value} for {r.Function} ({Reason(e)}): it does not offer that method now"); }
    }

    /// <summary>
    /// Writes a function's reset methods back. When the kernel refuses them (a method only a module supplied, and the
    /// module is gone), "default" gives the function every method it has now instead of none it can use.
    /// </summary>
    private void PutBackReset(PciAddress function, string value)
    {
        var path = ResetMethodState.PathOf(function);
        if (!host.Exists(path)) return; // the function is gone (or has no reset left): nothing to put back
        try { host.WriteAttribute(path, value); }
        catch (IOException) { host.WriteAttribute(path, "default"); }
    }

    /// <summary>Journals the node's owner and mode, then hands it over; one already handed over keeps its first original.</summary>
    private void HandOver(HandOverNode h)
    {
        var now = host.Owner(h.Path) ?? throw new StepFailed($"/{h.Path} does not exist (is the group on vfio-pci?)");
        var earlier = journal.FindNode(h.Path);
        var state = new NodeState(h.Path, earlier?.Uid ?? now.Uid, earlier?.Gid ?? now.Gid, earlier?.Mode ?? now.Mode, h.For);
        journal.Record(state);
        journal.Save(); // before the change: a crash from here on leaves restore what to put back
        if (earlier is null) _changedNodes.Add(state);
        host.SetOwner(h.Path, h.Uid, h.Gid, HandOverNode.Mode);
    }

    /// <summary>Journals a console part, then releases it; one already let go (by the user, or for another GPU) needs nothing.</summary>
    private void Release(ReleaseConsole r)
    {
        var earlier = journal.FindConsole(r.Hold);
        bool holding = r.Hold.Kind == ConsoleHold.VtConsole
            ? host.ReadAttribute(r.Hold.ReleasePath)?.Trim() == "1"
            : host.ReadLinkName($"sys/bus/platform/devices/{r.Hold.Name}/driver") == r.Hold.Driver;
        if (!holding && earlier is null) return;
        var state = new ConsoleState(r.Hold, r.For);
        journal.Record(state);
        journal.Save(); // before the write: a crash from here on leaves restore what to take back
        if (!holding) return;
        _changedConsoles.Add(state);
        host.WriteAttribute(r.Hold.ReleasePath, r.Hold.ReleaseValue);
    }

    /// <summary>
    /// Gives the console part back. A framebuffer device gone, or taken by a driver since (the GPU's own driver, which
    /// draws the console itself once it has the GPU back), needs nothing: the console is the host's again either way.
    /// </summary>
    private void TakeBack(ConsoleHold hold)
    {
        if (hold.Kind == ConsoleHold.VtConsole)
        {
            if (host.Exists(hold.TakeBackPath) && host.ReadAttribute(hold.TakeBackPath)?.Trim() != "1") host.WriteAttribute(hold.TakeBackPath, hold.TakeBackValue);
            return;
        }
        if (!host.Exists($"sys/bus/platform/devices/{hold.Name}") || host.ReadLinkName($"sys/bus/platform/devices/{hold.Name}/driver") is not null) return;
        host.WriteAttribute(hold.TakeBackPath, hold.TakeBackValue);
    }

    private void LoadModule(string name)
    {
        if (!host.IsLive) throw new StepFailed($"modules can only be loaded on the live host (--root /), not into {host.Root}");
        var modprobe = Programs.Find(host, "modprobe") ?? throw new StepFailed("modprobe not found (install kmod)");
        var r = Programs.Run(modprobe, [name], TimeSpan.FromSeconds(60)) ?? throw new StepFailed($"modprobe {name} did not finish");
        if (r.ExitCode != 0) throw new StepFailed($"modprobe {name}: {r.Stderr.Trim().Split('\n')[0]}");
    }

    private bool WaitFor(Func<bool> condition)
    {
        // The clock is read only once the condition is not met at once, as it mostly is: a virtual host's clock can be
        // an emulated HPET, where each read costs a few hundred microseconds (bench/README.md, "The eighth pass").
        if (condition()) return true;
        var deadline = DateTime.UtcNow + SettleTime;
        while (!condition())
        {
            if (DateTime.UtcNow >= deadline) return false;
            Thread.Sleep(20);
        }
        return true;
    }

    private static string Reason(Exception e) => e switch
    {
        StepFailed s => s.Message,
        _ => Shown.Error(e),
    };
}
