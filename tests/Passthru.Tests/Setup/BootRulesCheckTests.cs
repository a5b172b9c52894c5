using System.Text;
using Passthru.Tests.Support;

namespace Passthru.Tests.Setup;

/// <summary>
/// `check` on the udev rules `setup` wrote (tests/captures/vhost-sriov, the NVMe PF at 03:00.0 with two VFs at most):
/// nothing said where setup wrote none, PASS for this release's rules, WARN with the fix for rules an older release
/// wrote (as 2026-12-03's setup wrote them, byte for byte) and for a file someone edited.
/// </summary>
public sealed class BootRulesCheckTests
{
    private static ScratchHost Host() =>
        ScratchHost.DebianGrub(Encoding.UTF8.GetBytes("GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\"\nGRUB_CMDLINE_LINUX=\"\"\n"), "vhost-sriov");

    private static CliResult Check(ScratchHost host) => CliRunner.Run(["check", "--root", host.Root]);

    /// <summary>The finding's line and the one after it (its fix, when it has one); null when check has no such finding.</summary>
    private static string? RulesLine(CliResult r)
    {
        var lines = r.Stdout.Split('\n');
        int at = Array.FindIndex(lines, l => l.Contains("Boot-time udev rules"));
        return at < 0 ? null : string.Join('\n', lines.Skip(at).Take(2));
    }

    [Fact]
    public void A_host_where_setup_wrote_no_rule_gets_no_finding()
    {
        using var host = Host();
        Assert.Null(RulesLine(Check(host)));
    }

    [Fact]
    public void The_rules_this_release_writes_pass()
    {
        using var host = Host();
        Assert.Equal(0, host.Setup("--vfs", "03:00.0=2", "--device", "03:00.2", "--apply").ExitCode);
        var line = RulesLine(Check(host));
        Assert.NotNull(line);
        Assert.StartsWith("PASS", line);
        Assert.Contains("39-passthru-sriov.rules", line);
        Assert.Contains("40-passthru-vfio-pci.rules", line);
    }

    [Fact]
    public void Rules_an_older_release_wrote_warn_and_setup_apply_brings_them_up_to_date()
    {
        using var host = Host();
        // What setup wrote before 2026-12-04 for --vfs 03:00.0=2 --device 03:00.2: the VF made with autoprobe on, and
        // probed only when a driver held it.
        host.With("etc/udev/rules.d/39-passthru-sriov.rules",
            "# Written by passthru setup (undo: passthru setup --undo): these physical functions get their VFs at boot.\n"
            + "ACTION==\"bind\", SUBSYSTEM==\"pci\", KERNEL==\"0000:03:00.0\", DRIVER!=\"vfio-pci\", ATTR{sriov_numvfs}=\"2\"\n");
        host.With("etc/udev/rules.d/40-passthru-vfio-pci.rules",
            "# Written by passthru setup (undo: passthru setup --undo): these functions go to vfio-pci at boot, by address.\n"
            + "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:03:00.2\", ATTR{driver_override}=\"vfio-pci\"\n"
            + "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:03:00.2\", TEST==\"driver\", ATTR{driver/unbind}=\"%k\", ATTR{subsystem/drivers_probe}=\"%k\"\n");
        var before = host.Snapshot();
        var r = Check(host);
        Assert.Equal(before, host.Snapshot()); // check only looks
        var line = RulesLine(r);
        Assert.NotNull(line);
        Assert.StartsWith("WARN", line);
        Assert.Contains("39-passthru-sriov.rules", line);
        Assert.Contains("40-passthru-vfio-pci.rules", line);
        Assert.Contains("written by an older passthru setup", line);
        Assert.Contains("fix: passthru setup --apply rewrites them, keeping its devices", line);

        Assert.Equal(0, host.Setup("--apply").ExitCode);
        Assert.StartsWith("PASS", RulesLine(Check(host)));
        Assert.Contains("ATTR{driver_override}=\"vfio-pci\"", host.Read("etc/udev/rules.d/40-passthru-vfio-pci.rules")); // the VF still claimed
        Assert.Contains("ATTR{sriov_drivers_autoprobe}=\"0\"", host.Read("etc/udev/rules.d/39-passthru-sriov.rules"));
    }

    [Fact]
    public void A_line_setup_did_not_write_warns_naming_it()
    {
        using var host = Host();
        Assert.Equal(0, host.Setup("--device", "00:03.0", "--apply").ExitCode);
        host.With("etc/udev/rules.d/40-passthru-vfio-pci.rules", host.Read("etc/udev/rules.d/40-passthru-vfio-pci.rules") + "SUBSYSTEM==\"net\", RUN+=\"/bin/true\"\n");
        var line = RulesLine(Check(host));
        Assert.NotNull(line);
        Assert.StartsWith("WARN", line);
        Assert.Contains("unexpected line 'SUBSYSTEM==\"net\", RUN+=\"/bin/true\"'", line);
    }
}
