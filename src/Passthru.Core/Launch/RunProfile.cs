using Tomlyn;
using Tomlyn.Model;
using Tomlyn.Serialization;

namespace Passthru.Launch;

/// <summary>
/// A TOML profile holding run options, so `passthru run -f barrelfish.toml` repeats a setup. Keys are the long
/// option names without dashes' prefix (memory = 2048, devices = ["83:00.0,rombar=0"]); relative paths are taken
/// from the profile's directory; an unknown key is an error that names it.
/// </summary>
public static class RunProfile
{
    private static readonly string[] Keys =
    [
        "menu", "build-dir", "kernel", "initrd", "append", "disks", "cdrom", "memory", "cpus", "machine", "accel", "net", "qemu",
        "devices", "group", "all-functions", "release-console", "display", "keep-bound", "allow-unsafe-interrupts", "extra-args", "serial-log", "expect", "timeout", "name",
        "script", "junit", "quiet",
    ];

    public static RunOptions Load(string path)
    {
        var text = Passthru.Host.InputFile.ReadText("--profile", Passthru.Host.InputFile.FullPath("--profile", path));
        TomlTable table;
        try { table = TomlSerializer.Deserialize(text, ProfileTomlContext.Default.TomlTable) ?? new TomlTable(); }
        catch (Exception e) when (e is not UserError)
        {
            throw new UserError($"{path}: not valid TOML: {Shown.Value(TomlReason(e.Message))}", ExitCodes.Usage);
        }
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        foreach (var key in table.Keys)
            if (!Keys.Contains(key))
                throw new UserError($"{path}: unknown key '{Shown.Value(key)}' (known: {string.Join(", ", Keys)})", ExitCodes.Usage);

        string? Text(string key) => table.TryGetValue(key, out var v)
            ? v as string ?? throw new UserError($"{path}: '{key}' must be a string", ExitCodes.Usage) : null;
        string? FilePath(string key) => Text(key) is string p ? Full(key, p) : null;
        string Full(string key, string p) => p.Length == 0 || p.Contains('\0')
            ? throw new UserError($"{path}: '{key}' {(p.Length == 0 ? "is empty" : "holds a NUL character")}: name a file", ExitCodes.Usage)
            : Path.GetFullPath(p, dir);
        long? Number(string key) => table.TryGetValue(key, out var v)
            ? v as long? ?? throw new UserError($"{path}: '{key}' must be a whole number", ExitCodes.Usage) : null;
        bool Flag(string key) => table.TryGetValue(key, out var v) && (v as bool? ?? throw new UserError($"{path}: '{key}' must be true or false", ExitCodes.Usage));
        IReadOnlyList<string> List(string key) => table.TryGetValue(key, out var v)
            ? (v as TomlArray ?? throw new UserError($"{path}: '{key}' must be an array of strings", ExitCodes.Usage))
                .Select(x => x as string ?? throw new UserError($"{path}: '{key}' must be an array of strings", ExitCodes.Usage)).ToList()
            : [];

        // memory = 2048 (MiB) or memory = "2G", as on the command line.
        int? Memory() => table.TryGetValue("memory", out var v) ? v switch
        {
            long n => n is > 0 and <= int.MaxValue ? (int)n : throw new UserError($"{path}: 'memory' {n} is out of range", ExitCodes.Usage),
            string s => MemorySize.ParseMiB(s, $"{path}: memory"),
            _ => throw new UserError($"{path}: 'memory' must be MiB (2048) or a size (\"2G\")", ExitCodes.Usage),
        } : null;
        var defaults = new RunOptions();
        return new RunOptions
        {
            Menu = FilePath("menu"),
            BuildDir = FilePath("build-dir"),
            Kernel = FilePath("kernel"),
            Initrd = FilePath("initrd"),
            Append = Text("append"),
            Disks = List("disks").Select(d => Full("disks", d)).ToList(),
            Cdrom = FilePath("cdrom"),
            MemoryMiB = Memory() ?? defaults.MemoryMiB,
            Cpus = Number("cpus") is long c ? (c is > 0 and <= 1024 ? (int)c : throw new UserError($"{path}: 'cpus' must be 1 to 1024", ExitCodes.Usage)) : defaults.Cpus,
            Machine = Text("machine") ?? defaults.Machine,
            Accel = Text("accel") is string a ? ParseAccel(a, path) : defaults.Accel,
            Net = Text("net") is string n ? GuestNetwork.Parse(n, $"{path}: net") : null,
            Qemu = FilePath("qemu"),
            Devices = List("devices").Select(PassthroughDevice.Parse).ToList(),
            WholeGroup = Flag("group"),
            AllFunctions = Flag("all-functions"),
            ReleaseConsole = Flag("release-console"),
            Display = Text("display") is string display ? ParseDisplay(display, $"{path}: display") : null,
            KeepBound = Flag("keep-bound"),
            AllowUnsafeInterrupts = Flag("allow-unsafe-interrupts"),
            ExtraArgs = List("extra-args"),
            SerialLog = FilePath("serial-log"),
            Expect = Text("expect"),
            TimeoutSeconds = Number("timeout") is long t ? (t is > 0 and <= int.MaxValue ? (int)t : throw new UserError($"{path}: 'timeout' must be a positive number of seconds", ExitCodes.Usage)) : null,
            Name = Text("name"),
            Script = FilePath("script"),
            Junit = FilePath("junit"),
            Quiet = Flag("quiet"),
        };
    }

    /// <summary>
    /// The parser's own words, without the library's: Tomlyn wraps them in "Exception while trying to convert ... using
    /// converter 'Tomlyn...'. Reason: (1,1) : error : ...".
    /// </summary>
    private static string TomlReason(string message)
    {
        var text = message.Split('\n')[0];
        int reason = text.IndexOf("Reason: ", StringComparison.Ordinal);
        if (reason >= 0) text = text[(reason + "Reason: ".Length)..];
        var m = System.Text.RegularExpressions.Regex.Match(text, @"^\((\d+),(\d+)\)\s*:\s*error\s*:\s*(.*)$");
        return m.Success ? $"line {m.Groups[1].Value}, column {m.Groups[2].Value}: {m.Groups[3].Value}" : text;
    }

    /// <summary>QEMU's -vga types (qemu-system-x86_64 -vga help, QEMU 7.2).</summary>
    public static readonly string[] DisplayTypes = ["none", "std", "cirrus", "vmware", "qxl", "virtio"];

    public static string ParseDisplay(string text, string where) =>
        DisplayTypes.Contains(text) ? text : throw new UserError($"{where} '{Shown.Value(text)}': use one of {string.Join(", ", DisplayTypes)}", ExitCodes.Usage);

    /// <summary>What ParseAccel accepts, for completion and the man page.</summary>
    public static readonly string[] AccelNames = ["kvm", "tcg", "auto"];

    public static Accel ParseAccel(string text, string where) => text switch
    {
        "kvm" => Accel.Kvm,
        "tcg" => Accel.Tcg,
        "auto" => Accel.Auto,
        _ => throw new UserError($"{where}: accel '{Shown.Value(text)}' is not kvm, tcg or auto", ExitCodes.Usage),
    };
}

/// <summary>Source-generated TOML metadata: the profile is read as an untyped table, without reflection (NativeAOT).</summary>
[TomlSerializable(typeof(TomlTable))]
internal partial class ProfileTomlContext : TomlSerializerContext;
