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

/// <summary>
/// Puts a module parameter Passthru changed back to the value the journal recorded, in a give-back, once no function
/// it was set for stays held. A module unloaded since lost the changed value with it: then there is nothing to write.
/// </summary>
public sealed record PutBackParameter(string Path, string Value) : BindStep
{
    public override string Describe() => $"write {Value} > /{Path} (no device it was set for is held any more)";
}

/// <summary>
/// Hands a group's vfio node (/dev/vfio/N) to the unprivileged user a guest's QEMU runs as, mode 0600, so that QEMU
/// (never root) can open it, at its start or on a hot-plug. Its owner and mode are journaled before the change and
/// put back once no running guest holds the group (or by restore after a crash).
/// </summary>
public sealed record HandOverNode(int Group, int Uid, int Gid, string User, IReadOnlyList<PciAddress> For) : BindStep
{
    public const int Mode = 0x180; // 0600: the guest's QEMU alone
    public string Path => SysfsPaths.VfioGroup(Group);
    public override string Describe() => $"hand /{Path} to {User} ({Uid}:{Gid}, mode 0600) while the guest holds {string.Join(", ", For)}";
}

/// <summary>Puts a vfio group node back to the owner and mode the journal recorded (a node gone with its group's last vfio-pci function needs nothing).</summary>
public sealed record PutBackNode(string Path, int Uid, int Gid, int Mode) : BindStep
{
    public override string Describe() => $"put /{Path} back to {Uid}:{Gid}, mode {Convert.ToString(Mode, 8).PadLeft(4, '0')} (no running guest holds it)";
}

/// <summary>
/// A write to one of a physical function's SR-IOV attributes: sriov_numvfs (the kernel creates or removes the VFs
/// during the write) or sriov_drivers_autoprobe (whether host drivers probe VFs as they appear).
/// </summary>
public sealed record SriovWrite(PciAddress Pf, string Attribute, string Value) : BindStep
{
    public const string NumVfs = "sriov_numvfs";
    public const string Autoprobe = "sriov_drivers_autoprobe";
    public string Path => SysfsPaths.Sriov(Pf, Attribute);
    public override string Describe() => $"write {Value} > /{Path}";
}

/// <summary>
/// Checks that the PF has <see cref="Count"/> VFs, at the <see cref="Expected"/> addresses when given (the plan named
/// them from the PF's offset and stride before they existed).
/// </summary>
public sealed record VerifyVfs(PciAddress Pf, int Count, IReadOnlyList<PciAddress>? Expected) : BindStep
{
    public override string Describe() => Count == 0 ? $"check {Pf} has no VFs"
        : $"check {Pf} has {Count} VF{(Count == 1 ? "" : "s")}{(Expected is null ? "" : ": " + string.Join(", ", Expected))}";
}

/// <summary>Checks that the vfio device node of the function's group exists; a VF's group is known only once it exists.</summary>
public sealed record VerifyVfioGroupOf(PciAddress Function) : BindStep
{
    public override string Describe() => $"check /dev/vfio/<IOMMU group of {Function}> exists";
}

/// <summary>
/// Makes a function's option ROM readable (`echo 1 > rom`: the kernel turns its ROM BAR's decoding on). Journaled
/// before the write, so that a kill between it and <see cref="DisableRom"/> is put right by restore.
/// </summary>
public sealed record EnableRom(PciAddress Function) : BindStep
{
    public string Path => SysfsPaths.Rom(Function);
    public override string Describe() => $"write 1 > /{Path} (the ROM readable until it is read)";
}

/// <summary>Turns a ROM Passthru made readable off again (`echo 0 > rom`) and drops it from the journal.</summary>
public sealed record DisableRom(PciAddress Function) : BindStep
{
    public string Path => SysfsPaths.Rom(Function);
    public override string Describe() => $"write 0 > /{Path}";
}

/// <summary>A function a plan moves, with what it had before: what the journal records and restore gives back.</summary>
public sealed record FunctionState(PciAddress Address, string? Driver, string? DriverOverride, int? Group);

public enum PlanKind { Bind, Return }

/// <summary>What the binding engine will do, as data: tests assert it, --dry-run prints it, the applier runs it.</summary>
public sealed record BindPlan(PlanKind Kind, IReadOnlyList<FunctionState> Functions, IReadOnlyList<BindStep> Steps, IReadOnlyList<string> Notes)
{
    public bool IsEmpty => Steps.Count == 0;

    /// <summary>
    /// VF count changes: for a bind, journaled (with <see cref="Functions"/>) before the first write; for a give-back,
    /// dropped from the journal once the count is back.
    /// </summary>
    public IReadOnlyList<SriovState> Sriov { get; init; } = [];

    /// <summary>Journaled functions (VFs) that a VF count change removes from the bus: dropped from the journal with them.</summary>
    public IReadOnlyList<PciAddress> Vanishing { get; init; } = [];

    /// <summary>For a bind that changes VF counts: each PF's count and autoprobe before it, which a rollback puts back.</summary>
    public IReadOnlyList<SriovState> SriovRollback { get; init; } = [];

    public IEnumerable<string> Describe()
    {
        foreach (var note in Notes) yield return note;
        if (IsEmpty) yield break;
        yield return Kind == PlanKind.Bind ? "plan:" : "plan (give back):";
        int i = 1;
        foreach (var step in Steps) yield return $"  {i++,2}. {step.Describe()}";
    }
}

/// <summary>
/// A part of the host's console that holds a GPU: the framebuffer console on a virtual terminal (sysfs
/// class/vtconsole/vtconN, Kind "vtconsole"), or a firmware framebuffer's platform device and the driver that holds
/// its memory inside the GPU's BAR (Kind "framebuffer": efi-framebuffer.0 and efi-framebuffer for efifb). Letting go
/// of it is a write to sysfs; its inverse another.
/// </summary>
public sealed record ConsoleHold(string Kind, string Name, string? Driver)
{
    public const string VtConsole = "vtconsole";
    public const string Framebuffer = "framebuffer";

    public static ConsoleHold Console(string vtcon) => new(VtConsole, vtcon, null);
    public static ConsoleHold PlatformFramebuffer(string device, string driver) => new(Framebuffer, device, driver);

    public string ReleasePath => Kind == VtConsole ? $"sys/class/vtconsole/{Name}/bind" : $"sys/bus/platform/drivers/{Driver}/unbind";
    public string ReleaseValue => Kind == VtConsole ? "0" : Name;
    public string TakeBackPath => Kind == VtConsole ? $"sys/class/vtconsole/{Name}/bind" : $"sys/bus/platform/drivers/{Driver}/bind";
    public string TakeBackValue => Kind == VtConsole ? "1" : Name;

    /// <summary>What a journal may name (restore writes there as root): vtconN, or a firmware framebuffer's platform device and a plain driver name.</summary>
    public bool IsValid => Kind switch
    {
        VtConsole => Pci.BootConsole.IsVtConsoleName(Name) && Driver is null,
        Framebuffer => IsFramebufferDevice(Name) && Driver is { Length: > 0 and < 64 } d && d.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'),
        _ => false,
    };

    private static bool IsFramebufferDevice(string name)
    {
        int dot = name.LastIndexOf('.');
        return dot > 0 && name.Length < 64 && name[..dot] is "efi-framebuffer" or "vesa-framebuffer" or "simple-framebuffer"
            && name[(dot + 1)..] is { Length: > 0 } n && n.All(char.IsAsciiDigit);
    }

    public override string ToString() => Kind == VtConsole ? $"the framebuffer console on {Name}" : $"{Name} ({Driver})";
}

/// <summary>
/// Lets go of a part of the host's console that holds a GPU passed to a guest (--release-console): journaled before the
/// write, taken back when the functions in <see cref="For"/> are given back (or by restore after a crash).
/// </summary>
public sealed record ReleaseConsole(ConsoleHold Hold, IReadOnlyList<PciAddress> For) : BindStep
{
    public override string Describe() => Hold.Kind == ConsoleHold.VtConsole
        ? $"write 0 > /{Hold.ReleasePath} (the framebuffer console lets go of {string.Join(", ", For)}; taken back with it)"
        : $"write {Hold.Name} > /{Hold.ReleasePath} ({Hold.Driver} lets go of its memory in {string.Join(", ", For)}'s BAR; taken back with it)";
}

/// <summary>Takes back a part of the host's console Passthru released, once no function it was released for stays held.</summary>
public sealed record TakeBackConsole(ConsoleHold Hold) : BindStep
{
    public override string Describe() => $"write {Hold.TakeBackValue} > /{Hold.TakeBackPath} (the host's console takes {Hold.Name} back)";
}

/// <summary>
/// Sets a function's reset_method (the reset methods the kernel may use, in order: e.g. device_specific for a GPU
/// vendor-reset knows). What it was is journaled before the write and put back when the function is given back (or by
/// restore after a crash).
/// </summary>
public sealed record SetResetMethod(PciAddress Function, IReadOnlyList<string> Methods) : BindStep
{
    public string Path => ResetMethodState.PathOf(Function);
    public string Value => string.Join(' ', Methods);
    public override string Describe() => $"write {Value} > /{Path} (put back when {Function} is given back)";
}

/// <summary>Puts a function's reset_method back to what the journal recorded (a function gone from the bus needs nothing).</summary>
public sealed record PutBackResetMethod(PciAddress Function, string Value) : BindStep
{
    public string Path => ResetMethodState.PathOf(Function);
    public override string Describe() => $"write {Value} > /{Path} (its reset methods before Passthru)";
}
