using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Win32.SafeHandles;
using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Binding;

/// <summary>
/// What Passthru changed, written before it changes it: each function it moved, with the driver and driver_override
/// it had. Unbind and restore give functions back from here, also after a crash or kill -9 half-way through a bind.
/// Kept as one small JSON file (0600), replaced atomically (temp file, fsync, rename).
/// </summary>
public sealed class Journal
{
    public const string FileName = "state.json";
    private readonly List<FunctionState> _functions;
    private readonly List<ParameterState> _parameters;
    private readonly List<SriovState> _sriov;
    private readonly List<NodeState> _nodes;
    private readonly List<ConsoleState> _consoles;
    private readonly List<ResetMethodState> _resetMethods = [];
    private readonly List<PciAddress> _roms = [];

    public string Directory { get; }
    public IReadOnlyList<FunctionState> Functions => _functions;
    /// <summary>Module parameters Passthru changed (allow_unsafe_interrupts), with the value to put back.</summary>
    public IReadOnlyList<ParameterState> Parameters => _parameters;
    /// <summary>Physical functions whose VF count Passthru changed, with the count (and VF autoprobe) to put back.</summary>
    public IReadOnlyList<SriovState> Sriov => _sriov;
    /// <summary>vfio group nodes Passthru handed to a guest's QEMU user, with the owner and mode to put back.</summary>
    public IReadOnlyList<NodeState> Nodes => _nodes;
    /// <summary>Parts of the host's console Passthru released for a GPU (--release-console), to take back with it.</summary>
    public IReadOnlyList<ConsoleState> Consoles => _consoles;

    /// <summary>Functions whose reset_method Passthru changed, with the methods to put back.</summary>
    public IReadOnlyList<ResetMethodState> ResetMethods => _resetMethods;

    /// <summary>Functions whose ROM Passthru made readable (`passthru rom`) and has not turned off yet: restore writes 0.</summary>
    public IReadOnlyList<PciAddress> Roms => _roms;

    /// <summary>Nothing is left to give back.</summary>
    public bool IsEmpty => _functions.Count == 0 && _parameters.Count == 0 && _sriov.Count == 0 && _nodes.Count == 0 && _consoles.Count == 0 && _resetMethods.Count == 0 && _roms.Count == 0;

    private Journal(string directory, List<FunctionState> functions, List<ParameterState> parameters, List<SriovState> sriov, List<NodeState> nodes,
        List<ConsoleState> consoles)
    {
        Directory = directory; _functions = functions; _parameters = parameters; _sriov = sriov; _nodes = nodes; _consoles = consoles;
    }

    public static string DefaultDirectory(HostRoot host) => host.Path("run/passthru");

    /// <summary>
    /// The journal of <paramref name="host"/>: when it cannot be read, the error also names the functions on vfio-pci
    /// now, which nothing gives back until it is fixed (restore never guesses a driver the journal does not hold).
    /// </summary>
    public static Journal Load(string directory, HostRoot host)
    {
        try
        {
            return Load(directory);
        }
        catch (UserError e) when (OnVfio(host) is { Count: > 0 } held)
        {
            throw new UserError($"{e.Message} (not given back, on vfio-pci now: {string.Join(", ", held)})", e.ExitCode);
        }
    }

    private static List<string> OnVfio(HostRoot host) =>
        host.List("sys/bus/pci/drivers/vfio-pci").Where(n => PciAddress.TryParse(n, out _)).ToList();

    public static Journal Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        var bytes = StateFile.Read(path, "the journal", "it records the drivers to give devices back to");
        if (bytes is null) return new Journal(directory, [], [], [], [], []);
        try
        {
            var file = StateFile.Parse(bytes, JournalJson.Default.JournalFile);
            // A newer format is refused whole, never read in part and saved back without what this passthru did not know.
            if (file.Version is not 1) throw new StateDamage(file.Version is null ? "no \"version\"" : $"version {file.Version}, which this passthru does not know (a newer one wrote it?)");
            var functions = (file.Functions ?? throw new StateDamage("no \"functions\" list")).Select((f, i) =>
            {
                var at = $"functions[{i}]";
                var address = Address(f?.Address, $"{at}.address");
                if (f!.Group is < 0) throw new StateDamage($"{at}.group is {f.Group}, not an IOMMU group number");
                return new FunctionState(address, StateFile.DriverName(f.Driver, $"{at}.driver"), StateFile.OneLine(f.DriverOverride, $"{at}.driver_override"), f.Group);
            }).ToList();
            var parameters = (file.Parameters ?? []).Select((p, i) =>
            {
                var at = $"parameters[{i}]";
                if (p is null) throw new StateDamage($"{at} is null");
                // The journal names the file restore writes as root: only a module parameter, never a path elsewhere.
                if (p.Path is null || !StateFile.IsModuleParameter(p.Path))
                    throw new StateDamage($"{at}.path '{Shown.Value(p.Path ?? "null")}' is not a module parameter (sys/module/NAME/parameters/NAME)");
                return new ParameterState(p.Path, StateFile.OneLine(p.Original, $"{at}.original") ?? throw new StateDamage($"{at}.original is missing"),
                    (p.For ?? []).Select((a, j) => Address(a, $"{at}.for[{j}]")).ToList());
            }).ToList();
            // Journals written before SR-IOV support have no "sriov" list.
            var sriov = (file.Sriov ?? []).Select((x, i) =>
            {
                var at = $"sriov[{i}]";
                if (x is null) throw new StateDamage($"{at} is null");
                if (x.OriginalNumvfs is not int count || count < 0) throw new StateDamage($"{at}.original_numvfs is missing or negative");
                return new SriovState(Address(x.Pf, $"{at}.pf"), count, StateFile.OneLine(x.OriginalAutoprobe, $"{at}.original_autoprobe"),
                    (x.Created ?? []).Select((a, j) => Address(a, $"{at}.created[{j}]")).ToList());
            }).ToList();
            // Journals written before least privilege have no "nodes" list.
            var nodes = (file.Nodes ?? []).Select((n, i) =>
            {
                var at = $"nodes[{i}]";
                if (n is null) throw new StateDamage($"{at} is null");
                // The journal names the file restore hands back as root: only a vfio group node, never a path elsewhere.
                if (n.Path is null || !NodeState.IsVfioGroupNode(n.Path))
                    throw new StateDamage($"{at}.path '{Shown.Value(n.Path ?? "null")}' is not a vfio group node (dev/vfio/N)");
                if (n.OriginalUid is not int uid || uid < 0 || n.OriginalGid is not int gid || gid < 0)
                    throw new StateDamage($"{at}.original_uid or original_gid is missing or negative");
                if (n.OriginalMode is not int mode || mode is < 0 or > 0xFFF) throw new StateDamage($"{at}.original_mode is missing or not a mode");
                return new NodeState(n.Path, uid, gid, mode, (n.For ?? []).Select((a, j) => Address(a, $"{at}.for[{j}]")).ToList());
            }).ToList();
            // Journals written before GPU support have no "consoles" list.
            var consoles = (file.Consoles ?? []).Select((c, i) =>
            {
                var at = $"consoles[{i}]";
                if (c is null) throw new StateDamage($"{at} is null");
                var hold = new ConsoleHold(c.Kind ?? "", c.Name ?? "", c.Driver);
                // The journal names what restore writes to as root: only a vtconsole or a firmware framebuffer's driver.
                if (!hold.IsValid)
                    throw new StateDamage($"{at} ('{Shown.Value(c.Kind ?? "null")}' '{Shown.Value(c.Name ?? "null")}' '{Shown.Value(c.Driver ?? "null")}') is not a vtconsole or a firmware framebuffer and its driver");
                return new ConsoleState(hold, (c.For ?? []).Select((a, j) => Address(a, $"{at}.for[{j}]")).ToList());
            }).ToList();
            // Journals written before reset methods have no "reset_methods" list.
            var resets = (file.ResetMethods ?? []).Select((r, i) =>
            {
                var at = $"reset_methods[{i}]";
                if (r is null) throw new StateDamage($"{at} is null");
                // The journal names what restore writes as root: the path is made from the address, the value only method names.
                if (r.Original is null || !ResetMethodState.IsMethodList(r.Original))
                    throw new StateDamage($"{at}.original '{Shown.Value(r.Original ?? "null")}' is not a list of reset methods");
                return new ResetMethodState(Address(r.Function, $"{at}.function"), r.Original);
            }).ToList();
            if (resets.Select(r => r.Function).Distinct().Count() != resets.Count) throw new StateDamage("reset_methods names a function twice");
            var journal = new Journal(directory, functions, parameters, sriov, nodes, consoles);
            journal._resetMethods.AddRange(resets);
            // Journals written before `passthru rom` have no "roms" list.
            journal._roms.AddRange((file.Roms ?? []).Select((a, i) => Address(a, $"roms[{i}]")));
            return journal;
        }
        catch (StateDamage e)
        {
            throw Damaged(path, e.Message);
        }
    }

    private static PciAddress Address(string? text, string field) =>
        text is not null && PciAddress.TryParse(text, out var a) ? a : throw new StateDamage($"{field} '{Shown.Value(text ?? "null")}' is not a PCI address");

    private static UserError Damaged(string path, string what) =>
        new($"the journal {path} is damaged ({what}): fix or remove it; it records the drivers to give devices back to");

    public FunctionState? Find(PciAddress address) => _functions.FirstOrDefault(f => f.Address == address);

    /// <summary>Records a function's original state; a function already recorded keeps its first, true original.</summary>
    public void Record(FunctionState state)
    {
        if (Find(state.Address) is null) _functions.Add(state);
    }

    public void Remove(PciAddress address) => _functions.RemoveAll(f => f.Address == address);

    /// <summary>Replaces a recorded function's state (a VF's group, known once the VF exists).</summary>
    public void Replace(FunctionState state)
    {
        int i = _functions.FindIndex(f => f.Address == state.Address);
        if (i >= 0) _functions[i] = state;
    }

    /// <summary>
    /// Records a parameter's original value before it is changed; when Passthru already changed it (for other
    /// functions), the first original stays and these functions are added to the ones it is kept for.
    /// </summary>
    public void Record(ParameterState state)
    {
        int i = _parameters.FindIndex(p => p.Path == state.Path);
        if (i < 0) _parameters.Add(state);
        else _parameters[i] = _parameters[i] with { For = _parameters[i].For.Union(state.For).ToList() };
    }

    public ParameterState? FindParameter(string path) => _parameters.FirstOrDefault(p => p.Path == path);

    public void Remove(ParameterState state) => _parameters.RemoveAll(p => p.Path == state.Path);

    public SriovState? FindSriov(PciAddress pf) => _sriov.FirstOrDefault(s => s.Pf == pf);

    /// <summary>
    /// Records a PF's VF count before Passthru changes it; when Passthru already changed it, the first original count
    /// (and autoprobe) stays and only the VFs it created are updated.
    /// </summary>
    public void Record(SriovState state)
    {
        int i = _sriov.FindIndex(s => s.Pf == state.Pf);
        if (i < 0) _sriov.Add(state);
        else _sriov[i] = _sriov[i] with { Created = state.Created, OriginalAutoprobe = _sriov[i].OriginalAutoprobe ?? state.OriginalAutoprobe };
    }

    public void Remove(SriovState state) => _sriov.RemoveAll(s => s.Pf == state.Pf);

    public void Replace(SriovState state)
    {
        int i = _sriov.FindIndex(s => s.Pf == state.Pf);
        if (i >= 0) _sriov[i] = state;
    }

    public NodeState? FindNode(string path) => _nodes.FirstOrDefault(n => n.Path == path);

    /// <summary>
    /// Records a node's owner and mode before Passthru hands it over; when it is already handed over (to the same guest,
    /// for another of the group's functions), the first original stays and these functions are added.
    /// </summary>
    public void Record(NodeState state)
    {
        int i = _nodes.FindIndex(n => n.Path == state.Path);
        if (i < 0) _nodes.Add(state);
        else _nodes[i] = _nodes[i] with { For = _nodes[i].For.Union(state.For).ToList() };
    }

    public void Remove(NodeState state) => _nodes.RemoveAll(n => n.Path == state.Path);

    public ConsoleState? FindConsole(ConsoleHold hold) => _consoles.FirstOrDefault(c => c.Hold == hold);

    /// <summary>Records a console part before Passthru releases it; one released already keeps its entry, for these functions too.</summary>
    public void Record(ConsoleState state)
    {
        int i = _consoles.FindIndex(c => c.Hold == state.Hold);
        if (i < 0) _consoles.Add(state);
        else _consoles[i] = _consoles[i] with { For = _consoles[i].For.Union(state.For).ToList() };
    }

    public void Remove(ConsoleState state) => _consoles.RemoveAll(c => c.Hold == state.Hold);
    public ResetMethodState? FindResetMethod(PciAddress function) => _resetMethods.FirstOrDefault(r => r.Function == function);

    /// <summary>Records a function's reset_method before Passthru changes it; one already recorded keeps its first, true original.</summary>
    public void Record(ResetMethodState state)
    {
        if (FindResetMethod(state.Function) is null) _resetMethods.Add(state);
    }

    public void Remove(ResetMethodState state) => _resetMethods.RemoveAll(r => r.Function == state.Function);

    /// <summary>Records a function whose ROM Passthru is about to make readable (once, however often).</summary>
    public void RecordRom(PciAddress function)
    {
        if (!_roms.Contains(function)) _roms.Add(function);
    }

    public void RemoveRom(PciAddress function) => _roms.Remove(function);

    public void Save()
    {
        var path = Path.Combine(Directory, FileName);
        if (IsEmpty) { AtomicFile.Delete(path); return; }
        var file = new JournalFile
        {
            Version = 1,
            Functions = _functions.Select(f => new JournalFunction { Address = f.Address.ToString(), Driver = f.Driver, DriverOverride = f.DriverOverride, Group = f.Group }).ToList<JournalFunction?>(),
            Parameters = _parameters.Count == 0 ? null : _parameters.Select(p => new JournalParameter { Path = p.Path, Original = p.Original, For = p.For.Select(a => a.ToString()).ToList<string?>() }).ToList<JournalParameter?>(),
            Sriov = _sriov.Count == 0 ? null : _sriov.Select(x => new JournalSriov
            {
                Pf = x.Pf.ToString(), OriginalNumvfs = x.OriginalCount, OriginalAutoprobe = x.OriginalAutoprobe, Created = x.Created.Select(a => a.ToString()).ToList<string?>(),
            }).ToList<JournalSriov?>(),
            Nodes = _nodes.Count == 0 ? null : _nodes.Select(n => new JournalNode
            {
                Path = n.Path, OriginalUid = n.Uid, OriginalGid = n.Gid, OriginalMode = n.Mode, For = n.For.Select(a => a.ToString()).ToList<string?>(),
            }).ToList<JournalNode?>(),
            Consoles = _consoles.Count == 0 ? null : _consoles.Select(c => new JournalConsole
            {
                Kind = c.Hold.Kind, Name = c.Hold.Name, Driver = c.Hold.Driver, For = c.For.Select(a => a.ToString()).ToList<string?>(),
            }).ToList<JournalConsole?>(),
            ResetMethods = _resetMethods.Count == 0 ? null : _resetMethods.Select(r => new JournalResetMethod { Function = r.Function.ToString(), Original = r.Original }).ToList<JournalResetMethod?>(),
            Roms = _roms.Count == 0 ? null : _roms.Select(a => a.ToString()).ToList<string?>(),
        };
        AtomicFile.Write(path, JsonSerializer.SerializeToUtf8Bytes(file, JournalJson.Default.JournalFile), UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }
}

// The journal's file format (version 1), written and read by System.Text.Json's source generator (no reflection in
// the static binary). Field names are those of the first release, which wrote them by hand: its journals still load.
internal sealed class JournalFile
{
    public int? Version { get; set; }
    public List<JournalFunction?>? Functions { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<JournalParameter?>? Parameters { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<JournalSriov?>? Sriov { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<JournalNode?>? Nodes { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<JournalConsole?>? Consoles { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<JournalResetMethod?>? ResetMethods { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<string?>? Roms { get; set; }
}

internal sealed class JournalConsole
{
    public string? Kind { get; set; }
    public string? Name { get; set; }
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Driver { get; set; }
    public List<string?>? For { get; set; }
}

internal sealed class JournalResetMethod
{
    public string? Function { get; set; }
    public string? Original { get; set; }
}

internal sealed class JournalNode
{
    public string? Path { get; set; }
    public int? OriginalUid { get; set; }
    public int? OriginalGid { get; set; }
    public int? OriginalMode { get; set; }
    public List<string?>? For { get; set; }
}

// Every release wrote all four, null or not: one missing is damage, never "no driver" (restore must not guess).
internal sealed class JournalFunction
{
    [JsonRequired] public string? Address { get; set; }
    [JsonRequired] public string? Driver { get; set; }
    [JsonRequired] public string? DriverOverride { get; set; }
    [JsonRequired] public int? Group { get; set; }
}

internal sealed class JournalParameter
{
    public string? Path { get; set; }
    public string? Original { get; set; }
    public List<string?>? For { get; set; }
}

internal sealed class JournalSriov
{
    public string? Pf { get; set; }
    public int? OriginalNumvfs { get; set; }
    public string? OriginalAutoprobe { get; set; }
    public List<string?>? Created { get; set; }
}

// Unknown fields are refused (see StateFile.Parse): a field a newer passthru adds must not be lost on our next save.
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(JournalFile))]
internal sealed partial class JournalJson : JsonSerializerContext;

/// <summary>A module parameter as it was before Passthru changed it, and the functions it was changed for.</summary>
public sealed record ParameterState(string Path, string Original, IReadOnlyList<PciAddress> For);

/// <summary>
/// A physical function whose number of VFs Passthru changed: the count it had (restore puts it back, which removes the
/// VFs Passthru created), sriov_drivers_autoprobe's value when Passthru changed it (null: left alone), and the VFs
/// the change created (predicted from the PF's offset and stride before they exist).
/// </summary>
public sealed record SriovState(PciAddress Pf, int OriginalCount, string? OriginalAutoprobe, IReadOnlyList<PciAddress> Created);

/// <summary>
/// A vfio group node (dev/vfio/N) Passthru handed to a guest's unprivileged QEMU user: the owner and mode it had (put
/// back when no guest holds the group any more), and the functions it was handed over for.
/// </summary>
public sealed record NodeState(string Path, int Uid, int Gid, int Mode, IReadOnlyList<PciAddress> For)
{
    public static bool IsVfioGroupNode(string path) =>
        path.StartsWith("dev/vfio/", StringComparison.Ordinal) && path.Length > 9 && path.Length <= 16 && path[9..].All(char.IsAsciiDigit);

    /// <summary>The IOMMU group the node is for.</summary>
    public int Group => int.Parse(Path[9..], System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>A part of the host's console Passthru released (--release-console), and the functions it was released for.</summary>
public sealed record ConsoleState(ConsoleHold Hold, IReadOnlyList<PciAddress> For);

/// <summary>
/// An exclusive lock on the state directory, so that two Passthru processes never interleave writes to devices or
/// the journal. The kernel drops it when the process dies, kill -9 included.
/// </summary>
public sealed class StateLock : IDisposable
{
    private readonly SafeFileHandle _lock;

    private StateLock(SafeFileHandle handle) => _lock = handle;

    public static StateLock Acquire(string directory, TimeSpan wait)
    {
        System.IO.Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "lock");
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            try
            {
                if (NativeFiles.TryLock(path) is { } handle) return new StateLock(handle);
                if (DateTime.UtcNow >= deadline)
                    throw new UserError($"another passthru is changing devices (lock {path} held for over {wait.TotalSeconds:0} s): wait for it to finish");
                Thread.Sleep(100);
            }
            catch (IOException e)
            {
                throw new UserError($"cannot take the lock {path}: {e.Message}");
            }
        }
    }

    public void Dispose() => _lock.Dispose();
}
