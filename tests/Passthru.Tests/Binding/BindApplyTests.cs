using Passthru.Binding;
using Passthru.Tests.Support;

namespace Passthru.Tests.Binding;

/// <summary>
/// The applier against a scratch copy of the virtual host's capture. A tree has no kernel behind it, so steps fail
/// for real where the kernel would have acted (a driver's unbind file a capture does not have): what matters here is
/// what Passthru does about it. Successful binds are tested against the real kernel in the virtual host.
/// </summary>
public sealed class BindApplyTests : IDisposable
{
    private readonly string _tree = Repo.CopyCapture("vhost");

    public BindApplyTests()
    {
        // Loaded already: a scratch tree cannot take modprobe.
        Directory.CreateDirectory(Path.Combine(_tree, "sys/module/vfio_pci"));
        Directory.CreateDirectory(Path.Combine(_tree, "sys/module/vfio_iommu_type1"));
    }

    public void Dispose() => Directory.Delete(_tree, true);

    private string Attribute(string address, string name) => File.ReadAllText(Path.Combine(_tree, "sys/bus/pci/devices", address, name));
    private string JournalFile => Path.Combine(_tree, "run/passthru/state.json");

    [Fact]
    public void A_failed_step_rolls_back_what_was_done_and_says_so()
    {
        var r = CliRunner.Run("bind", "00:02.0", "--root", _tree);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith($"passthru: write 0000:00:02.0 > /sys/bus/pci/drivers/e1000e/unbind failed: {_tree}/sys/bus/pci/drivers/e1000e/unbind: no such file", r.Stderr);
        Assert.EndsWith("; rolled back: gave 0000:00:02.0 to e1000e\n", r.Stderr);
        Assert.Equal("\n", Attribute("0000:00:02.0", "driver_override"));   // cleared again, as `echo > driver_override` does
        Assert.False(File.Exists(JournalFile));                                 // nothing left to restore
    }

    [Fact]
    [Trait(Support.Tier.Name, Support.Tier.Slow)] // the failed check waits out BindApplier.SettleTime (3 s)
    public void A_group_failing_half_way_gives_back_every_function_touched()
    {
        // The first function's steps all go through; the second's unbind fails.
        File.WriteAllText(Path.Combine(_tree, "sys/bus/pci/drivers/e1000/unbind"), "");
        File.WriteAllText(Path.Combine(_tree, "sys/bus/pci/drivers_probe"), "");
        SysfsShaper.Rebind(_tree, "0000:02:01.0", "vfio-pci"); // what the kernel would have done after the probe
        File.WriteAllText(Path.Combine(_tree, "sys/bus/pci/devices/0000:02:01.0/driver_override"), "(null)\n");
        var plan = CliRunner.Run("bind", "02:01.0", "--group", "--root", _tree);
        // 02:01.0 is already on vfio-pci here, so only 02:02.0 moves; make its verification fail: nothing rebinds it.
        Assert.Equal(1, plan.ExitCode);
        Assert.StartsWith("passthru: check 0000:02:02.0 is bound to vfio-pci failed: 0000:02:02.0 is bound to e1000, not vfio-pci; rolled back: gave 0000:02:02.0 to e1000", plan.Stderr);
        Assert.Equal("\n", Attribute("0000:02:02.0", "driver_override"));
        Assert.False(File.Exists(JournalFile));
    }

    [Fact]
    public void Restore_after_a_crash_mid_bind_gives_the_device_back()
    {
        // The state a kill -9 leaves between unbind and probe: override written, no driver, the journal on disk.
        var journalDir = Path.Combine(_tree, "run/passthru");
        Directory.CreateDirectory(journalDir);
        File.WriteAllText(JournalFile, """
            {"version": 1, "functions": [{"address": "0000:00:02.0", "driver": "e1000e", "driver_override": null, "group": 2}]}
            """);
        File.WriteAllText(Path.Combine(_tree, "sys/bus/pci/devices/0000:00:02.0/driver_override"), "vfio-pci\n");
        File.Delete(Path.Combine(_tree, "sys/bus/pci/devices/0000:00:02.0/driver"));
        var r = CliRunner.Run("restore", "--dry-run", "--root", _tree);
        Assert.Equal("""
            plan (give back):
               1. clear /sys/bus/pci/devices/0000:00:02.0/driver_override
               2. write 0000:00:02.0 > /sys/bus/pci/drivers_probe
               3. check 0000:00:02.0 is bound to e1000e

            """, r.Stdout);
        Assert.Null(new FileInfo(Path.Combine(_tree, "sys/bus/pci/devices/0000:00:02.0/driver")).LinkTarget); // the dry run changed nothing

        // Applied, with a stand-in kernel that probes the function as the real one would.
        using (var kernel = new SysfsShaper.Kernel(_tree, new Dictionary<string, string> { ["0000:00:02.0"] = "e1000e" }))
        {
            r = CliRunner.Run("restore", "--root", _tree);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Equal("gave 0000:00:02.0 back to e1000e\n", r.Stdout);
            Assert.Equal(["bind 0000:00:02.0 e1000e"], kernel.Done);   // bound by the probe, with the override cleared first
        }
        Assert.Equal("e1000e", Path.GetFileName(new FileInfo(Path.Combine(_tree, "sys/bus/pci/devices/0000:00:02.0/driver")).LinkTarget));
        Assert.Equal("\n", Attribute("0000:00:02.0", "driver_override"));
        Assert.False(File.Exists(JournalFile));                                 // nothing left to restore
        Assert.Equal($"nothing to give back: Passthru has no devices bound (journal {JournalFile})\n", CliRunner.Run("restore", "--root", _tree).Stdout);
    }

    [Fact]
    public void Unbind_of_a_device_passthru_did_not_bind_is_refused()
    {
        SysfsShaper.Rebind(_tree, "0000:00:04.0", "vfio-pci");
        var r = CliRunner.Run("unbind", "00:04.0", "--root", _tree);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal($"passthru: 0000:00:04.0 is on vfio-pci but Passthru did not put it there (not in {_tree}/run/passthru/state.json): give it back by hand\n", r.Stderr);
        Assert.Equal("nothing to give back: Passthru has no devices bound (journal " + _tree + "/run/passthru/state.json)\n",
            CliRunner.Run("restore", "--root", _tree).Stdout);
    }

    [Fact]
    public void A_damaged_journal_is_a_clear_error()
    {
        Directory.CreateDirectory(Path.Combine(_tree, "run/passthru"));
        File.WriteAllText(JournalFile, "{\"version\": 1, \"functions\": [{\"address\": \"zz\"}]}");
        var r = CliRunner.Run("restore", "--root", _tree);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith($"passthru: the journal {JournalFile} is damaged (", r.Stderr);
    }

    [Fact]
    public void The_journal_is_private_to_root()
    {
        var journal = Journal.Load(Path.Combine(_tree, "run/passthru"));
        journal.Record(new FunctionState(Passthru.Pci.PciAddress.Parse("0000:00:02.0"), "e1000e", null, 2));
        journal.Save();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(JournalFile));
        Assert.Equal("e1000e", Journal.Load(Path.Combine(_tree, "run/passthru")).Find(Passthru.Pci.PciAddress.Parse("0000:00:02.0"))!.Driver);
    }

    [Fact]
    public async Task A_second_process_waits_for_the_lock_then_proceeds_and_one_that_waits_too_long_gives_up_clearly()
    {
        // The state a kill -9 leaves mid-bind (as above): what the waiting restore gives back.
        var dir = Path.Combine(_tree, "run/passthru");
        Directory.CreateDirectory(dir);
        File.WriteAllText(JournalFile, """
            {"version": 1, "functions": [{"address": "0000:00:02.0", "driver": "e1000e", "driver_override": null, "group": 2}]}
            """);
        File.WriteAllText(Path.Combine(_tree, "sys/bus/pci/devices/0000:00:02.0/driver_override"), "vfio-pci\n");
        File.Delete(Path.Combine(_tree, "sys/bus/pci/devices/0000:00:02.0/driver"));

        // Another process holds the lock (flock(1), as a second passthru would) until it is told to let go.
        var start = new System.Diagnostics.ProcessStartInfo("flock", [Path.Combine(dir, "lock"), "sh", "-c", "echo held; read go"])
            { RedirectStandardInput = true, RedirectStandardOutput = true };
        using var holder = System.Diagnostics.Process.Start(start)!;
        try
        {
            Assert.Equal("held", holder.StandardOutput.ReadLine());
            // While it holds the lock, a short wait gives up with the reason.
            var e = Assert.Throws<UserError>(() => StateLock.Acquire(dir, TimeSpan.FromMilliseconds(300)));
            Assert.StartsWith($"another passthru is changing devices (lock {dir}/lock held for over 0 s)", e.Message);

            using var kernel = new SysfsShaper.Kernel(_tree, new Dictionary<string, string> { ["0000:00:02.0"] = "e1000e" });
            var restore = Task.Run(() => CliRunner.Run("restore", "--root", _tree));
            // It waits: not finished, and nothing given back, while the other process holds the lock.
            await Task.WhenAny(restore, Task.Delay(TimeSpan.FromSeconds(2)));
            Assert.False(restore.IsCompleted, restore.IsCompleted ? (await restore).Stdout + (await restore).Stderr : "");
            Assert.Empty(kernel.Done);
            Assert.True(File.Exists(JournalFile));
            // Let go: the waiting restore proceeds and gives the device back.
            holder.StandardInput.WriteLine("go");
            holder.StandardInput.Close();
            holder.WaitForExit();
            Assert.Equal(0, holder.ExitCode);
            var r = await restore;
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Equal("gave 0000:00:02.0 back to e1000e\n", r.Stdout);
            Assert.Equal(["bind 0000:00:02.0 e1000e"], kernel.Done);
            Assert.False(File.Exists(JournalFile));
        }
        finally
        {
            if (!holder.HasExited) holder.Kill();
        }
    }
}
