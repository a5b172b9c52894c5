using Passthru.Pci;

namespace Passthru.Binding;

/// <summary>One thing the binding engine does to the host. Plans are lists of these: shown by --dry-run, run by the applier.</summary>
public abstract record BindStep
{
    public abstract string Describe();
}

/// <summary>modprobe NAME (skipped in plans when the module is already loaded).</summary>
public sealed record LoadModule(string Name) : BindStep
{
    public override string Describe() => $"modprobe {Name}";
}

/// <summary>A write to a sysfs attribute, with the function it concerns (for rollback).</summary>
public sealed record WriteAttribute(PciAddress Function, string Path, string Value) : BindStep
{
    public override string Describe() => Value.Trim().Length == 0 ? $"clear /{Path}" : $"write {Value} > /{Path}";
}

/// <summary>Checks that the kernel did what was asked: the function's driver is now <see cref="Driver"/> (null: none).</summary>
public sealed record VerifyDriver(PciAddress Function, string? Driver) : BindStep
{
    public override string Describe() => $"check {Function} is bound to {Driver ?? "no driver"}";
}

/// <summary>Checks that the group's vfio device node exists: what QEMU opens.</summary>
public sealed record VerifyVfioGroup(int Group) : BindStep
{
    public override string Describe() => $"check /dev/vfio/{Group} exists";
}

/// <summary>
/// Sets a module parameter through sysfs (the module is loaded by an earlier step). The value it had is journaled
/// before the write and put back when the functions in <see cref="For"/> are given back (or by restore after a crash).
/// </summary>
public sealed record SetModuleParameter(string Path, string Value, IReadOnlyList<PciAddress> For) : BindStep
{
    public override string Describe() => $"write {Value} > /{Path} (put back when {string.Join(", ", For)} {(For.Count == 1 ? "is" : "are")} given back)";
}

/// <summary>A function a plan moves, with what it had before: what the journal records and restore gives back.</summary>
public sealed record FunctionState(PciAddress Address, string? Driver, string? DriverOverride, int? Group);

public enum PlanKind { Bind, Return }

/// <summary>What the binding engine will do, as data: tests assert it, --dry-run prints it, the applier runs it.</summary>
public sealed record BindPlan(PlanKind Kind, IReadOnlyList<FunctionState> Functions, IReadOnlyList<BindStep> Steps, IReadOnlyList<string> Notes)
{
    public bool IsEmpty => Steps.Count == 0;

    public IEnumerable<string> Describe()
    {
        foreach (var note in Notes) yield return note;
        if (IsEmpty) yield break;
        yield return Kind == PlanKind.Bind ? "plan:" : "plan (give back):";
        int i = 1;
        foreach (var step in Steps) yield return $"  {i++,2}. {step.Describe()}";
    }
}
