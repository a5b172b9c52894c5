using System.Text;
using System.Text.Json;
using Passthru.Host;
using Passthru.Setup;
using Passthru.Tests.Support;

namespace Passthru.Tests.Setup;

/// <summary>Applying and undoing: all or nothing, a record that undo trusts only when the files are as setup left them.</summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public class SetupApplyTests
{
    private static readonly byte[] Grub = Encoding.UTF8.GetBytes("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n");

    [Fact]
    public void An_unwritable_directory_is_one_line_and_nothing_is_written()
    {
        // A file where etc/modprobe.d should be: even root cannot create the new file there.
        using var host = ScratchHost.DebianGrub(Grub).With("etc/modprobe.d", "not a directory");
        var before = host.Snapshot();
        var r = host.Setup("--device", "1af4:1053", "--apply");
        Assert.Equal(1, r.ExitCode);
        Assert.Matches(@"^passthru: cannot write .*/etc/modprobe.d/passthru.conf \(.*\): nothing was changed\n$", r.Stderr);
        Assert.Equal(before, host.Snapshot()); // no staged temporary file, no record, etc/modules-load.d removed again
    }

    [Fact]
    public void A_symbolic_link_is_not_replaced()
    {
        using var host = ScratchHost.DebianGrub(Grub);
        File.Move(Path.Combine(host.Root, "etc/default/grub"), Path.Combine(host.Root, "etc/default/grub.real"));
        File.CreateSymbolicLink(Path.Combine(host.Root, "etc/default/grub"), "grub.real");
        var before = host.Snapshot();
        var r = host.Setup("--apply");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"passthru: {host.Root}/etc/default/grub is a symbolic link (to grub.real): edit the file it points to by hand, or replace the link with a copy and run passthru setup again; nothing was changed\n", r.Stderr);
        Assert.Equal(before, host.Snapshot());
    }

    [Fact]
    public void A_foreign_line_in_a_file_passthru_owns_is_refused()
    {
        using var host = ScratchHost.DebianGrub(Grub).With("etc/modprobe.d/passthru.conf", "options vfio-pci ids=1af4:1053\nblacklist nouveau\n");
        var before = host.Snapshot();
        var r = host.Setup("--device", "1af4:1053", "--apply");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"passthru: {host.Root}/etc/modprobe.d/passthru.conf:2: unexpected line 'blacklist nouveau': passthru writes this file itself; remove the line (or the file) and run passthru setup again\n", r.Stderr);
        Assert.Equal(before, host.Snapshot());
    }

    [Fact]
    public void A_line_of_the_by_address_rules_that_only_names_a_function_is_refused()
    {
        // Setup rewrites the file whole: a line of the user's own for a function it claims would be lost.
        const string ours = "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:00:02.0\", ";
        const string theirs = ours + "ATTR{driver_override}=\"vfio-pci\", RUN+=\"/usr/local/bin/notify %k\"";
        using var host = ScratchHost.DebianGrub(Grub).With("etc/udev/rules.d/40-passthru-vfio-pci.rules", ours + "ATTR{driver_override}=\"vfio-pci\"\n" + theirs + "\n");
        var before = host.Snapshot();
        var r = host.Setup("--apply");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"passthru: {host.Root}/etc/udev/rules.d/40-passthru-vfio-pci.rules:2: unexpected line '{theirs}': passthru writes this file itself; remove the line (or the file) and run passthru setup again\n", r.Stderr);
        Assert.Equal(before, host.Snapshot());
    }

    [Fact]
    public void Undo_refuses_when_a_file_changed_since_and_changes_nothing()
    {
        using var host = ScratchHost.DebianGrub(Grub);
        Assert.Equal(0, host.Setup("--apply").ExitCode);
        host.With("etc/default/grub", host.Read("etc/default/grub") + "GRUB_TIMEOUT=1\n");
        var before = host.Snapshot();
        var r = host.Setup("--undo");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"passthru: {host.Root}/etc/default/grub changed since passthru setup wrote it: its original is {host.Root}/var/lib/passthru/setup-backup/etc/default/grub; "
            + "put back what you need by hand, then run passthru setup --undo again; nothing was changed\n", r.Stderr);
        Assert.Equal(before, host.Snapshot());
    }

    [Fact]
    public void Undo_without_a_record_says_there_is_nothing_to_undo()
    {
        using var host = ScratchHost.DebianGrub(Grub);
        var r = host.Setup("--undo");
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith("Nothing to undo: passthru setup has not changed this host (no var/lib/passthru/setup.json).\n", r.Stdout);
    }

    [Fact]
    public void The_record_holds_backups_hashes_and_commands_and_is_private()
    {
        using var host = ScratchHost.DebianGrub(Grub);
        Assert.Equal(0, host.Setup("--device", "1af4:1053", "--apply").ExitCode);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, SetupFiles.Mode(new HostRoot(host.Root), SetupJournal.RecordFile));
        using var doc = JsonDocument.Parse(host.Read(SetupJournal.RecordFile));
        var files = doc.RootElement.GetProperty("files").EnumerateArray().ToList();
        Assert.Equal(["etc/default/grub", "etc/modules-load.d/passthru.conf", "etc/modprobe.d/passthru.conf", "etc/initramfs-tools/modules"], files.Select(f => f.GetProperty("path").GetString()));
        Assert.Equal(SetupFiles.Sha256(Grub), files[0].GetProperty("originalSha256").GetString());
        Assert.Equal(Grub, host.Bytes(files[0].GetProperty("backup").GetString()!));
        Assert.True(files[1].GetProperty("created").GetBoolean());
        Assert.Equal(["update-initramfs -u", "update-grub"], doc.RootElement.GetProperty("commands").EnumerateArray()
            .Select(c => string.Join(' ', c.GetProperty("argv").EnumerateArray().Select(a => a.GetString()))));
        Assert.All(doc.RootElement.GetProperty("commands").EnumerateArray(), c => Assert.False(c.GetProperty("ran").GetBoolean()));
    }

    [Fact]
    public void Commands_run_in_order_and_a_failure_leaves_a_record_undo_can_use()
    {
        using var host = ScratchHost.DebianGrub(Grub);
        var root = new HostRoot(host.Root);
        var plan = SetupPlan.Make(root, new SetupRequest([Passthru.Pci.DeviceSelector.Parse("1af4:1053")], false));
        var ran = new List<string>();
        var failing = new SetupApplier(root, isRoot: true, c => { ran.Add(c.Display); return c.Argv[0] == "update-grub" ? (1, "grub-probe: error: failed to get canonical path of overlay") : (0, ""); });
        var e = Assert.Throws<UserError>(() => failing.Apply(plan));
        Assert.Equal("`update-grub` failed (exit 1: grub-probe: error: failed to get canonical path of overlay): the files are written and recorded; "
            + "fix that and run it by hand, or undo with passthru setup --undo", e.Message);
        Assert.Equal(["update-initramfs -u", "update-grub"], ran);

        ran.Clear();
        var undo = new SetupApplier(root, isRoot: true, c => { ran.Add(c.Display); return (0, ""); }).Undo();
        Assert.Equal(["restored etc/default/grub", "removed etc/modules-load.d/passthru.conf", "removed etc/modprobe.d/passthru.conf", "restored etc/initramfs-tools/modules",
            "ran update-initramfs -u", "ran update-grub"], undo.Lines);
        Assert.Equal(Grub, host.Bytes("etc/default/grub"));
    }

    [Fact]
    public void A_second_process_changing_the_host_waits_its_turn_then_setup_proceeds()
    {
        // Another process (flock(1), as bind would) holds the state lock for a second: setup waits for it, as bind
        // does, instead of failing at once.
        using var host = ScratchHost.DebianGrub(Grub);
        var waited = ApplyWhileLockHeld(host, Path.Combine(host.Root, "run/passthru"));
        Assert.True(waited.ExitCode == 0, waited.Stderr);
        Assert.Contains("changed etc/default/grub (original kept in var/lib/passthru/setup-backup/etc/default/grub)", waited.Lines);
        Assert.NotEqual(Grub, host.Bytes("etc/default/grub"));
    }

    [Fact]
    public void Setup_takes_the_lock_in_the_state_directory_it_is_given()
    {
        using var host = ScratchHost.DebianGrub(Grub);
        var stateDir = Directory.CreateTempSubdirectory("passthru-state-").FullName;
        try
        {
            var waited = ApplyWhileLockHeld(host, stateDir, "--state-dir", stateDir);
            Assert.True(waited.ExitCode == 0, waited.Stderr);
            Assert.False(host.Exists("run/passthru/lock"));   // not the default one
            Assert.True(host.Exists(SetupJournal.RecordFile));   // the record stays under the host root
            var undo = host.Setup("--undo", "--state-dir", stateDir);
            Assert.True(undo.ExitCode == 0, undo.Stderr);
            Assert.Equal(Grub, host.Bytes("etc/default/grub"));
        }
        finally { Directory.Delete(stateDir, recursive: true); }
    }

    /// <summary>
    /// Runs setup --apply while flock(1), another process, holds <paramref name="stateDir"/>/lock for a second, and
    /// shows it waited: the holder marks "released" as the last thing it does under the lock, so setup, which can only
    /// go ahead after the lock is free, must find the mark already there when it returns (an event, not a duration).
    /// </summary>
    private static CliResult ApplyWhileLockHeld(ScratchHost host, string stateDir, params string[] args)
    {
        Directory.CreateDirectory(stateDir);
        var ready = Path.Combine(host.Root, "flock-ready");
        var released = Path.Combine(host.Root, "flock-released");
        using var holder = System.Diagnostics.Process.Start("flock", [Path.Combine(stateDir, "lock"), "-c", $"touch '{ready}'; sleep 1; touch '{released}'"]);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!File.Exists(ready) && DateTime.UtcNow < deadline) Thread.Sleep(10);
        Assert.True(File.Exists(ready), "flock(1) did not take the lock");
        File.Delete(ready);
        var result = host.Setup(["--apply", .. args]);
        Assert.True(File.Exists(released), "setup went ahead while another process held the lock");
        File.Delete(released);
        Assert.True(holder.WaitForExit(10_000));
        Assert.Equal(0, holder.ExitCode);
        return result;
    }

    [Fact]
    public void A_file_changed_between_plan_and_apply_stops_the_apply()
    {
        using var host = ScratchHost.DebianGrub(Grub);
        var root = new HostRoot(host.Root);
        var plan = SetupPlan.Make(root, new SetupRequest([], false));
        host.With("etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet splash\"\n");
        var before = host.Snapshot();
        var e = Assert.Throws<UserError>(() => new SetupApplier(root, isRoot: true).Apply(plan));
        Assert.Equal($"{host.Root}/etc/default/grub changed while passthru setup was planning: run it again; nothing was changed", e.Message);
        Assert.Equal(before, host.Snapshot());
    }

    [Fact]
    public void Not_root_on_the_live_host_stops_before_anything()
    {
        var plan = new SetupPlan("GRUB (etc/default/grub)", new SetupDecisions { Vendor = IommuVendor.Intel },
            [], [new FileChange("etc/modules-load.d/passthru.conf", null, "vfio\n")], [], []);
        var applier = new SetupApplier(HostRoot.Live, isRoot: false, _ => throw new InvalidOperationException("must not run"));
        Assert.Equal("passthru setup --apply changes the boot configuration of this host: run it as root (sudo passthru setup ...); nothing was changed",
            Assert.Throws<UserError>(() => applier.Apply(plan)).Message);
        Assert.StartsWith("passthru setup --undo changes the boot configuration", Assert.Throws<UserError>(applier.Undo).Message);
    }

    [Fact]
    public void An_interrupted_apply_can_be_undone_from_its_record()
    {
        // Crash after the record and one rename: the grub file is new, the module file never arrived.
        using var host = ScratchHost.DebianGrub(Grub);
        var root = new HostRoot(host.Root);
        Assert.Equal(0, host.Setup("--apply").ExitCode);
        File.Delete(Path.Combine(host.Root, "etc/modules-load.d/passthru.conf"));
        var undo = host.Setup("--undo");
        Assert.True(undo.ExitCode == 0, undo.Stderr);
        Assert.Equal(Grub, host.Bytes("etc/default/grub"));
        Assert.False(root.Exists("etc/modules-load.d"));
        Assert.False(root.Exists("var/lib/passthru"));
    }

    [Theory]
    [InlineData("", "")]
    [InlineData("a\nb\n", "a\nb\n")]
    [InlineData("a\nb", "a\nc")]
    [InlineData("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "1\n2x\n3\n4\n5\n6\n7\n8\n9\n10\n11y\n12\n")]
    [InlineData("x\n", "")]
    public void Diffs_apply_with_patch(string before, string after)
    {
        if (before == after) { Assert.Equal("--- a/f\n+++ b/f\n", UnifiedDiff.Make("f", before, after)); return; }
        var dir = Directory.CreateTempSubdirectory("passthru-diff-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "f"), before);
            File.WriteAllText(Path.Combine(dir, "d"), UnifiedDiff.Make("f", before, after));
            var (code, o, err) = Support.Repo.Exec("patch", "-d", dir, "-p1", "--no-backup-if-mismatch", "-i", Path.Combine(dir, "d"));
            Assert.True(code == 0, o + err);
            Assert.Equal(after, File.ReadAllText(Path.Combine(dir, "f")));
        }
        finally { Directory.Delete(dir, true); }
    }
}
