using System.Text;
using Passthru.Binding;
using Passthru.Host;
using Passthru.Pci;
using Passthru.Setup;
using Passthru.Tests.Support;

namespace Passthru.Tests.Binding;

/// <summary>
/// Issue #25 item 2: Passthru's three state files (the bind journal, a running guest's record, setup's record) as a
/// crash, a full disk, another version or a hand edit can leave them, each read through the commands that act on it
/// (restore, guests, setup --undo) on a scratch copy of the virtual host's capture. Every file is first written by the
/// real writer, then damaged: cut at every byte, empty, another version, an unknown field, wrong types, a directory
/// or a symlink in its place. The safe answer, the same for all three (tests/README.md): one line naming the file and
/// what is wrong in it, exit 1, the file left as it is, and nothing on the host changed. A damaged journal is never
/// read in part (restore does not guess a driver it did not record), and the refusal names the functions on vfio-pci
/// that stay there until it is fixed. A field this passthru does not know is refused, not skipped: saving the file
/// again would drop what a newer passthru wrote there.
/// </summary>
public sealed class StateFileDamageTests : IDisposable
{
    private readonly string _tree = Repo.CopyCapture("vhost");
    private string StateDir => Path.Combine(_tree, "run/passthru");
    private string JournalPath => Path.Combine(StateDir, Journal.FileName);
    private string RecordPath => GuestRecords.PathOf(StateDir, "probe-1");
    private string SetupPath => Path.Combine(_tree, SetupJournal.RecordFile);
    private const string Nic = "0000:00:02.0", Nic2 = "0000:02:01.0";

    public void Dispose() => Directory.Delete(_tree, true);

    // ---- The real writers -------------------------------------------------------------------------------------------

    /// <summary>A journal as bind writes it: two NICs moved, allow_unsafe_interrupts changed for one.</summary>
    private byte[] SavedJournal()
    {
        var journal = Journal.Load(StateDir);
        journal.Record(new FunctionState(PciAddress.Parse(Nic), "e1000e", null, 2));
        journal.Record(new FunctionState(PciAddress.Parse(Nic2), "e1000", "", 8));
        journal.Record(new ParameterState("sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "N", [PciAddress.Parse(Nic)]));
        journal.Record(new ResetMethodState(PciAddress.Parse(Nic), "flr pm"));
        journal.Save();
        return File.ReadAllBytes(JournalPath);
    }

    /// <summary>A running guest's record as run writes it (its QEMU and run gone: `guests` would clean it up).</summary>
    private byte[] SavedRecord()
    {
        GuestRecords.Save(StateDir, new GuestRecord
        {
            Name = "probe-1", RunnerPid = 999999, QemuPid = 999998, Qmp = GuestRecords.SocketOf(StateDir, "probe-1"),
            Started = "2026-12-01T19:00:00Z", Machine = "q35", Ports = ["pt0", "pt1"],
            Devices = [new GuestDevice { Address = Nic, Id = "hostdev-0000-00-02-0", Port = "pt0" }],
            Bound = [Nic],
        });
        return File.ReadAllBytes(RecordPath);
    }

    /// <summary>setup's record as `setup --apply` writes it, with the file it changed and its backup.</summary>
    private byte[] SavedSetupRecord()
    {
        Write("etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n");
        Write("usr/sbin/update-grub", "");
        var r = CliRunner.Run("setup", "--root", _tree, "--apply");
        Assert.True(r.ExitCode == 0, r.Stderr);
        return File.ReadAllBytes(SetupPath);
    }

    private void Write(string relative, string text)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(_tree, relative))!);
        File.WriteAllText(Path.Combine(_tree, relative), text);
    }

    /// <summary>Every file of the host tree but the state files themselves, with its bytes: what a give-back or undo would change.</summary>
    private SortedDictionary<string, string> Host()
    {
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        // By hand, not recursing into symlinks: sysfs's links (driver, iommu_group, devices) make cycles.
        void Walk(DirectoryInfo dir)
        {
            foreach (var entry in dir.EnumerateFileSystemInfos())
            {
                var relative = Path.GetRelativePath(_tree, entry.FullName);
                if (relative.StartsWith("run/passthru", StringComparison.Ordinal) || relative == SetupJournal.RecordFile) continue;
                if (entry.LinkTarget is { } target) files[relative] = "-> " + target;
                else if (entry is DirectoryInfo d) { files[relative] = "dir"; Walk(d); }
                else files[relative] = Convert.ToHexString(File.ReadAllBytes(entry.FullName));
            }
        }
        Walk(new DirectoryInfo(_tree));
        return files;
    }

    private static void AssertOneLine(CliResult r, string start, string? contains = null)
    {
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line, got:\n{r.Stderr}");
        Assert.StartsWith("passthru: " + start, lines[0]);
        if (contains is not null) Assert.Contains(contains, lines[0]);
        Assert.Equal(1, r.ExitCode);
        Assert.Empty(r.Stdout);
    }

    // ---- Cut at every byte ------------------------------------------------------------------------------------------

    private static string Cut(int n) => n == 0 ? "it is empty" : $"it ends after {n} bytes, in the middle of its JSON (cut short?)";

    /// <summary>
    /// Every cut of <paramref name="whole"/> refused by <paramref name="load"/> (what every command that reads the file
    /// calls first) with the one line <paramref name="says"/>; the first, middle and last cut also through the command
    /// itself (one line on stderr, exit 1), with the file and the host left as they were.
    /// </summary>
    private void EveryCut(byte[] whole, string path, Action load, Func<int, string> says, params string[][] commands)
    {
        var host = Host();
        for (int n = 0; n < whole.Length; n++)
        {
            File.WriteAllBytes(path, whole[..n]);
            var e = Assert.Throws<UserError>(load);
            Assert.Equal(says(n), e.Message);
            if (n != 0 && n != whole.Length / 2 && n != whole.Length - 1) continue;
            foreach (var command in commands)
                AssertOneLine(CliRunner.Run(command), says(n));
            Assert.Equal(whole[..n], File.ReadAllBytes(path));
        }
        Assert.Equal(host, Host());
        File.WriteAllBytes(path, whole);
        load(); // the whole file is read: the cut ones failed for being cut
    }

    [Fact]
    public void A_journal_cut_at_any_byte_is_refused_in_one_line_and_nothing_is_given_back()
    {
        EveryCut(SavedJournal(), JournalPath, () => Journal.Load(StateDir),
            n => $"the journal {JournalPath} is damaged ({Cut(n)}): fix or remove it; it records the drivers to give devices back to",
            ["restore", "--root", _tree], ["unbind", Nic, "--root", _tree]);
    }

    [Fact]
    public void A_guest_record_cut_at_any_byte_is_refused_by_guests_and_restore_and_left_as_it_is()
    {
        // Unreadable, the record does not say which functions its guest holds: restore gives back nothing at all.
        SavedJournal();
        EveryCut(SavedRecord(), RecordPath, () => GuestRecords.Load(StateDir, "probe-1"),
            n => $"the guest record {RecordPath} is damaged ({Cut(n)}): remove it (passthru restore gives its devices back)",
            ["guests", "--root", _tree], ["restore", "--root", _tree]);
    }

    [Fact]
    public void A_setup_record_cut_at_any_byte_is_refused_by_undo_and_nothing_is_put_back()
    {
        var whole = SavedSetupRecord();
        var backups = Path.Combine(_tree, SetupJournal.BackupDir);
        EveryCut(whole, SetupPath, () => SetupJournal.Load(new HostRoot(_tree)),
            n => $"the setup record {SetupPath} is damaged ({Cut(n)}): move it aside (its backups are in {backups})",
            ["setup", "--root", _tree, "--undo"]);
        var undo = CliRunner.Run("setup", "--root", _tree, "--undo");
        Assert.True(undo.ExitCode == 0, undo.Stderr);
    }

    // ---- Other versions, unknown fields, wrong types ----------------------------------------------------------------

    /// <summary>A damage of a saved file: its JSON text edited, and what the one line must say about it.</summary>
    public sealed record Edit(string Name, Func<string, string> Apply, string Says)
    {
        public override string ToString() => Name;
    }

    private static Edit E(string name, string from, string to, string says) =>
        new(name, text => text.Contains(from, StringComparison.Ordinal) ? text.Replace(from, to) : throw new InvalidOperationException($"'{from}' not in the saved file"), says);

    private static Edit Rx(string name, string pattern, string to, string says) =>
        new(name, text => System.Text.RegularExpressions.Regex.IsMatch(text, pattern) ? System.Text.RegularExpressions.Regex.Replace(text, pattern, to) : throw new InvalidOperationException($"/{pattern}/ not in the saved file"), says);

    private static Edit Whole(string name, string content, string says) => new(name, _ => content, says);

    public static TheoryData<Edit> JournalEdits => new()
    {
        Whole("only blanks", " \n\t\n", "it holds only blanks"),
        Whole("null", "null", "it holds null"),
        Whole("a list", "[]", "a field missing, unknown to this passthru (a newer one wrote it?) or of the wrong type at $"),
        Whole("trailing garbage", "{\"version\": 1, \"functions\": []} x", "not valid JSON at line 1"),
        E("a newer version", "\"version\": 1", "\"version\": 2", "version 2, which this passthru does not know (a newer one wrote it?)"),
        E("no version", "\"version\": 1,", "", "no \"version\""),
        E("an unknown field at the top", "\"version\": 1,", "\"version\": 1, \"holds\": [\"0000:00:03.0\"],", "a field missing, unknown to this passthru (a newer one wrote it?) or of the wrong type at $.holds"),
        E("an unknown field in a function", "\"driver\": \"e1000e\",", "\"driver\": \"e1000e\", \"driver_module\": \"e1000e\",", "at $.functions[0].driver_module"),
        E("a missing driver", "\"driver\": \"e1000e\",", "", "at $.functions[0]"),
        E("a group that is a fraction", "\"group\": 2", "\"group\": 2.5", "at $.functions[0].group"),
        E("a driver that is a number", "\"driver\": \"e1000e\"", "\"driver\": 1000", "at $.functions[0].driver"),
        Whole("functions that are an object", "{\"version\": 1, \"functions\": {\"0\": 1}}", "at $.functions"),
        E("a version that is text", "\"version\": 1", "\"version\": \"1\"", "at $.version"),
        E("a driver that is a path", "\"driver\": \"e1000e\"", "\"driver\": \"../../../../tmp\"", "functions[0].driver '../../../../tmp' is not a driver name"),
        E("an address that is none", "\"address\": \"0000:00:02.0\"", "\"address\": \"00:02\"", "functions[0].address '00:02' is not a PCI address"),
        E("a parameter outside the module tree", "\"path\": \"sys/module", "\"path\": \"../sys/module", "is not a module parameter"),
        // restore writes a reset method list as root into the function's own reset_method: only method names, for a PCI address.
        E("reset methods that are a path", "\"original\": \"flr pm\"", "\"original\": \"../../tmp/x\"", "reset_methods[0].original '../../tmp/x' is not a list of reset methods"),
        E("reset methods on two lines", "\"original\": \"flr pm\"", "\"original\": \"flr\\npm\"", "is not a list of reset methods"),
        E("reset methods of no function", "\"function\": \"0000:00:02.0\"", "\"function\": \"sys/bus/pci\"", "reset_methods[0].function 'sys/bus/pci' is not a PCI address"),
    };

    [Theory]
    [MemberData(nameof(JournalEdits))]
    public void A_damaged_journal_is_one_line_saying_what_and_restore_gives_back_nothing(Edit edit)
    {
        var text = edit.Apply(Encoding.UTF8.GetString(SavedJournal()));
        File.WriteAllText(JournalPath, text);
        var host = Host();
        var r = CliRunner.Run("restore", "--root", _tree);
        AssertOneLine(r, $"the journal {JournalPath} is damaged (", edit.Says);
        Assert.Equal(text, File.ReadAllText(JournalPath));
        Assert.Equal(host, Host());
    }

    public static TheoryData<Edit> RecordEdits => new()
    {
        E("a newer version", "\"version\": 1", "\"version\": 2", "version 2, which this passthru does not know"),
        E("an unknown field", "\"machine\": \"q35\",", "\"machine\": \"q35\", \"vcpus\": 4,", "at $.vcpus"),
        E("an unknown field in a device", "\"attached\": false,", "\"attached\": false, \"rom\": \"off\",", "at $.devices[0].rom"),
        Rx("no bound list", ",\\s*\"bound\": \\[\\s*\"0000:00:02.0\"\\s*\\]", "", "at $"),
        Rx("no control socket", "\"qmp\": \"[^\"]*\",", "", "at $"),
        E("a pid that is text", "\"qemu_pid\": 999998", "\"qemu_pid\": \"999998\"", "at $.qemu_pid"),
        E("another guest's name", "\"name\": \"probe-1\"", "\"name\": \"probe-2\"", "its name 'probe-2' is not its file's name 'probe-1'"),
    };

    [Theory]
    [MemberData(nameof(RecordEdits))]
    public void A_damaged_guest_record_is_one_line_saying_what_and_left_as_it_is(Edit edit)
    {
        SavedJournal();
        var text = edit.Apply(Encoding.UTF8.GetString(SavedRecord()));
        File.WriteAllText(RecordPath, text);
        var host = Host();
        foreach (var command in new[] { "guests", "restore" })
            AssertOneLine(CliRunner.Run(command, "--root", _tree), $"the guest record {RecordPath} is damaged (", edit.Says);
        Assert.Equal(text, File.ReadAllText(RecordPath));
        Assert.Equal(host, Host());
    }

    public static TheoryData<Edit> SetupEdits => new()
    {
        E("a newer schema", "\"schema\": 1", "\"schema\": 2", "schema 2, which this passthru does not know (a newer one wrote it?)"),
        E("another kind", "\"kind\": \"setup\"", "\"kind\": \"backup\"", "kind 'backup', not a passthru setup record"),
        E("an unknown field", "\"schema\": 1,", "\"schema\": 1, \"bootEntries\": [],", "at $.bootEntries"),
        Rx("no hash of what was written", ",\\s*\"writtenSha256\": \"[0-9a-f]+\"", "", "at $.files[0]"),
        E("created that is text", "\"created\": false", "\"created\": \"no\"", "at $.files[0].created"),
    };

    [Theory]
    [MemberData(nameof(SetupEdits))]
    public void A_damaged_setup_record_is_one_line_saying_what_and_undo_puts_nothing_back(Edit edit)
    {
        var text = edit.Apply(Encoding.UTF8.GetString(SavedSetupRecord()));
        File.WriteAllText(SetupPath, text);
        var host = Host();
        AssertOneLine(CliRunner.Run("setup", "--root", _tree, "--undo"), $"the setup record {SetupPath} is damaged (", edit.Says);
        Assert.Equal(text, File.ReadAllText(SetupPath));
        Assert.Equal(host, Host());
    }

    // ---- A directory or a symlink in the file's place --------------------------------------------------------------

    public static TheoryData<string> Files => new() { "journal", "guest record", "setup record" };

    private (string Path, string[] Command) Target(string which) => which switch
    {
        "journal" => (JournalPath, ["restore", "--root", _tree]),
        "guest record" => (RecordPath, ["guests", "--root", _tree]),
        _ => (SetupPath, ["setup", "--root", _tree, "--undo"]),
    };

    private byte[] Saved(string which) => which switch
    {
        "journal" => SavedJournal(),
        "guest record" => SavedRecord(),
        _ => SavedSetupRecord(),
    };

    [Theory]
    [MemberData(nameof(Files))]
    public void A_directory_in_the_place_of_a_state_file_is_refused_not_taken_for_nothing(string which)
    {
        var (path, command) = Target(which);
        Saved(which);
        File.Delete(path);
        Directory.CreateDirectory(path);
        var host = Host();
        AssertOneLine(CliRunner.Run(command), $"the {which} {path} is a directory, not a file: move it aside; ");
        Assert.True(Directory.Exists(path));
        Assert.Equal(host, Host());
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void A_symlink_in_the_place_of_a_state_file_is_refused_even_to_a_good_copy(string which)
    {
        // Passthru writes its state as regular files, and a save renames over the link: a link there is not ours.
        var (path, command) = Target(which);
        var copy = Path.Combine(_tree, "elsewhere.json");
        var saved = Saved(which);
        File.WriteAllBytes(copy, saved);
        File.Delete(path);
        File.CreateSymbolicLink(path, copy);
        var host = Host();
        AssertOneLine(CliRunner.Run(command), $"the {which} {path} is a symlink (to {copy}), not a file passthru wrote: move it aside; ");
        File.Delete(copy);
        AssertOneLine(CliRunner.Run(command), $"the {which} {path} is a symlink (to {copy}), not a file passthru wrote: move it aside; ");
        Assert.Equal(path, new FileInfo(path).FullName);
        Assert.NotNull(new FileInfo(path).LinkTarget);
        File.WriteAllBytes(copy, saved);
        Assert.Equal(host, Host());
    }

    // ---- What restore could not give back -------------------------------------------------------------------------

    [Fact]
    public void Restore_with_a_damaged_journal_names_the_functions_it_leaves_on_vfio_pci()
    {
        SavedJournal();
        File.WriteAllText(JournalPath, "{\"version\": 1, \"functions\": [{\"address\": \"" + Nic + "\"");
        var vfio = Directory.CreateDirectory(Path.Combine(_tree, "sys/bus/pci/drivers/vfio-pci")).FullName;
        foreach (var a in new[] { Nic, Nic2 }) File.CreateSymbolicLink(Path.Combine(vfio, a), $"../../../../devices/pci0000:00/{a}");
        File.WriteAllText(Path.Combine(vfio, "bind"), "");
        var r = CliRunner.Run("restore", "--root", _tree);
        AssertOneLine(r, $"the journal {JournalPath} is damaged (it ends after ");
        Assert.EndsWith($"(not given back, on vfio-pci now: {Nic}, {Nic2})", r.Stderr.TrimEnd('\n'));
    }

    // ---- A newer passthru's fields are not lost ----------------------------------------------------------------

    [Fact]
    public void A_journal_with_a_field_this_passthru_does_not_know_is_never_saved_without_it()
    {
        // Before: the field was skipped on reading, and the next save (a bind, a restore of part) wrote the journal
        // back without it. Now every path that saves loads first, and the load refuses.
        var text = Encoding.UTF8.GetString(SavedJournal()).Replace("\"version\": 1,", "\"version\": 1, \"iommufd\": [\"" + Nic + "\"],");
        File.WriteAllText(JournalPath, text);
        var e = Assert.Throws<UserError>(() => Journal.Load(StateDir));
        Assert.Contains("at $.iommufd", e.Message);
        foreach (var args in new[] { new[] { "unbind", Nic }, ["restore", Nic2], ["bind", "--allow-unsafe-interrupts", "0000:00:03.0"] })
            Assert.Equal(1, CliRunner.Run([.. args, "--root", _tree]).ExitCode);
        Assert.Equal(text, File.ReadAllText(JournalPath));
    }

    // ---- A kill between write and rename ---------------------------------------------------------------------------

    /// <summary>kill -9 at the hook: nothing after it runs (no clean-up of the temporary file, no rename).</summary>
    private sealed class Killed : Exception;

    /// <summary>Saves a changed state through the same writer the commands use.</summary>
    private void SaveAgain(string which)
    {
        switch (which)
        {
            case "journal":
                var journal = Journal.Load(StateDir);
                journal.Record(new FunctionState(PciAddress.Parse("0000:00:03.0"), "virtio-pci", null, 3));
                journal.Save();
                break;
            case "guest record":
                var record = GuestRecords.Load(StateDir, "probe-1")!;
                record.Devices.Clear();
                GuestRecords.Save(StateDir, record);
                break;
            default:
                var host = new HostRoot(_tree);
                var setup = SetupJournal.Load(host)!;
                setup.Updated = "2026-12-02T00:00:00Z";
                SetupJournal.Save(host, setup);
                break;
        }
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void A_kill_between_write_and_rename_leaves_the_old_state_whole(string which)
    {
        var (path, command) = Target(which);
        var old = Saved(which);
        AtomicFile.BeforeRename.Value = p => { if (p == path) throw new Killed(); };
        try
        {
            Assert.Throws<Killed>(() => SaveAgain(which));
        }
        finally
        {
            AtomicFile.BeforeRename.Value = null;
        }
        Assert.Equal(old, File.ReadAllBytes(path));
        // The new state was whole and on disk in the temporary file the kill left; the file itself is the old one.
        var temp = Assert.Single(Directory.GetFiles(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.passthru-*.tmp"));
        Assert.NotEqual(old, File.ReadAllBytes(temp));
        // The old state reads (each save loads first), and without the kill the same save goes through.
        SaveAgain(which);
        Assert.NotEqual(old, File.ReadAllBytes(path));
        // The command after it (which takes the lock, or is setup's own) reads the new state and leaves no temporary behind.
        var r = CliRunner.Run(command);
        Assert.True(r.ExitCode == 0, r.Stderr);
        if (which != "setup record") // (setup has no lock to take, and leaves others' temporaries alone)
            Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.passthru-*.tmp"));
    }

    [Fact]
    public void A_kill_while_reserving_a_guest_name_leaves_no_record_under_the_name()
    {
        // The reservation was written in place (create, then write): a kill between left an empty record that every
        // restore refused. Now it appears whole or not at all.
        AtomicFile.BeforeRename.Value = p => { if (p == RecordPath) throw new Killed(); };
        try
        {
            Assert.Throws<Killed>(() => GuestRecords.TryReserve(StateDir, GuestRecords.Reservation("probe-1")));
        }
        finally
        {
            AtomicFile.BeforeRename.Value = null;
        }
        Assert.False(File.Exists(RecordPath));
        Assert.Equal(0, CliRunner.Run("guests", "--root", _tree).ExitCode);
        Assert.True(GuestRecords.TryReserve(StateDir, GuestRecords.Reservation("probe-1")));
        Assert.False(GuestRecords.TryReserve(StateDir, GuestRecords.Reservation("probe-1")));
        Assert.Empty(Directory.GetFiles(GuestRecords.Directory(StateDir), ".*.tmp"));
    }
}
