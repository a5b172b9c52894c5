using System.Text.Json;
using System.Text.Json.Serialization;
using Passthru.Host;

namespace Passthru.Setup;

/// <summary>
/// What `setup --apply` changed, so `setup --undo` can put back exactly what was there: each file with its backup
/// and the hashes of the original and of what Passthru wrote, the directories it created, the commands it ran and
/// the commands that put the restored files into effect. Kept under var/lib (it must outlive the reboot that setup
/// asks for, unlike the bind journal's /run), 0600, written atomically.
/// </summary>
public sealed class SetupRecord
{
    [JsonRequired] public int Schema { get; set; } = 1;
    [JsonRequired] public string Kind { get; set; } = "setup";
    public string Applied { get; set; } = "";
    public string Updated { get; set; } = "";
    [JsonRequired] public List<SetupFileRecord> Files { get; set; } = [];
    [JsonRequired] public List<string> CreatedDirectories { get; set; } = [];
    [JsonRequired] public List<SetupCommandRecord> Commands { get; set; } = [];
    [JsonRequired] public List<List<string>> UndoCommands { get; set; } = [];
}

public sealed class SetupFileRecord
{
    /// <summary>Root-relative path of the file.</summary>
    [JsonRequired] public string Path { get; set; } = "";
    /// <summary>True when the file did not exist before: undo deletes it.</summary>
    [JsonRequired] public bool Created { get; set; }
    /// <summary>Root-relative path of the copy of the original bytes (null for a created file).</summary>
    public string? Backup { get; set; }
    public string? OriginalSha256 { get; set; }
    /// <summary>Unix mode of the original, restored with it.</summary>
    public int OriginalMode { get; set; }
    /// <summary>Hash of what Passthru wrote last: undo refuses to overwrite a file someone changed since.</summary>
    [JsonRequired] public string WrittenSha256 { get; set; } = "";
}

public sealed class SetupCommandRecord
{
    public List<string> Argv { get; set; } = [];
    /// <summary>False when the host root is not "/": commands are listed, not run, against a tree.</summary>
    public bool Ran { get; set; }
    public int? ExitCode { get; set; }
    public string At { get; set; } = "";
}

// What undo needs is required (a "files" list missing is damage, not "nothing to put back": undo would then drop the
// backups), and unknown fields are refused (see StateFile.Parse).
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(SetupRecord))]
internal sealed partial class SetupJournalJson : JsonSerializerContext;

/// <summary>The setup record's place in the state directory, beside its backups.</summary>
public static class SetupJournal
{
    public const string StateDir = "var/lib/passthru";
    public const string RecordFile = StateDir + "/setup.json";
    public const string BackupDir = StateDir + "/setup-backup";

    public static string BackupPath(string path) => BackupDir + "/" + path;

    public static SetupRecord? Load(HostRoot host)
    {
        var bytes = StateFile.Read(host.Path(RecordFile), "the setup record", $"its backups are in {host.Path(BackupDir)}");
        if (bytes is null) return null;
        string what;
        try
        {
            var record = StateFile.Parse(bytes, SetupJournalJson.Default.SetupRecord);
            if (record is { Schema: 1, Kind: "setup" }) { Check(record); return record; }
            what = record.Kind != "setup" ? $"kind '{Shown.Value(record.Kind ?? "null")}', not a passthru setup record"
                : $"schema {record.Schema}, which this passthru does not know (a newer one wrote it?)";
        }
        catch (StateDamage e) { what = e.Message; }
        throw new UserError($"the setup record {host.Path(RecordFile)} is damaged ({what}): move it aside (its backups are in {host.Path(BackupDir)})");
    }

    /// <summary>Programs whose commands setup records to put a boot configuration back (undo runs them as root).</summary>
    private static readonly HashSet<string> UndoPrograms =
        ["update-grub", "grub-mkconfig", "grub2-mkconfig", "kernel-install", "grubby", "update-initramfs", "dracut", "mkinitcpio"];

    /// <summary>
    /// Undo deletes, overwrites and runs what the record names, as root: every path must stay inside the root it was
    /// written for (relative, no "..", each backup where setup keeps backups), and every command be one setup plans.
    /// </summary>
    private static void Check(SetupRecord r)
    {
        if (r.Files is null || r.CreatedDirectories is null || r.UndoCommands is null || r.Commands is null)
            throw new StateDamage("a list is missing");
        foreach (var f in r.Files)
        {
            if (f is null || !IsConfined(f.Path)) throw new StateDamage($"a file path '{Shown.Value(f?.Path ?? "null")}' that leaves the root");
            if (!f.Created && f.Backup != BackupPath(f.Path)) throw new StateDamage($"the backup of {f.Path} is not {BackupPath(f.Path)}");
            if (f.WrittenSha256 is null) throw new StateDamage($"{f.Path} has no hash of what was written");
        }
        foreach (var d in r.CreatedDirectories)
            if (!IsConfined(d)) throw new StateDamage($"a directory '{Shown.Value(d ?? "null")}' that leaves the root");
        foreach (var argv in r.UndoCommands)
            if (argv is not { Count: > 0 } || argv.Any(a => a is null) || !UndoPrograms.Contains(argv[0]))
                throw new StateDamage($"an undo command '{Shown.Value(argv is null ? "null" : string.Join(' ', argv))}' that setup never plans");
    }

    private static bool IsConfined(string? path) =>
        path is { Length: > 0 and < 4096 } && path[0] != '/' && !path.Any(char.IsControl)
        && path.Split('/').All(part => part is { Length: > 0 } and not "." and not "..");

    public static void Save(HostRoot host, SetupRecord record)
    {
        SetupFiles.CreateDirectory(host.Path(StateDir), SetupFiles.PrivateMode | UnixFileMode.UserExecute);
        SetupFiles.WriteAtomically(host, RecordFile, JsonSerializer.SerializeToUtf8Bytes(record, SetupJournalJson.Default.SetupRecord), SetupFiles.PrivateMode);
    }

    public static void Remove(HostRoot host)
    {
        if (host.DirectoryExists(BackupDir)) Directory.Delete(host.Path(BackupDir), recursive: true);
        if (host.Exists(RecordFile)) SetupFiles.Delete(host, RecordFile);
        if (host.DirectoryExists(StateDir) && host.List(StateDir).Length == 0 && Directory.GetFileSystemEntries(host.Path(StateDir)).Length == 0)
            Directory.Delete(host.Path(StateDir));
    }
}
