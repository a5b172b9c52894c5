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

    public string Directory { get; }
    public IReadOnlyList<FunctionState> Functions => _functions;
    /// <summary>Module parameters Passthru changed (allow_unsafe_interrupts), with the value to put back.</summary>
    public IReadOnlyList<ParameterState> Parameters => _parameters;
    /// <summary>Physical functions whose VF count Passthru changed, with the count (and VF autoprobe) to put back.</summary>
    public IReadOnlyList<SriovState> Sriov => _sriov;

    /// <summary>Nothing is left to give back.</summary>
    public bool IsEmpty => _functions.Count == 0 && _parameters.Count == 0 && _sriov.Count == 0;

    private Journal(string directory, List<FunctionState> functions, List<ParameterState> parameters, List<SriovState> sriov)
    {
        Directory = directory; _functions = functions; _parameters = parameters; _sriov = sriov;
    }

    public static string DefaultDirectory(HostRoot host) => host.Path("run/passthru");

    public static Journal Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) return new Journal(directory, [], [], []);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var list = new List<FunctionState>();
            foreach (var f in doc.RootElement.GetProperty("functions").EnumerateArray())
            {
                var address = PciAddress.Parse(f.GetProperty("address").GetString()!);
                list.Add(new FunctionState(address, f.GetProperty("driver").GetString(), f.GetProperty("driver_override").GetString(),
                    f.GetProperty("group").ValueKind == JsonValueKind.Number ? f.GetProperty("group").GetInt32() : null));
            }
            var parameters = new List<ParameterState>();
            if (doc.RootElement.TryGetProperty("parameters", out var ps))
                foreach (var p in ps.EnumerateArray())
                    parameters.Add(new ParameterState(p.GetProperty("path").GetString()!, p.GetProperty("original").GetString()!,
                        p.GetProperty("for").EnumerateArray().Select(a => PciAddress.Parse(a.GetString()!)).ToList()));
            // Journals written before SR-IOV support have no "sriov" array.
            var sriov = new List<SriovState>();
            if (doc.RootElement.TryGetProperty("sriov", out var ss))
                foreach (var x in ss.EnumerateArray())
                    sriov.Add(new SriovState(PciAddress.Parse(x.GetProperty("pf").GetString()!), x.GetProperty("original_numvfs").GetInt32(),
                        x.GetProperty("original_autoprobe").GetString(),
                        x.GetProperty("created").EnumerateArray().Select(a => PciAddress.Parse(a.GetString()!)).ToList()));
            return new Journal(directory, list, parameters, sriov);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or UserError)
        {
            throw new UserError($"the journal {path} is damaged ({e.Message.Split('\n')[0]}): fix or remove it; it records the drivers to give devices back to");
        }
    }

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

    public void Save()
    {
        System.IO.Directory.CreateDirectory(Directory);
        var path = Path.Combine(Directory, FileName);
        if (IsEmpty) { File.Delete(path); return; }
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
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
                if (f.Group is int g) json.WriteNumber("group", g); else json.WriteNull("group");
                json.WriteEndObject();
            }
            json.WriteEndArray();
            if (_parameters.Count > 0)
            {
                json.WriteStartArray("parameters");
                foreach (var p in _parameters)
                {
                    json.WriteStartObject();
                    json.WriteString("path", p.Path);
                    json.WriteString("original", p.Original);
                    json.WriteStartArray("for");
                    foreach (var a in p.For) json.WriteStringValue(a.ToString());
                    json.WriteEndArray();
                    json.WriteEndObject();
                }
                json.WriteEndArray();
            }
            if (_sriov.Count > 0)
            {
                json.WriteStartArray("sriov");
                foreach (var x in _sriov)
                {
                    json.WriteStartObject();
                    json.WriteString("pf", x.Pf.ToString());
                    json.WriteNumber("original_numvfs", x.OriginalCount);
                    json.WriteString("original_autoprobe", x.OriginalAutoprobe);
                    json.WriteStartArray("created");
                    foreach (var a in x.Created) json.WriteStringValue(a.ToString());
                    json.WriteEndArray();
                    json.WriteEndObject();
                }
                json.WriteEndArray();
            }
            json.WriteEndObject();
        }
        AtomicFile.Write(path, buffer.GetBuffer().AsSpan(0, (int)buffer.Length), UnixFileMode.UserRead | UnixFileMode.UserWrite);
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
