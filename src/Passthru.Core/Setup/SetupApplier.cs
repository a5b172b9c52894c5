using Passthru.Binding;
using Passthru.Host;

namespace Passthru.Setup;

/// <summary>What an apply or undo did, for the CLI to report.</summary>
public sealed record SetupOutcome(IReadOnlyList<string> Lines);

/// <summary>
/// Applies a <see cref="SetupPlan"/> and undoes it. Apply: stage every file beside its target (nothing changes if
/// one cannot be written), back up the originals and write the record, then rename the staged files into place,
/// then run the commands. Undo: check every recorded file first, then restore, then run the undo commands.
/// Commands run only when the host root is "/"; against a tree they are listed. Both hold the state lock that bind,
/// run and the others take (in <paramref name="stateDir"/>, by default /run/passthru under the host root), waiting
/// for it as they do.
/// </summary>
public sealed class SetupApplier(HostRoot host, bool isRoot, Func<PlannedCommand, (int ExitCode, string Error)>? runner = null, string? stateDir = null)
{
    private readonly Func<PlannedCommand, (int ExitCode, string Error)>? _runner = runner ?? (host.IsLive ? RunOnHost : null);
    private readonly string _stateDir = stateDir ?? Journal.DefaultDirectory(host);

    private void RequireRoot(string what)
    {
        if (host.IsLive && !isRoot)
            throw new UserError($"{what} changes the boot configuration of this host: run it as root (sudo passthru setup ...); nothing was changed");
    }

    public SetupOutcome Apply(SetupPlan plan)
    {
        RequireRoot("passthru setup --apply");
        if (plan.IsEmpty) return new(["Nothing to change: the boot configuration already has everything passthru setup adds."]);
        using var held = Lock();
        var record = SetupJournal.Load(host) ?? new SetupRecord { Applied = Now() };
        var lines = new List<string>();

        foreach (var f in plan.Files)
        {
            // A rename would replace a link with a file, and its target may lie outside the host root: refuse.
            if (host.ReadLink(f.Path) is { } target)
                throw new UserError($"{host.Path(f.Path)} is a symbolic link (to {target}): edit the file it points to by hand, or replace the link with a copy and run passthru setup again; nothing was changed");
            // Planned before the lock was taken: the files must still be what the plan was made from.
            if (SetupFiles.Sha256(host, f.Path) != (f.Before is null ? null : SetupFiles.Sha256(SetupFiles.Bytes(f.Before))))
                throw new UserError($"{host.Path(f.Path)} changed while passthru setup was planning: run it again; nothing was changed");
        }

        // 1. Stage: every new file written and fsynced beside its target. Any failure: remove what was staged.
        var staged = new List<(FileChange File, string Temp)>();
        var madeDirs = new List<string>();
        try
        {
            foreach (var f in plan.Files)
            {
                madeDirs.AddRange(MakeParents(f.Path));
                var mode = f.Created ? SetupFiles.ConfigMode : SetupFiles.Mode(host, f.Path);
                staged.Add((f, SetupFiles.Stage(host, f.Path, SetupFiles.Bytes(f.After), mode)));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Discard(staged, madeDirs);
            var failed = plan.Files[staged.Count];
            throw new UserError($"cannot write {host.Path(failed.Path)} ({Reason(e)}): nothing was changed");
        }

        // 2. Back up originals not yet backed up, and record everything before the first rename: a crash after this
        //    point leaves a record that undo can use.
        var previous = SetupJournal.Load(host);
        try
        {
            madeDirs.AddRange(MakeParents(SetupJournal.RecordFile));
            foreach (var (f, _) in staged)
            {
                var entry = record.Files.FirstOrDefault(r => r.Path == f.Path);
                if (entry is null)
                {
                    entry = new SetupFileRecord { Path = f.Path, Created = f.Created };
                    if (!f.Created)
                    {
                        var original = SetupFiles.Bytes(f.Before!);
                        entry.Backup = SetupJournal.BackupPath(f.Path);
                        entry.OriginalSha256 = SetupFiles.Sha256(original);
                        entry.OriginalMode = (int)SetupFiles.Mode(host, f.Path);
                        Directory.CreateDirectory(Path.GetDirectoryName(host.Path(entry.Backup))!);
                        SetupFiles.WriteAtomically(host, entry.Backup, original, SetupFiles.PrivateMode);
                    }
                    record.Files.Add(entry);
                }
                entry.WrittenSha256 = SetupFiles.Sha256(SetupFiles.Bytes(f.After));
            }
            record.CreatedDirectories.AddRange(madeDirs.Where(d => !record.CreatedDirectories.Contains(d)));
            foreach (var u in plan.UndoCommands)
                if (!record.UndoCommands.Any(x => x.SequenceEqual(u.Argv))) record.UndoCommands.Add([.. u.Argv]);
            record.Updated = Now();
            SetupJournal.Save(host, record);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Discard(staged, madeDirs);
            throw new UserError($"cannot record the setup in {host.Path(SetupJournal.StateDir)} ({Reason(e)}): nothing was changed");
        }

        // 3. Rename into place. A failure here puts back the files already renamed.
        var committed = new List<FileChange>();
        try
        {
            foreach (var (f, temp) in staged)
            {
                SetupFiles.Commit(temp, host, f.Path);
                committed.Add(f);
                var entry = record.Files.First(r => r.Path == f.Path);
                lines.Add(f.Created ? $"created {f.Path}" : $"changed {f.Path} (original kept in {entry.Backup})");
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            foreach (var f in committed)
            {
                if (f.Created) SetupFiles.Delete(host, f.Path);
                else SetupFiles.WriteAtomically(host, f.Path, SetupFiles.Bytes(f.Before!), SetupFiles.Mode(host, f.Path));
            }
            Discard(staged.Where(s => !committed.Contains(s.File)).ToList(), madeDirs);
            if (previous is null) SetupJournal.Remove(host); else SetupJournal.Save(host, previous);
            throw new UserError($"cannot replace {host.Path(staged[committed.Count].File.Path)} ({Reason(e)}): the files are back as they were");
        }

        // 4. Commands, in order; the first failure stops (the files stay written and recorded).
        foreach (var c in plan.Commands)
        {
            var entry = new SetupCommandRecord { Argv = [.. c.Argv], At = Now() };
            record.Commands.Add(entry);
            if (_runner is null)
            {
                lines.Add($"not run (the host root is not /): {c.Display}");
                continue;
            }
            var (code, error) = _runner(c);
            entry.Ran = true;
            entry.ExitCode = code;
            SetupJournal.Save(host, record);
            if (code != 0)
                throw new UserError($"`{c.Display}` failed (exit {code}{(error.Length > 0 ? ": " + error : "")}): the files are written and recorded; fix that and run it by hand, or undo with passthru setup --undo");
            lines.Add($"ran {c.Display}");
        }
        SetupJournal.Save(host, record);
        lines.Add($"recorded in {SetupJournal.RecordFile}: passthru setup --undo puts everything back");
        return new(lines);
    }

    public SetupOutcome Undo()
    {
        RequireRoot("passthru setup --undo");
        using var held = Lock();
        var record = SetupJournal.Load(host);
        if (record is null) return new(["Nothing to undo: passthru setup has not changed this host (no " + SetupJournal.RecordFile + ")."]);

        // Check everything before changing anything.
        var restore = new List<SetupFileRecord>();
        foreach (var f in record.Files)
        {
            var current = SetupFiles.Sha256(host, f.Path);
            if (current == f.OriginalSha256) continue; // already the original (or, for a created file, already gone)
            if (current != f.WrittenSha256)
                throw new UserError($"{host.Path(f.Path)} changed since passthru setup wrote it: "
                    + (f.Created ? "delete it by hand" : $"its original is {host.Path(f.Backup!)}; put back what you need by hand")
                    + ", then run passthru setup --undo again; nothing was changed");
            if (!f.Created && SetupFiles.Sha256(host, f.Backup!) != f.OriginalSha256)
                throw new UserError($"the backup {host.Path(f.Backup!)} is missing or damaged: restore {host.Path(f.Path)} by hand; nothing was changed");
            restore.Add(f);
        }

        var lines = new List<string>();
        foreach (var f in restore)
        {
            if (f.Created)
            {
                SetupFiles.Delete(host, f.Path);
                lines.Add($"removed {f.Path}");
            }
            else
            {
                SetupFiles.WriteAtomically(host, f.Path, File.ReadAllBytes(host.Path(f.Backup!)), (UnixFileMode)f.OriginalMode);
                lines.Add($"restored {f.Path}");
            }
        }
        foreach (var argv in record.UndoCommands)
        {
            var c = new PlannedCommand(argv, "");
            if (_runner is null) { lines.Add($"not run (the host root is not /): {c.Display}"); continue; }
            var (code, error) = _runner(c);
            if (code != 0)
                throw new UserError($"the files are restored, but `{c.Display}` failed (exit {code}{(error.Length > 0 ? ": " + error : "")}): run it by hand before rebooting");
            lines.Add($"ran {c.Display}");
        }
        SetupJournal.Remove(host);
        // Directories setup created (etc/modprobe.d on a minimal host, var/lib/passthru), innermost first, if empty.
        foreach (var dir in record.CreatedDirectories.OrderByDescending(d => d.Length))
            if (host.DirectoryExists(dir) && Directory.GetFileSystemEntries(host.Path(dir)).Length == 0)
                Directory.Delete(host.Path(dir));
        return new(lines);
    }

    /// <summary>How long setup waits for another passthru command to finish, as bind does.</summary>
    public static readonly TimeSpan LockWait = TimeSpan.FromSeconds(30);

    private StateLock Lock() => StateLock.Acquire(_stateDir, LockWait);

    /// <summary>Creates the missing parent directories of a root-relative path; returns those it created, outermost first.</summary>
    private List<string> MakeParents(string relative)
    {
        var made = new List<string>();
        var parts = relative.Split('/');
        for (int i = 1; i < parts.Length; i++)
        {
            var dir = string.Join('/', parts[..i]);
            if (host.DirectoryExists(dir)) continue;
            Directory.CreateDirectory(host.Path(dir));
            made.Add(dir);
        }
        return made;
    }

    private void Discard(IEnumerable<(FileChange File, string Temp)> staged, List<string> madeDirs)
    {
        foreach (var (_, temp) in staged) SetupFiles.Discard(temp);
        foreach (var dir in Enumerable.Reverse(madeDirs))
            if (host.DirectoryExists(dir) && Directory.GetFileSystemEntries(host.Path(dir)).Length == 0) Directory.Delete(host.Path(dir));
    }

    private static string Reason(Exception e) => Shown.Error(e).TrimEnd('.');

    private static string Now() => DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ");

    private static (int, string) RunOnHost(PlannedCommand c)
    {
        var program = Programs.Find(HostRoot.Live, c.Argv[0]);
        if (program is null) return (127, $"{c.Argv[0]} not found");
        var result = Programs.Run(program, c.Argv.Skip(1), TimeSpan.FromMinutes(10));
        if (result is null) return (-1, "could not be started or took longer than 10 minutes");
        var last = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "";
        return (result.ExitCode, last);
    }
}
