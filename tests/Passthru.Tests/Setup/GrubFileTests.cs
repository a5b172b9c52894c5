using System.Text;
using Passthru.Tests.Support;

namespace Passthru.Tests.Setup;

/// <summary>
/// Editing real GRUB defaults files: the stock files of Debian's packages, fetched at test time, and hand-written
/// odd ones (tests/fixtures/setup). Each is applied on a scratch host and compared byte for byte; the printed diff
/// must apply with patch(1) to the same result; undo must give back the original bytes.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public class GrubFileTests
{
    [Fact]
    public void Debian_grub2_common_stock_file_gets_the_parameters_in_its_default_line()
    {
        var stock = DebianPackage.File("grub2-common", "usr/share/grub/default/grub");
        var expected = Encoding.UTF8.GetString(stock).Replace("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"", "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on iommu=pt\"");
        Assert.NotEqual(Encoding.UTF8.GetString(stock), expected); // the stock line is still what this test expects
        AppliesExactly(stock, expected, "quiet intel_iommu=on iommu=pt", "--iommu-pt");
    }

    [Fact]
    public void Debian_grub_cloud_stock_file_with_an_empty_default_gets_no_leading_space()
    {
        var stock = DebianPackage.File("grub-cloud-amd64", "etc/default/grub");
        var expected = Encoding.UTF8.GetString(stock).Replace("GRUB_CMDLINE_LINUX_DEFAULT=\"\"", "GRUB_CMDLINE_LINUX_DEFAULT=\"intel_iommu=on\"");
        Assert.NotEqual(Encoding.UTF8.GetString(stock), expected);
        AppliesExactly(stock, expected, "console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0 intel_iommu=on");
    }

    [Theory]
    [InlineData("odd-quoting.grub", "console=ttyS0,115200 intel_iommu=on quiet splash mitigations=auto iommu=pt")]
    [InlineData("unquoted.grub", "quiet intel_iommu=on iommu=pt")]
    [InlineData("no-default.grub", "rhgb quiet intel_iommu=on,igfx_off iommu=pt")]
    public void Hand_written_files_keep_their_quoting_comments_and_continuations(string fixture, string sourced) =>
        AppliesExactly(File.ReadAllBytes(ScratchHost.Fixture(fixture)), File.ReadAllText(ScratchHost.Fixture(fixture + ".expected")), sourced, "--iommu-pt");

    [Fact]
    public void Duplicates_are_collapsed_off_is_replaced_and_pci_stub_gives_up_the_device()
    {
        // 00:04.0 is 1af4:1053 in the dev-VM capture.
        var r = AppliesExactly(File.ReadAllBytes(ScratchHost.Fixture("duplicates.grub")), File.ReadAllText(ScratchHost.Fixture("duplicates.grub.expected")),
            "quiet iommu=pt intel_iommu=on pci-stub.ids=10de:1b80 vfio_pci.ids=10de:10f0,1af4:1053", "--iommu-pt", "--device", "00:04.0");
        Assert.Contains("  remove intel_iommu=off: duplicate: the kernel uses only the last one\n", r.Stdout);
        Assert.Contains("  replace intel_iommu=off with intel_iommu=on: turns on the Intel IOMMU (VT-d), which vfio needs\n", r.Stdout);
        Assert.Contains("  replace pci-stub.ids=1af4:1053,10de:1b80 with pci-stub.ids=10de:1b80: pci-stub would hold the device first", r.Stdout);
    }

    [Fact]
    public void Bytes_that_are_not_UTF8_survive_an_edit()
    {
        var latin1 = Encoding.Latin1.GetBytes("# Fran\u00e7ais en Latin-1\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n");
        using var host = ScratchHost.DebianGrub(latin1);
        Assert.Equal(0, host.Setup("--apply").ExitCode);
        Assert.Equal(Encoding.Latin1.GetBytes("# Fran\u00e7ais en Latin-1\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\"\n"), host.Bytes("etc/default/grub"));
    }

    [Theory]
    [InlineData("malformed-unterminated.grub", "etc/default/grub:1: cannot edit GRUB_CMDLINE_LINUX_DEFAULT: unterminated double quote; fix the line by hand and run passthru setup again")]
    [InlineData("malformed-substitution.grub", "etc/default/grub:1: cannot edit GRUB_CMDLINE_LINUX_DEFAULT: command substitution in '$(cat'; fix the line by hand and run passthru setup again")]
    [InlineData("malformed-trailing.grub", "etc/default/grub:1: cannot edit GRUB_CMDLINE_LINUX_DEFAULT: text after the closing quote (use one quoted string); fix the line by hand and run passthru setup again")]
    public void Malformed_lines_are_one_clear_error_and_nothing_is_written(string fixture, string error)
    {
        using var host = ScratchHost.DebianGrub(File.ReadAllBytes(ScratchHost.Fixture(fixture)));
        var before = host.Snapshot();
        var r = host.Setup("--apply");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"passthru: {error}\n", r.Stderr);
        Assert.Equal(before, host.Snapshot());
    }

    [Fact]
    public void A_drop_in_that_sets_the_default_line_last_is_the_one_edited()
    {
        // Ubuntu's cloud images set GRUB_CMDLINE_LINUX_DEFAULT again in etc/default/grub.d/50-cloudimg-settings.cfg.
        using var host = ScratchHost.DebianGrub(Encoding.UTF8.GetBytes("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet splash\"\n"))
            .With("etc/default/grub.d/50-cloudimg-settings.cfg", "GRUB_CMDLINE_LINUX_DEFAULT=\"console=tty1 console=ttyS0\"\n");
        Assert.Equal(0, host.Setup("--apply").ExitCode);
        Assert.Equal("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet splash\"\n", host.Read("etc/default/grub"));
        Assert.Equal("GRUB_CMDLINE_LINUX_DEFAULT=\"console=tty1 console=ttyS0 intel_iommu=on\"\n", host.Read("etc/default/grub.d/50-cloudimg-settings.cfg"));
    }

    /// <summary>
    /// Plan, check the diff with patch(1), apply, compare, check what the shell makes of the file (as grub-mkconfig
    /// sources it), plan again (nothing), undo (original bytes).
    /// </summary>
    private static CliResult AppliesExactly(byte[] original, string expected, string sourced, params string[] args)
    {
        using var host = ScratchHost.DebianGrub(original);
        var before = host.Snapshot();
        var plan = host.Setup(args);
        Assert.Equal(0, plan.ExitCode);
        Assert.Equal(before, host.Snapshot()); // a plan changes nothing
        Assert.Equal(expected, PatchedGrub(original, plan.Stdout));

        var apply = host.Setup([.. args, "--apply"]);
        Assert.True(apply.ExitCode == 0, apply.Stderr);
        Assert.Equal(expected, host.Read("etc/default/grub"));
        Assert.Equal(sourced, KernelLine(Path.Combine(host.Root, "etc/default/grub")));
        Assert.Contains("not run (the host root is not /): update-grub\n", apply.Stdout);

        var again = host.Setup(args);
        Assert.Contains("Nothing to change", again.Stdout);
        var snapshot = host.Snapshot();
        Assert.Contains("Nothing to change", host.Setup([.. args, "--apply"]).Stdout);
        Assert.Equal(snapshot, host.Snapshot());

        var undo = host.Setup("--undo");
        Assert.True(undo.ExitCode == 0, undo.Stderr);
        Assert.Equal(original, host.Bytes("etc/default/grub"));
        Assert.Equal(before, host.Snapshot());
        return plan;
    }

    /// <summary>The kernel's words as grub-mkconfig builds them: the file sourced by sh, LINUX then LINUX_DEFAULT.</summary>
    private static string KernelLine(string file)
    {
        var (code, stdout, stderr) = Repo.Exec("sh", "-c", ". \"$1\" 2>/dev/null; echo $GRUB_CMDLINE_LINUX $GRUB_CMDLINE_LINUX_DEFAULT", "sh", file);
        Assert.True(code == 0, $"sh could not source {file}: {stderr}");
        return string.Join(' ', stdout.Split((char[])[' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>The grub file's part of the printed plan, applied with patch -p1 to a copy of the original.</summary>
    private static string PatchedGrub(byte[] original, string planText)
    {
        int start = planText.IndexOf("--- a/etc/default/grub\n", StringComparison.Ordinal);
        Assert.True(start >= 0, planText);
        int end = planText.IndexOf("\n\n", start, StringComparison.Ordinal);
        var diff = planText[start..(end + 1)];
        var dir = Directory.CreateTempSubdirectory("passthru-patch-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "etc/default"));
            File.WriteAllBytes(Path.Combine(dir, "etc/default/grub"), original);
            File.WriteAllText(Path.Combine(dir, "plan.diff"), diff);
            var (code, stdout, stderr) = Repo.Exec("patch", "-d", dir, "-p1", "--no-backup-if-mismatch", "-i", Path.Combine(dir, "plan.diff"));
            Assert.True(code == 0, $"patch failed: {stdout}{stderr}\n{diff}");
            return File.ReadAllText(Path.Combine(dir, "etc/default/grub"));
        }
        finally { Directory.Delete(dir, true); }
    }
}
