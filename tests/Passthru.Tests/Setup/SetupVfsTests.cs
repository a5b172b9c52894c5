using System.Text;
using Passthru.Tests.Support;

namespace Passthru.Tests.Setup;

/// <summary>
/// `setup --vfs PF=N` on the SR-IOV virtual host's capture (tests/captures/vhost-sriov: the NVMe PF 0000:03:00.0,
/// sriov_totalvfs 2): a udev rule creates the VFs when the PF's driver binds at boot; --device naming a VF claims it
/// by address like any function; --undo removes it all.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed class SetupVfsTests
{
    private static ScratchHost Host() =>
        ScratchHost.DebianGrub(Encoding.UTF8.GetBytes("GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\"\nGRUB_CMDLINE_LINUX=\"\"\n"), "vhost-sriov");

    private const string Rules = "etc/udev/rules.d/39-passthru-sriov.rules";

    [Fact]
    public void VFs_at_boot_are_a_udev_rule_on_the_PFs_bind_and_undo_removes_it()
    {
        using var host = Host();
        var before = host.Snapshot();
        var r = host.Setup("--vfs", "03:00.0=2", "--apply");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("# Written by passthru setup (undo: passthru setup --undo): these physical functions get their VFs at boot.\n"
            + "ACTION==\"bind\", SUBSYSTEM==\"pci\", KERNEL==\"0000:03:00.0\", DRIVER!=\"vfio-pci\", ATTR{sriov_numvfs}=\"2\"\n", host.Read(Rules));
        Assert.False(host.Exists("etc/udev/rules.d/40-passthru-vfio-pci.rules")); // no VF named: none goes to vfio-pci
        // A second run with another count replaces it; the same again changes nothing.
        Assert.Equal(0, host.Setup("--vfs", "0000:03:00.0=1", "--apply").ExitCode);
        Assert.EndsWith("ATTR{sriov_numvfs}=\"1\"\n", host.Read(Rules));
        Assert.Contains("Nothing to change", host.Setup("--vfs", "03:00.0=1").Stdout);

        Assert.Equal(0, host.Setup("--undo").ExitCode);
        Assert.False(host.Exists(Rules));
        Assert.Equal(before, host.Snapshot());
    }

    [Fact]
    public void A_VF_named_with_device_goes_to_vfio_pci_at_boot_by_address()
    {
        using var host = Host();
        var r = host.Setup("--vfs", "03:00.0=2", "--device", "03:00.2");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("Note: 0000:03:00.0 gets 2 VFs at boot (0000:03:00.1, 0000:03:00.2), from a udev rule run when its driver binds", r.Stdout);
        Assert.Contains("Note: 0000:03:00.2, a VF of 0000:03:00.0 made at boot, is claimed by address (a udev rule sets its driver_override as it appears)", r.Stdout);
        Assert.Contains("+ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:03:00.2\", ATTR{driver_override}=\"vfio-pci\"\n", r.Stdout);
        Assert.DoesNotContain("KERNEL==\"0000:03:00.1\"", r.Stdout);
    }

    [Fact]
    public void A_PF_with_a_VF_named_makes_its_VFs_with_autoprobe_off_and_probes_the_others_itself()
    {
        using var host = Host();
        var before = host.Snapshot();
        var r = host.Setup("--vfs", "03:00.0=2", "--device", "03:00.2", "--apply");
        Assert.True(r.ExitCode == 0, r.Stderr);
        // The PF's driver never meets 03:00.2 before udev sets its driver_override; 03:00.1 gets what autoprobe gives.
        const string bind = "ACTION==\"bind\", SUBSYSTEM==\"pci\", KERNEL==\"0000:03:00.0\", DRIVER!=\"vfio-pci\", ";
        Assert.Equal("# Written by passthru setup (undo: passthru setup --undo): these physical functions get their VFs at boot.\n"
            + bind + "ATTR{sriov_drivers_autoprobe}=\"0\"\n"
            + bind + "ATTR{sriov_numvfs}=\"2\"\n"
            + bind + "ATTR{sriov_drivers_autoprobe}=\"1\"\n"
            + bind + "ATTR{subsystem/drivers_probe}=\"0000:03:00.1\"\n", host.Read(Rules));
        // What it wrote reads back: the same again changes nothing, naming the other VF too leaves none to probe.
        Assert.Contains("Nothing to change", host.Setup("--vfs", "03:00.0=2", "--device", "03:00.2").Stdout);
        Assert.Equal(0, host.Setup("--device", "03:00.1", "--apply").ExitCode);
        Assert.DoesNotContain("drivers_probe", host.Read(Rules));
        Assert.Contains("ATTR{sriov_drivers_autoprobe}=\"0\"", host.Read(Rules));
        Assert.Equal(0, host.Setup("--undo").ExitCode);
        Assert.Equal(before, host.Snapshot());
    }

    [Fact]
    public void A_line_setup_did_not_write_in_the_SR_IOV_rules_is_refused()
    {
        using var host = Host();
        Assert.Equal(0, host.Setup("--vfs", "03:00.0=2", "--device", "03:00.2", "--apply").ExitCode);
        host.With(Rules, host.Read(Rules) + "ACTION==\"bind\", SUBSYSTEM==\"pci\", KERNEL==\"0000:03:00.0\", DRIVER!=\"vfio-pci\", ATTR{remove}=\"1\"\n");
        var before = host.Snapshot();
        var r = host.Setup("--vfs", "03:00.0=1", "--apply");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(":6: unexpected line 'ACTION==\"bind\"", r.Stderr);
        Assert.Equal(before, host.Snapshot());
    }

    [Fact]
    public void A_VF_count_line_with_a_key_setup_did_not_write_is_refused()
    {
        // Setup rewrites the file whole: the RUN+= a user added to its line would be lost.
        using var host = Host().With(Rules,
            "ACTION==\"bind\", SUBSYSTEM==\"pci\", KERNEL==\"0000:03:00.0\", DRIVER!=\"vfio-pci\", ATTR{sriov_numvfs}=\"2\", RUN+=\"/usr/local/bin/notify %k\"\n");
        var before = host.Snapshot();
        var r = host.Setup("--vfs", "03:00.0=1", "--apply");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("39-passthru-sriov.rules:1: unexpected line 'ACTION==\"bind\"", r.Stderr);
        Assert.Equal(before, host.Snapshot());
    }

    [Theory]
    [InlineData("03:00.0", "passthru: --vfs '03:00.0': give a physical function's address and a VF count, like --vfs 0000:03:00.0=4")]
    [InlineData("1b36:0010=2", "passthru: --vfs '1b36:0010=2': give a physical function's address and a VF count, like --vfs 0000:03:00.0=4")]
    [InlineData("03:00.0=two", "passthru: --vfs '03:00.0=two': 'two' is not a VF count of 1 or more (setup --undo removes VFs made at boot)")]
    [InlineData("03:00.0=0", "passthru: --vfs '03:00.0=0': '0' is not a VF count of 1 or more (setup --undo removes VFs made at boot)")]
    [InlineData("03:00.0=3", "passthru: --vfs: 0000:03:00.0 supports at most 2 VFs (sriov_totalvfs), not 3")]
    [InlineData("00:02.0=1", "passthru: --vfs: 0000:00:02.0 is not an SR-IOV physical function (it has no SR-IOV capability: no sriov_totalvfs): it cannot have VFs")]
    [InlineData("03:00.1=1", "passthru: --vfs: 0000:03:00.1 is a virtual function (of 0000:03:00.0), not a physical function")]
    public void Bad_vfs_values_are_one_line_exit_2_and_change_nothing(string value, string error)
    {
        using var host = Host();
        var before = host.Snapshot();
        var r = host.Setup("--vfs", value, "--apply");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal(error + "\n", r.Stderr);
        Assert.Equal(before, host.Snapshot());
    }
}
