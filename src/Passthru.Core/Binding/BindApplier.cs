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

    public void Apply(BindPlan plan, CancellationToken cancel = default)
    {
        if (plan.IsEmpty && plan.Kind == PlanKind.Bind) return;
        if (plan.Kind == PlanKind.Bind)
        {
            foreach (var f in plan.Functions) journal.Record(f);
            journal.Save(); // before the first write: a crash from here on can be restored
        }
        var touched = new List<FunctionState>();
        _changedParameters.Clear();
        BindStep? current = null;
        try
        {
            foreach (var step in plan.Steps)
            {
                cancel.ThrowIfCancellationRequested();
                current = step;
                if (step is WriteAttribute w && plan.Kind == PlanKind.Bind && touched.All(t => t.Address != w.Function))
                    touched.Add(plan.Functions.First(f => f.Address == w.Function));
                Execute(step);
                progress.WriteLine($"done: {step.Describe()}");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or StepFailed or OperationCanceledException)
        {
            var what = e is OperationCanceledException ? "interrupted" : $"{current!.Describe()} failed: {Reason(e)}";
            if (plan.Kind != PlanKind.Bind) throw new UserError($"{what}; the journal still records what to give back: run `passthru restore` again");
            throw new UserError($"{what}; {RollBack(touched)}");
        }
        if (plan.Kind == PlanKind.Return)
        {
            foreach (var f in plan.Functions) journal.Remove(f.Address);
            journal.Save();
            // A parameter goes back once no function it was set for is held any more.
            PutBackParameters(p => p.For.All(a => journal.Find(a) is null));
        }
    }

    private readonly List<ParameterState> _changedParameters = [];

    /// <summary>
    /// Writes the journaled original value of each parameter <paramref name="which"/> selects and forgets it. Returns
    /// what it put back, or throws (the journal keeps what could not be put back, for restore).
    /// </summary>
    public IReadOnlyList<ParameterState> PutBackParameters(Func<ParameterState, bool> which)
    {
        var done = new List<ParameterState>();
        foreach (var p in journal.Parameters.Where(which).ToList())
        {
            try
            {
                // A module unloaded since has lost the changed value with it: nothing is left to put back.
                if (host.Exists(p.Path)) host.WriteAttribute(p.Path, p.Original);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new UserError($"putting {p.Original} back into /{p.Path} failed: {Reason(e)}; the journal still records it: run `passthru restore` again");
            }
            journal.Remove(p);
            journal.Save();
            done.Add(p);
        }
        return done;
    }

    /// <summary>Gives back every touched function, newest first; says what happened, and what could not be undone.</summary>
    private string RollBack(List<FunctionState> touched)
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
        foreach (var p in _changedParameters)
        {
            try { host.WriteAttribute(p.Path, p.Original); journal.Remove(p); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { failures.Add($"/{p.Path}: {Reason(e)}"); }
        }
        journal.Save();
        if (touched.Count == 0 && _changedParameters.Count == 0) return "nothing had been changed";
        var list = string.Join(", ", touched.Select(t => $"{t.Address} to {t.Driver ?? "no driver"}")
            .Concat(_changedParameters.Select(p => $"{p.Original} to /{p.Path}")));
        return failures.Count == 0
            ? $"rolled back: gave {list}"
            : $"rollback incomplete ({string.Join("; ", failures)}): the journal keeps them, run `passthru restore`";
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
            case VerifyDriver v:
                if (!WaitFor(() => host.ReadLinkName(SysfsPaths.Driver(v.Function)) == v.Driver))
                    throw new StepFailed($"{v.Function} is bound to {host.ReadLinkName(SysfsPaths.Driver(v.Function)) ?? "no driver"}, not {v.Driver ?? "no driver"}");
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

    private void LoadModule(string name)
    {
        if (!host.IsLive) throw new StepFailed($"modules can only be loaded on the live host (--root /), not into {host.Root}");
        var modprobe = Programs.Find(host, "modprobe") ?? throw new StepFailed("modprobe not found (install kmod)");
        var r = Programs.Run(modprobe, [name], TimeSpan.FromSeconds(60)) ?? throw new StepFailed($"modprobe {name} did not finish");
        if (r.ExitCode != 0) throw new StepFailed($"modprobe {name}: {r.Stderr.Trim().Split('\n')[0]}");
    }

    private bool WaitFor(Func<bool> condition)
    {
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
        _ => e.Message.Split('\n')[0],
    };
}
