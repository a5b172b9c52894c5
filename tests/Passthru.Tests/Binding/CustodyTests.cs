using Passthru.Tests.Support;

namespace Passthru.Tests.Binding;

/// <summary>
/// Custody's one give-back path, on a scratch copy of the virtual host's capture: restore and `guests` cleaning up
/// after a killed guest give back through the same plan as run's end and detach, and all of them check each function
/// afterwards. The function here is already back on its own driver (what the kernel does after the probe), so the
/// plan's writes are over and only the check after it decides.
/// </summary>
public sealed class CustodyTests : IDisposable
{
    private readonly string _tree = Repo.CopyCapture("vhost");
    private string StateDir => Path.Combine(_tree, "run/passthru");
    private const string Nic = "0000:00:02.0";

    public CustodyTests()
    {
        Directory.CreateDirectory(StateDir);
        File.WriteAllText(Path.Combine(StateDir, "state.json"), $$"""
            { "version": 1, "functions": [ { "address": "{{Nic}}", "driver": "e1000e", "driver_override": null, "group": 2 } ] }
            """);
    }

    public void Dispose() => Directory.Delete(_tree, true);

    private void PowerState(string state) => File.WriteAllText(Path.Combine(_tree, "sys/bus/pci/devices", Nic, "power_state"), state + "\n");

    [Fact]
    public void Restore_checks_what_it_gave_back_and_fails_on_a_device_left_in_D3cold()
    {
        PowerState("D3cold");
        var r = CliRunner.Run("restore", "--root", _tree);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal([
            $"gave {Nic} back to e1000e",
            $"passthru: after giving back: {Nic} is in power state D3cold after the guest: bring it back (echo on > /sys/bus/pci/devices/{Nic}/power/control), "
                + $"keep it out of D3cold (echo 0 > /sys/bus/pci/devices/{Nic}/d3cold_allowed), or load vfio-pci with disable_idle_d3=1",
        ], r.Lines);
        Assert.False(File.Exists(Path.Combine(StateDir, "state.json")));
    }

    [Fact]
    public void Restore_of_a_healthy_device_says_only_what_it_gave_back()
    {
        PowerState("D0");
        var r = CliRunner.Run("restore", "--root", _tree);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal([$"gave {Nic} back to e1000e"], r.Lines);
    }

    [Fact]
    public void Guests_cleaning_up_after_a_killed_guest_gives_back_the_same_way_and_checks()
    {
        PowerState("D3cold");
        // A guest whose QEMU and run are both gone (no such pids in the tree's /proc).
        var guests = Directory.CreateDirectory(Path.Combine(StateDir, "guests")).FullName;
        File.WriteAllText(Path.Combine(guests, "probe-1.json"), $$"""
            { "name": "probe-1", "runner_pid": 999999, "qemu_pid": 999998, "qmp": "{{guests}}/probe-1.qmp", "machine": "q35",
              "ports": ["pt0"], "devices": [ { "address": "{{Nic}}", "id": "hostdev-0000-00-02-0", "port": "pt0", "attached": false, "bound": [] } ],
              "bound": ["{{Nic}}"] }
            """);
        var r = CliRunner.Run("guests", "--root", _tree);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains($"guest 'probe-1' has ended: gave {Nic} back to e1000e", r.Lines);
        Assert.Contains(r.Lines, l => l.StartsWith($"passthru: after guest 'probe-1': {Nic} is in power state D3cold", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(guests, "probe-1.json")));
        Assert.False(File.Exists(Path.Combine(StateDir, "state.json")));
    }

    /// <summary>A running guest in the tree: its record, and a QEMU in the tree's /proc whose command line names its socket.</summary>
    private string RunningGuest(string devicesJson, string bound)
    {
        var guests = Directory.CreateDirectory(Path.Combine(StateDir, "guests")).FullName;
        var qmp = Path.Combine(guests, "probe-1.qmp");
        foreach (var (pid, cmdline) in new[] { (4242, $"qemu-system-x86_64\0-qmp\0unix:{qmp},server=on,wait=off\0"), (4241, "passthru\0run\0") })
        {
            Directory.CreateDirectory(Path.Combine(_tree, $"proc/{pid}"));
            File.WriteAllText(Path.Combine(_tree, $"proc/{pid}/cmdline"), cmdline);
        }
        File.WriteAllText(Path.Combine(guests, "probe-1.json"), $$"""
            { "name": "probe-1", "runner_pid": 4241, "qemu_pid": 4242, "qmp": "{{qmp}}", "machine": "q35",
              "ports": ["pt0", "hp0"], "devices": {{devicesJson}}, "bound": {{bound}} }
            """);
        return guests;
    }

    [Fact]
    public void Detach_dry_run_prints_the_give_back_from_the_plan_and_changes_nothing()
    {
        SysfsShaper.Rebind(_tree, Nic, "vfio-pci");
        RunningGuest($$"""[ { "address": "{{Nic}}", "id": "hostdev-0000-00-02-0", "port": "pt0", "attached": false, "bound": [] } ]""", $"[\"{Nic}\"]");
        var journal = File.ReadAllText(Path.Combine(StateDir, "state.json"));
        var record = File.ReadAllText(Path.Combine(StateDir, "guests/probe-1.json"));
        var r = CliRunner.Run("detach", "probe-1", Nic, "--root", _tree, "--dry-run");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal([
            "then, once the guest let go of them:",
            "plan (give back):",
            $"   1. clear /sys/bus/pci/devices/{Nic}/driver_override",
            $"   2. write {Nic} > /sys/bus/pci/drivers/vfio-pci/unbind",
            $"   3. write {Nic} > /sys/bus/pci/drivers_probe",
            $"   4. check {Nic} is bound to e1000e",
        ], r.Lines.SkipWhile(l => !l.StartsWith("then,", StringComparison.Ordinal)));
        Assert.Equal(journal, File.ReadAllText(Path.Combine(StateDir, "state.json")));
        Assert.Equal(record, File.ReadAllText(Path.Combine(StateDir, "guests/probe-1.json")));
    }

    [Fact]
    public void Restore_leaves_what_a_running_guest_holds_and_says_so()
    {
        SysfsShaper.Rebind(_tree, Nic, "vfio-pci");
        RunningGuest($$"""[ { "address": "{{Nic}}", "id": "hostdev-0000-00-02-0", "port": "pt0", "attached": false, "bound": [] } ]""", $"[\"{Nic}\"]");
        var r = CliRunner.Run("restore", "--root", _tree);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains($"{Nic} stays on vfio-pci: the running guest 'probe-1' holds it (it goes back when the guest ends)", r.Lines);
        Assert.True(File.Exists(Path.Combine(StateDir, "state.json")));
        Assert.EndsWith("vfio-pci", new FileInfo(Path.Combine(_tree, "sys/bus/pci/devices", Nic, "driver")).LinkTarget);
    }

    [Fact]
    public void A_function_someone_gave_to_another_driver_is_left_as_it_is_and_forgotten_not_reprobed_on_every_restore()
    {
        // The journal says e1000x (wrong, or a driver since renamed); the NIC works on e1000e, not on vfio-pci.
        File.WriteAllText(Path.Combine(StateDir, "state.json"), $$"""
            { "version": 1, "functions": [ { "address": "{{Nic}}", "driver": "e1000x", "driver_override": null, "group": 2 } ] }
            """);
        var overrideBefore = File.ReadAllText(Path.Combine(_tree, "sys/bus/pci/devices", Nic, "driver_override"));
        var r = CliRunner.Run("restore", "--root", _tree);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal([$"{Nic} is on e1000e now, not vfio-pci (the journal said it came from e1000x): left as it is and dropped from the journal"], r.Lines);
        Assert.False(File.Exists(Path.Combine(StateDir, "state.json")));
        Assert.Equal(overrideBefore, File.ReadAllText(Path.Combine(_tree, "sys/bus/pci/devices", Nic, "driver_override")));
        Assert.EndsWith("e1000e", new FileInfo(Path.Combine(_tree, "sys/bus/pci/devices", Nic, "driver")).LinkTarget);
        Assert.Equal(["nothing to give back: Passthru has no devices bound (journal " + Path.Combine(StateDir, "state.json") + ")"], CliRunner.Run("restore", "--root", _tree).Lines);
    }

    [Fact]
    public void Restore_dry_run_prints_the_give_back_from_the_plan_with_the_parameter_it_puts_back()
    {
        const string param = "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";
        Directory.CreateDirectory(Path.Combine(_tree, Path.GetDirectoryName(param)!));
        File.WriteAllText(Path.Combine(_tree, param), "Y\n");
        File.WriteAllText(Path.Combine(StateDir, "state.json"), $$"""
            { "version": 1, "functions": [ { "address": "{{Nic}}", "driver": "e1000e", "driver_override": null, "group": 2 } ],
              "parameters": [ { "path": "{{param}}", "original": "N", "for": [ "{{Nic}}" ] } ] }
            """);
        SysfsShaper.Rebind(_tree, Nic, "vfio-pci");
        var r = CliRunner.Run("restore", "--root", _tree, "--dry-run");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal([
            "plan (give back):",
            $"   1. clear /sys/bus/pci/devices/{Nic}/driver_override",
            $"   2. write {Nic} > /sys/bus/pci/drivers/vfio-pci/unbind",
            $"   3. write {Nic} > /sys/bus/pci/drivers_probe",
            $"   4. check {Nic} is bound to e1000e",
            $"   5. write N > /{param} (no device it was set for is held any more)",
        ], r.Lines);
        Assert.Equal("Y\n", File.ReadAllText(Path.Combine(_tree, param)));
    }
}

/// <summary>The journal's file format across releases: what an earlier release wrote loads, and is written back the same.</summary>
public sealed class JournalFormatTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("passthru-journal-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void A_journal_written_by_the_release_before_the_source_generated_format_loads_and_saves_byte_for_byte()
    {
        var saved = File.ReadAllBytes(Path.Combine(Repo.Root, "tests/fixtures/journal/state-ce21c0b.json"));
        File.WriteAllBytes(Path.Combine(_dir, "state.json"), saved);
        var journal = Passthru.Binding.Journal.Load(_dir);
        var nic = Assert.Single(journal.Functions);
        Assert.Equal(("0000:00:02.0", "e1000e", (string?)null, (int?)2), (nic.Address.ToString(), nic.Driver, nic.DriverOverride, nic.Group));
        var parameter = Assert.Single(journal.Parameters);
        Assert.Equal(("sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "N", "0000:00:02.0"),
            (parameter.Path, parameter.Original, Assert.Single(parameter.For).ToString()));
        var sriov = Assert.Single(journal.Sriov);
        Assert.Equal(("0000:03:00.0", 2, (string?)null, "0000:03:00.1"),
            (sriov.Pf.ToString(), sriov.OriginalCount, sriov.OriginalAutoprobe, Assert.Single(sriov.Created).ToString()));
        File.Delete(Path.Combine(_dir, "state.json"));
        journal.Save();
        Assert.Equal(System.Text.Encoding.UTF8.GetString(saved), File.ReadAllText(Path.Combine(_dir, "state.json")));
    }

    [Fact]
    public void A_journal_with_every_list_written_by_the_serializer_loads_and_saves_byte_for_byte()
    {
        var saved = File.ReadAllBytes(Path.Combine(Repo.Root, "tests/fixtures/journal/state-b968d0a.json"));
        File.WriteAllBytes(Path.Combine(_dir, "state.json"), saved);
        var journal = Passthru.Binding.Journal.Load(_dir);
        Assert.Equal(["0000:00:02.0 e1000e - 2", "0000:02:01.0 - '' -", "0000:06:00.0 bochs-drm vfio-pci 11"],
            journal.Functions.Select(f => $"{f.Address} {f.Driver ?? "-"} {(f.DriverOverride is { } o ? (o.Length == 0 ? "''" : o) : "-")} {f.Group?.ToString() ?? "-"}"));
        Assert.Equal("N for 0000:00:02.0,0000:02:01.0", Assert.Single(journal.Parameters) is var p ? $"{p.Original} for {string.Join(",", p.For)}" : "");
        Assert.Equal("0000:03:00.0 0 1 0000:03:00.1,0000:03:00.2", Assert.Single(journal.Sriov) is var x ? $"{x.Pf} {x.OriginalCount} {x.OriginalAutoprobe} {string.Join(",", x.Created)}" : "");
        Assert.Equal("dev/vfio/2 0 0 384 0000:00:02.0", Assert.Single(journal.Nodes) is var n ? $"{n.Path} {n.Uid} {n.Gid} {n.Mode} {string.Join(",", n.For)}" : "");
        Assert.Equal(["vtconsole vtcon1 - 0000:06:00.0", "framebuffer efi-framebuffer.0 efi-framebuffer 0000:06:00.0"],
            journal.Consoles.Select(c => $"{c.Hold.Kind} {c.Hold.Name} {c.Hold.Driver ?? "-"} {string.Join(",", c.For)}"));
        Assert.Equal("0000:00:02.0 flr pm", Assert.Single(journal.ResetMethods) is var r ? $"{r.Function} {r.Original}" : "");
        Assert.Equal("0000:06:00.0", Assert.Single(journal.Roms).ToString());
        File.Delete(Path.Combine(_dir, "state.json"));
        journal.Save();
        Assert.Equal(System.Text.Encoding.UTF8.GetString(saved), File.ReadAllText(Path.Combine(_dir, "state.json")));
    }

    [Theory]
    [InlineData("probe-1")]
    [InlineData("probe-2")]
    public void A_guest_record_written_by_the_serializer_loads_and_saves_the_same_without_its_copy_of_the_free_ports(string name)
    {
        var saved = File.ReadAllText(Path.Combine(Repo.Root, $"tests/fixtures/guest-record/{name}-b968d0a.json"));
        Directory.CreateDirectory(Passthru.Binding.GuestRecords.Directory(_dir));
        File.WriteAllText(Passthru.Binding.GuestRecords.PathOf(_dir, name), saved);
        var record = Passthru.Binding.GuestRecords.Load(_dir, name)!;
        var freePorts = System.Text.Json.JsonDocument.Parse(saved).RootElement.GetProperty("free_ports").EnumerateArray().Select(e => e.GetString());
        Assert.Equal(freePorts, record.FreePorts);
        File.Delete(Passthru.Binding.GuestRecords.PathOf(_dir, name));
        Passthru.Binding.GuestRecords.Save(_dir, record);
        var without = System.Text.RegularExpressions.Regex.Replace(saved, ",\\n  \"free_ports\": \\[[^\\]]*\\]", "");
        Assert.DoesNotContain("free_ports", without);
        Assert.Equal(without, File.ReadAllText(Passthru.Binding.GuestRecords.PathOf(_dir, name)));
    }
}
