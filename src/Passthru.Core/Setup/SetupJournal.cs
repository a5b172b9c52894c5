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
    public int Schema { get; set; } = 1;
    public string Kind { get; set; } = "setup";
    public string Applied { get; set; } = "";
    public string Updated { get; set; } = "";
    public List<SetupFileRecord> Files { get; set; } = [];
    public List<string> CreatedDirectories { get; set; } = [];
    public List<SetupCommandRecord> Commands { get; set; } = [];
    public List<List<string>> UndoCommands { get; set; } = [];
}

public sealed class SetupFileRecord
{
    /// <summary>Root-relative path of the file.</summary>
    public string Path { get; set; } = "";
    /// <summary>True when the file did not exist before: undo deletes it.</summary>
    public bool Created { get; set; }
    /// <summary>Root-relative path of the copy of the original bytes (null for a created file).</summary>
    public string? Backup { get; set; }
    public string? OriginalSha256 { get; set; }
    /// <summary>Unix mode of the original, restored with it.</summary>
    public int OriginalMode { get; set; }
    /// <summary>Hash of what Passthru wrote last: undo refuses to overwrite a file someone changed since.</summary>
    public string WrittenSha256 { get; set; } = "";
}

public sealed class SetupCommandRecord
{
    public List<string> Argv { get; set; } = [];
    /// <summary>False when the host root is not "/": commands are listed, not run, against a tree.</summary>
    public bool Ran { get; set; }
    public int? ExitCode { get; set; }
    public string At { get; set; } = "";
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
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
        if (!host.Exists(RecordFile)) return null;
        var text = host.ReadText(RecordFile) ?? throw new UserError($"cannot read {host.Path(RecordFile)}: run as root");
        try
        {
            var record = JsonSerializer.Deserialize(text, SetupJournalJson.Default.SetupRecord);
            if (record is { Schema: 1, Kind: "setup" }) return record;
        }
        catch (JsonException) { }
        throw new UserError($"{host.Path(RecordFile)} is not a passthru setup record: move it aside (its backups are in {host.Path(BackupDir)})");
    }

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
