using Passthru.Binding;
using Passthru.Pci;
using Passthru.Tests.Support;

namespace Passthru.Tests.Binding;

/// <summary>
/// `vfs` planned, refused and rolled back on a scratch copy of the SR-IOV virtual host's capture
/// (tests/captures/vhost-sriov: an emulated NVMe PF at 0000:03:00.0 with sriov_totalvfs 2, captured with its two VFs
/// 03:00.1 and 03:00.2 enabled and no driver on them). A tree has no kernel that creates VFs: creating them for real
/// is tested in the virtual host (VirtualHostVfsTests).
/// </summary>
public sealed class VfPlanTests : IDisposable
{
    private readonly string _tree = Repo.CopyCapture("vhost-sriov");
    private const string Pf = "0000:03:00.0";

    public void Dispose() => Directory.Delete(_tree, true);

    private string Dev(string address, string attribute = "") => Path.Combine(_tree, "sys/bus/pci/devices", address, attribute);
    private string JournalFile => Path.Combine(_tree, "run/passthru/state.json");
    private CliResult Vfs(params string[] args) => CliRunner.Run(["vfs", .. args, "--root", _tree, "--pci-ids", Repo.SystemPciIds]);

    /// <summary>The PF as it was before its VFs were enabled: count 0, no virtfn links, no VF functions on the bus.</summary>
    private void WithoutVfs()
    {
        File.WriteAllText(Dev(Pf, "sriov_numvfs"), "0\n");
        foreach (var n in new[] { "virtfn0", "virtfn1" }) File.Delete(Dev(Pf, n));
        foreach (var vf in new[] { "0000:03:00.1", "0000:03:00.2" }) File.Delete(Path.Combine(_tree, "sys/bus/pci/devices", vf));
    }

    [Fact]
    public void Creating_bound_VFs_holds_autoprobe_off_names_the_VFs_before_they_exist_and_puts_autoprobe_back()
    {
        WithoutVfs();
        var r = Vfs(Pf, "--count", "2", "--bind", "--dry-run");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("""
            plan:
               1. modprobe vfio-pci
               2. modprobe vfio_iommu_type1
               3. write 0 > /sys/bus/pci/devices/0000:03:00.0/sriov_drivers_autoprobe
               4. write 2 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs
               5. check 0000:03:00.0 has 2 VFs: 0000:03:00.1, 0000:03:00.2
               6. write vfio-pci > /sys/bus/pci/devices/0000:03:00.1/driver_override
               7. write 0000:03:00.1 > /sys/bus/pci/drivers_probe
               8. check 0000:03:00.1 is bound to vfio-pci
               9. check /dev/vfio/<IOMMU group of 0000:03:00.1> exists
              10. write vfio-pci > /sys/bus/pci/devices/0000:03:00.2/driver_override
              11. write 0000:03:00.2 > /sys/bus/pci/drivers_probe
              12. check 0000:03:00.2 is bound to vfio-pci
              13. check /dev/vfio/<IOMMU group of 0000:03:00.2> exists
              14. write 1 > /sys/bus/pci/devices/0000:03:00.0/sriov_drivers_autoprobe

            """, r.Stdout);
        Assert.Equal("0\n", File.ReadAllText(Dev(Pf, "sriov_numvfs")));
        Assert.False(File.Exists(JournalFile));
    }

    [Fact]
    public void Changing_a_non_zero_count_goes_through_zero_as_the_kernel_requires()
    {
        var r = Vfs("03:00.0", "--count", "1", "--dry-run");
        Assert.Equal("""
            plan:
               1. write 0 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs
               2. write 1 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs
               3. check 0000:03:00.0 has 1 VF: 0000:03:00.1

            """, r.Stdout);
        Assert.Equal("plan:\n   1. write 0 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs\n   2. check 0000:03:00.0 has no VFs\n", Vfs(Pf, "--count", "0", "--dry-run").Stdout);
        Assert.Equal("0000:03:00.0 already has 2 VFs\nnothing to do\n", Vfs(Pf, "--count", "2", "--dry-run").Stdout);
    }

    [Fact]
    public void VFs_that_exist_already_are_bound_as_bind_binds_them()
    {
        // The count is what was asked: --bind hands the existing VFs to bind's own planner, with its checks.
        var r = Vfs(Pf, "--count", "2", "--bind", "--dry-run");
        Assert.Equal("""
            0000:03:00.0 already has 2 VFs
            plan:
               1. modprobe vfio-pci
               2. modprobe vfio_iommu_type1
               3. write vfio-pci > /sys/bus/pci/devices/0000:03:00.1/driver_override
               4. write 0000:03:00.1 > /sys/bus/pci/drivers_probe
               5. check 0000:03:00.1 is bound to vfio-pci
               6. write vfio-pci > /sys/bus/pci/devices/0000:03:00.2/driver_override
               7. write 0000:03:00.2 > /sys/bus/pci/drivers_probe
               8. check 0000:03:00.2 is bound to vfio-pci
               9. check /dev/vfio/11 exists
              10. check /dev/vfio/12 exists

            """, r.Stdout);
        // A VF carrying the host's default route is refused as bind refuses it.
        SysfsShaper.Rebind(_tree, "0000:03:00.2", "nvme");
        SysfsShaper.NetInterface(_tree, "eth9", "0000:03:00.2", defaultRoute: true);
        var refused = Vfs(Pf, "--count", "2", "--bind", "--dry-run");
        Assert.Equal(1, refused.ExitCode);
        Assert.Equal("passthru: refusing: 0000:03:00.2 carries the default route (eth9) (add --force to take it anyway)\n", refused.Stderr);
    }

    [Theory]
    [InlineData("00:02.0", "1", "passthru: 0000:00:02.0 is not an SR-IOV physical function (it has no SR-IOV capability: no sriov_totalvfs): it cannot have VFs")]
    [InlineData("03:00.1", "1", "passthru: 0000:03:00.1 is a virtual function (of 0000:03:00.0), not a physical function: give its PF, `passthru vfs 0000:03:00.0 --count N`")]
    [InlineData("03:00.0", "3", "passthru: 0000:03:00.0 supports at most 2 VFs (sriov_totalvfs), not 3")]
    [InlineData("03:00.0", "two", "passthru: --count 'two' is not a number of VFs: give 0 or more, e.g. --count 4 (0 removes the VFs)")]
    [InlineData("03:00.0", "-1", "passthru: --count '-1' is not a number of VFs: give 0 or more, e.g. --count 4 (0 removes the VFs)")]
    [InlineData("03:00.0", "1.5", "passthru: --count '1.5' is not a number of VFs: give 0 or more, e.g. --count 4 (0 removes the VFs)")]
    [InlineData("03:00.0", "", "passthru: --count '' is not a number of VFs: give 0 or more, e.g. --count 4 (0 removes the VFs)")]
    [InlineData("03:00", "1", "passthru: '03:00' is not a PCI device: use a full address like 0000:83:00.0, a short one like 83:00.0, or vendor:device IDs like 15b3:1003")]
    [InlineData("07:00.0", "1", "passthru: no PCI function at 07:00.0: see `passthru list` for the devices of this host")]
    public void Malformed_input_is_one_line_exit_2_and_changes_nothing(string pf, string count, string error)
    {
        foreach (var dryRun in new[] { true, false })
        {
            var r = dryRun ? Vfs(pf, "--count", count, "--bind", "--dry-run") : Vfs(pf, "--count", count, "--bind");
            Assert.Equal(2, r.ExitCode);
            Assert.Equal(error + "\n", r.Stderr);
            Assert.Equal("", r.Stdout);
            Assert.Equal("2\n", File.ReadAllText(Dev(Pf, "sriov_numvfs")));
            Assert.Equal("1\n", File.ReadAllText(Dev(Pf, "sriov_drivers_autoprobe")));
            Assert.False(File.Exists(JournalFile));
        }
    }

    [Fact]
    public void A_PF_on_vfio_pci_is_refused()
    {
        SysfsShaper.Rebind(_tree, Pf, "vfio-pci");
        var r = Vfs(Pf, "--count", "1");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("passthru: 0000:03:00.0 is bound to vfio-pci: its VFs are made by its own driver; give it back first (passthru unbind 0000:03:00.0); nothing was changed\n", r.Stderr);
        Assert.Equal("2\n", File.ReadAllText(Dev(Pf, "sriov_numvfs")));
    }

    [Fact]
    public void A_PF_without_a_driver_is_refused()
    {
        File.Delete(Dev(Pf, "driver"));
        var r = Vfs(Pf, "--count", "0");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("passthru: 0000:03:00.0 has no driver: the kernel lets only the PF's driver create VFs; let its driver take it first; nothing was changed\n", r.Stderr);
    }

    [Fact]
    public void Changing_the_count_under_a_guest_is_refused()
    {
        // 03:00.1 on vfio-pci, its group's node open by a QEMU: what /proc shows while a guest has it.
        SysfsShaper.Rebind(_tree, "0000:03:00.1", "vfio-pci");
        var group = Path.GetFileName(File.ResolveLinkTarget(Dev("0000:03:00.1", "iommu_group"), false)!.FullName);
        Directory.CreateDirectory(Path.Combine(_tree, "proc/4242/fd"));
        File.WriteAllText(Path.Combine(_tree, "proc/4242/comm"), "qemu-system-x86\n");
        File.CreateSymbolicLink(Path.Combine(_tree, "proc/4242/fd/17"), $"/dev/vfio/{group}");
        var r = Vfs(Pf, "--count", "0");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"passthru: 0000:03:00.1, a VF of 0000:03:00.0, is in use by a guest (qemu-system-x86 (pid 4242) has /dev/vfio/{group} open): changing the VF count would remove it; stop the guest first; nothing was changed\n", r.Stderr);
        Assert.Equal("2\n", File.ReadAllText(Dev(Pf, "sriov_numvfs")));
        Assert.False(File.Exists(JournalFile));
        // The same VF held by nobody does not stop the change (the kernel unbinds it as it removes it).
        File.Delete(Path.Combine(_tree, "proc/4242/fd/17"));
        Assert.Equal(0, Vfs(Pf, "--count", "0", "--dry-run").ExitCode);
    }

    [Fact]
    [Trait(Support.Tier.Name, Support.Tier.Slow)] // the failed check waits out BindApplier.SettleTime (3 s)
    public void A_count_the_kernel_did_not_make_rolls_back_to_the_count_before()
    {
        // No kernel behind the tree: the write lands in a plain file and no VF goes away, so the check fails.
        var r = Vfs(Pf, "--count", "1");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("passthru: check 0000:03:00.0 has 1 VF: 0000:03:00.1 failed: 0000:03:00.0 has 2 VFs, not 1; rolled back: gave 0000:03:00.0 its 2 VFs\n", r.Stderr);
        Assert.Equal("2", File.ReadAllText(Dev(Pf, "sriov_numvfs")));
        Assert.False(File.Exists(JournalFile));
    }

    [Fact]
    public void Restore_after_a_crash_gives_the_VFs_back_then_removes_them_and_puts_autoprobe_back()
    {
        // What a kill -9 leaves after the VFs were created and the first one bound: the journal and the VFs.
        Directory.CreateDirectory(Path.GetDirectoryName(JournalFile)!);
        File.WriteAllText(JournalFile, """
            {"version": 1,
             "functions": [{"address": "0000:03:00.1", "driver": null, "driver_override": null, "group": 11},
                           {"address": "0000:03:00.2", "driver": null, "driver_override": null, "group": null}],
             "sriov": [{"pf": "0000:03:00.0", "original_numvfs": 0, "original_autoprobe": "1", "created": ["0000:03:00.1", "0000:03:00.2"]}]}
            """);
        SysfsShaper.Rebind(_tree, "0000:03:00.1", "vfio-pci");
        File.WriteAllText(Dev(Pf, "sriov_drivers_autoprobe"), "0\n");
        var r = CliRunner.Run("restore", "--dry-run", "--root", _tree);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("""
            plan (give back):
               1. write 1 > /sys/bus/pci/devices/0000:03:00.0/sriov_drivers_autoprobe
               2. clear /sys/bus/pci/devices/0000:03:00.1/driver_override
               3. write 0000:03:00.1 > /sys/bus/pci/drivers/vfio-pci/unbind
               4. check 0000:03:00.1 is bound to no driver
               5. check 0000:03:00.2 is bound to no driver
               6. write 0 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs
               7. check 0000:03:00.0 has no VFs

            """, r.Stdout);
        Assert.Equal(r.Stdout, CliRunner.Run("restore", "03:00.0", "--dry-run", "--root", _tree).Stdout); // the PF named: the same

        // Applied on a copy, with a stand-in kernel that unbinds and removes VFs as the real one would.
        var applied = Repo.CopyCapture("vhost-sriov");
        try
        {
            string On(string address, string attribute = "") => Path.Combine(applied, "sys/bus/pci/devices", address, attribute);
            Directory.CreateDirectory(Path.Combine(applied, "run/passthru"));
            File.Copy(JournalFile, Path.Combine(applied, "run/passthru/state.json"));
            SysfsShaper.Rebind(applied, "0000:03:00.1", "vfio-pci");
            File.WriteAllText(On(Pf, "sriov_drivers_autoprobe"), "0\n");
            using (var kernel = new SysfsShaper.Kernel(applied, new Dictionary<string, string>()))
            {
                var done = CliRunner.Run("restore", "--root", applied);
                Assert.True(done.ExitCode == 0, done.Stderr);
                Assert.Equal("gave 0000:03:00.1 back to no driver\ngave 0000:03:00.2 back to no driver\nput 0000:03:00.0 back to 0 VFs (removed 0000:03:00.1, 0000:03:00.2)\n", done.Stdout);
                Assert.Equal(["unbind 0000:03:00.1 vfio-pci", "remove 0000:03:00.1", "remove 0000:03:00.2"], kernel.Done);
            }
            // The VFs given back (03:00.1 left vfio-pci before it went), then gone with the count; autoprobe as it was.
            Assert.Equal("1", File.ReadAllText(On(Pf, "sriov_drivers_autoprobe")).Trim());
            Assert.Equal("0", File.ReadAllText(On(Pf, "sriov_numvfs")).Trim());
            Assert.Empty(Directory.GetFileSystemEntries(On(Pf), "virtfn*"));
            Assert.False(Path.Exists(On("0000:03:00.1")));
            Assert.False(Path.Exists(On("0000:03:00.2")));
            Assert.Equal("nvme", Path.GetFileName(new FileInfo(On(Pf, "driver")).LinkTarget));   // the PF kept its driver
            Assert.False(File.Exists(Path.Combine(applied, "run/passthru/state.json")));        // nothing left to restore
        }
        finally { Directory.Delete(applied, true); }
        // Only the count changed (no --bind): restore is the count alone.
        File.WriteAllText(JournalFile, """
            {"version": 1, "functions": [],
             "sriov": [{"pf": "0000:03:00.0", "original_numvfs": 1, "original_autoprobe": null, "created": ["0000:03:00.1", "0000:03:00.2"]}]}
            """);
        Assert.Equal("plan (give back):\n   1. write 0 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs\n   2. write 1 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs\n   3. check 0000:03:00.0 has 1 VF\n",
            CliRunner.Run("restore", "--dry-run", "--root", _tree).Stdout);
    }

    [Fact]
    public void The_journal_keeps_VF_counts_and_reads_journals_written_before_them()
    {
        var dir = Path.GetDirectoryName(JournalFile)!;
        Directory.CreateDirectory(dir);
        File.WriteAllText(JournalFile, """{"version": 1, "functions": [{"address": "0000:00:02.0", "driver": "e1000e", "driver_override": null, "group": 2}]}""");
        var old = Journal.Load(dir);
        Assert.Empty(old.Sriov);
        Assert.Equal("e1000e", old.Find(PciAddress.Parse("0000:00:02.0"))!.Driver);

        var pf = PciAddress.Parse(Pf);
        old.Record(new SriovState(pf, 0, "1", [PciAddress.Parse("0000:03:00.1")]));
        old.Record(new SriovState(pf, 1, null, [PciAddress.Parse("0000:03:00.1"), PciAddress.Parse("0000:03:00.2")])); // a second change keeps the first original
        old.Save();
        var again = Journal.Load(dir).FindSriov(pf)!;
        Assert.Equal(0, again.OriginalCount);
        Assert.Equal("1", again.OriginalAutoprobe);
        Assert.Equal(["0000:03:00.1", "0000:03:00.2"], again.Created.Select(a => a.ToString()));
    }

    [Fact]
    public void List_names_each_VFs_physical_function_and_show_the_PFs_counts()
    {
        var list = CliRunner.OnCapture("vhost-sriov", "list");
        Assert.Contains("0000:03:00.0 Non-Volatile memory controller [0108]: Red Hat, Inc. QEMU NVM Express Controller [1b36:0010] (rev 02)  driver=nvme group=10\n", list.Stdout);
        Assert.Contains("0000:03:00.1 Non-Volatile memory controller [0108]: Red Hat, Inc. QEMU NVM Express Controller [1b36:0010] (rev 02)  driver=none group=11 physfn=0000:03:00.0\n", list.Stdout);
        Assert.Contains("0000:03:00.2 Non-Volatile memory controller [0108]: Red Hat, Inc. QEMU NVM Express Controller [1b36:0010] (rev 02)  driver=none group=12 physfn=0000:03:00.0\n", list.Stdout);
        Assert.Contains("  SR-IOV:          physical function: 2 of 2 VFs enabled (0000:03:00.1, 0000:03:00.2); set with `passthru vfs 0000:03:00.0 --count N`\n",
            CliRunner.OnCapture("vhost-sriov", "show", "03:00.0").Stdout);
        Assert.Contains("  SR-IOV:          virtual function of 0000:03:00.0\n", CliRunner.OnCapture("vhost-sriov", "show", "03:00.2").Stdout);

        using var pf = System.Text.Json.JsonDocument.Parse(CliRunner.OnCapture("vhost-sriov", "show", "03:00.0", "--json").Stdout);
        Assert.Equal(2, pf.RootElement.GetProperty("sriov_totalvfs").GetInt32());
        Assert.Equal(2, pf.RootElement.GetProperty("sriov_numvfs").GetInt32());
        Assert.Equal(["0000:03:00.1", "0000:03:00.2"], pf.RootElement.GetProperty("virtfns").EnumerateArray().Select(e => e.GetString()));
        using var vf = System.Text.Json.JsonDocument.Parse(CliRunner.OnCapture("vhost-sriov", "show", "03:00.1", "--json").Stdout);
        Assert.Equal("0000:03:00.0", vf.RootElement.GetProperty("physfn").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, vf.RootElement.GetProperty("sriov_totalvfs").ValueKind);
        using var listed = System.Text.Json.JsonDocument.Parse(CliRunner.OnCapture("vhost-sriov", "list", "--json").Stdout);
        var devices = listed.RootElement.GetProperty("devices").EnumerateArray().ToDictionary(d => d.GetProperty("address").GetString()!, d => d.GetProperty("physfn"));
        Assert.Equal("0000:03:00.0", devices["0000:03:00.2"].GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, devices["0000:03:00.0"].ValueKind);
    }
}
