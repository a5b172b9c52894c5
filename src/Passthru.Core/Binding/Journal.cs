using System.Text.Json;
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
            using var document = StateFile.Document(bytes);
            var file = StateObject.Root(document, "version", "functions", "parameters", "sriov", "nodes", "consoles", "reset_methods", "roms");
            var version = file.Int("version");
            // A newer format is refused whole, never read in part and saved back without what this passthru did not know.
            if (version is not 1) throw new StateDamage(version is null ? "no \"version\"" : $"version {version}, which this passthru does not know (a newer one wrote it?)");
            // Every release wrote all four fields of a function, null or not: one missing is damage, never "no driver"
            // (restore must not guess).
            var functions = Each(file.Objects("functions", false, "address", "driver", "driver_override", "group") ?? throw new StateDamage("no \"functions\" list"), "functions", (f, at) =>
            {
                var (address, driver, driverOverride, group) = (f.String("address", required: true), f.String("driver", required: true),
                    f.String("driver_override", required: true), f.Int("group", required: true));
                if (group is < 0) throw new StateDamage($"{at}.group is {group}, not an IOMMU group number");
                return new FunctionState(Address(address, $"{at}.address"), StateFile.DriverName(driver, $"{at}.driver"), StateFile.OneLine(driverOverride, $"{at}.driver_override"), group);
            });
            var parameters = Each(file.Objects("parameters", false, "path", "original", "for"), "parameters", (p, at) =>
            {
                var path = p.String("path");
                // The journal names the file restore writes as root: only a module parameter, never a path elsewhere.
                if (path is null || !StateFile.IsModuleParameter(path))
                    throw new StateDamage($"{at}.path '{Shown.Value(path ?? "null")}' is not a module parameter (sys/module/NAME/parameters/NAME)");
                return new ParameterState(path, StateFile.OneLine(p.String("original"), $"{at}.original") ?? throw new StateDamage($"{at}.original is missing"),
                    Addresses(p.Strings("for"), $"{at}.for"));
            });
            // Journals written before SR-IOV support have no "sriov" list.
            var sriov = Each(file.Objects("sriov", false, "pf", "original_numvfs", "original_autoprobe", "created"), "sriov", (x, at) =>
            {
                if (x.Int("original_numvfs") is not int count || count < 0) throw new StateDamage($"{at}.original_numvfs is missing or negative");
                return new SriovState(Address(x.String("pf"), $"{at}.pf"), count, StateFile.OneLine(x.String("original_autoprobe"), $"{at}.original_autoprobe"),
                    Addresses(x.Strings("created"), $"{at}.created"));
            });
            // Journals written before least privilege have no "nodes" list.
            var nodes = Each(file.Objects("nodes", false, "path", "original_uid", "original_gid", "original_mode", "for"), "nodes", (n, at) =>
            {
                var path = n.String("path");
                // The journal names the file restore hands back as root: only a vfio group node, never a path elsewhere.
                if (path is null || !NodeState.IsVfioGroupNode(path))
                    throw new StateDamage($"{at}.path '{Shown.Value(path ?? "null")}' is not a vfio group node (dev/vfio/N)");
                if (n.Int("original_uid") is not int uid || uid < 0 || n.Int("original_gid") is not int gid || gid < 0)
                    throw new StateDamage($"{at}.original_uid or original_gid is missing or negative");
                if (n.Int("original_mode") is not int mode || mode is < 0 or > 0xFFF) throw new StateDamage($"{at}.original_mode is missing or not a mode");
                return new NodeState(path, uid, gid, mode, Addresses(n.Strings("for"), $"{at}.for"));
            });
            // Journals written before GPU support have no "consoles" list.
            var consoles = Each(file.Objects("consoles", false, "kind", "name", "driver", "for"), "consoles", (c, at) =>
            {
                var (kind, name, driver) = (c.String("kind"), c.String("name"), c.String("driver"));
                var hold = new ConsoleHold(kind ?? "", name ?? "", driver);
                // The journal names what restore writes to as root: only a vtconsole or a firmware framebuffer's driver.
                if (!hold.IsValid)
                    throw new StateDamage($"{at} ('{Shown.Value(kind ?? "null")}' '{Shown.Value(name ?? "null")}' '{Shown.Value(driver ?? "null")}') is not a vtconsole or a firmware framebuffer and its driver");
                return new ConsoleState(hold, Addresses(c.Strings("for"), $"{at}.for"));
            });
            // Journals written before reset methods have no "reset_methods" list.
            var resets = Each(file.Objects("reset_methods", false, "function", "original"), "reset_methods", (r, at) =>
            {
                var original = r.String("original");
                // The journal names what restore writes as root: the path is made from the address, the value only method names.
                if (original is null || !ResetMethodState.IsMethodList(original))
                    throw new StateDamage($"{at}.original '{Shown.Value(original ?? "null")}' is not a list of reset methods");
                return new ResetMethodState(Address(r.String("function"), $"{at}.function"), original);
            });
            var reset = new HashSet<PciAddress>();
            foreach (var r in resets)
                if (!reset.Add(r.Function)) throw new StateDamage("reset_methods names a function twice");
            var journal = new Journal(directory, functions, parameters, sriov, nodes, consoles);
            journal._resetMethods.AddRange(resets);
            // Journals written before `passthru rom` have no "roms" list.
            journal._roms.AddRange(Addresses(file.Strings("roms"), "roms"));
            return journal;
        }
        catch (StateDamage e)
        {
            throw Damaged(path, e.Message);
        }
    }

    private static PciAddress Address(string? text, string field) =>
        text is not null && PciAddress.TryParse(text, out var a) ? a : throw new StateDamage($"{field} '{Shown.Value(text ?? "null")}' is not a PCI address");

    // Loops, not LINQ: in the static binary each Select over a new element type is a generic virtual call the runtime
    // resolves on first use, a few of them a measurable share of restore's start in the virtual host.
    private static List<T> Each<T>(List<StateObject?>? items, string list, Func<StateObject, string, T> read)
    {
        int count = items?.Count ?? 0;
        var result = new List<T>(count);
        for (int i = 0; i < count; i++)
        {
            var at = $"{list}[{i}]";
            result.Add(read(items![i] ?? throw new StateDamage($"{at} is null"), at));
        }
        return result;
    }

    private static List<PciAddress> Addresses(List<string?>? texts, string field)
    {
        int count = texts?.Count ?? 0;
        var result = new List<PciAddress>(count);
        for (int i = 0; i < count; i++) result.Add(Address(texts![i], $"{field}[{i}]"));
        return result;
    }

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
        AtomicFile.Write(path, StateJsonWriter.Write(Write), UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    // The format (version 1) as the first release wrote it, field for field, in the same order and layout; a list
    // that is empty is left out (journals from before it was known load as if it were empty).
    private void Write(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteNumber("version", 1);
        json.WriteStartArray("functions");
        foreach (var f in _functions)
        {
            json.WriteStartObject();
            json.WriteString("address", f.Address.ToString());
            json.WriteString("driver", f.Driver);
            json.WriteString("driver_override", f.DriverOverride);
            json.NumberOrNull("group", f.Group);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        List("parameters", _parameters, p =>
        {
            json.WriteString("path", p.Path);
            json.WriteString("original", p.Original);
            json.Strings("for", p.For.Select(a => a.ToString()));
        });
        List("sriov", _sriov, x =>
        {
            json.WriteString("pf", x.Pf.ToString());
            json.WriteNumber("original_numvfs", x.OriginalCount);
            json.WriteString("original_autoprobe", x.OriginalAutoprobe);
            json.Strings("created", x.Created.Select(a => a.ToString()));
        });
        List("nodes", _nodes, n =>
        {
            json.WriteString("path", n.Path);
            json.WriteNumber("original_uid", n.Uid);
            json.WriteNumber("original_gid", n.Gid);
            json.WriteNumber("original_mode", n.Mode);
            json.Strings("for", n.For.Select(a => a.ToString()));
        });
        List("consoles", _consoles, c =>
        {
            json.WriteString("kind", c.Hold.Kind);
            json.WriteString("name", c.Hold.Name);
            if (c.Hold.Driver is not null) json.WriteString("driver", c.Hold.Driver);
            json.Strings("for", c.For.Select(a => a.ToString()));
        });
        List("reset_methods", _resetMethods, r =>
        {
            json.WriteString("function", r.Function.ToString());
            json.WriteString("original", r.Original);
        });
        if (_roms.Count > 0) json.Strings("roms", _roms.Select(a => a.ToString()));
        json.WriteEndObject();

        void List<T>(string name, List<T> items, Action<T> fields)
        {
            if (items.Count == 0) return;
            json.WriteStartArray(name);
            foreach (var item in items)
            {
                json.WriteStartObject();
                fields(item);
                json.WriteEndObject();
            }
            json.WriteEndArray();
        }
    }
}

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
        DateTime? deadline = null; // the clock is read only when the lock is held by another (see BindApplier.WaitFor)
        while (true)
        {
            try
            {
                if (NativeFiles.TryLock(path) is { } handle) return new StateLock(handle);
                deadline ??= DateTime.UtcNow + wait;
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
