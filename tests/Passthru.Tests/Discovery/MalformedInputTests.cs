using Passthru.Tests.Support;

namespace Passthru.Tests.Discovery;

/// <summary>Every malformed input gets one clear line and a non-zero exit, never a stack trace.</summary>
public class MalformedInputTests
{
    private static void AssertOneLineError(CliResult r, int exitCode, string expected)
    {
        Assert.Equal(exitCode, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.Equal($"passthru: {expected}\n", r.Stderr);
    }

    [Theory]
    [InlineData("83:00")]
    [InlineData("0000:83:00.9")]
    [InlineData("8086")]
    [InlineData("")]
    public void Bad_device_names(string device) =>
        AssertOneLineError(CliRunner.OnCapture("devvm", "show", device), 2,
            $"'{device}' is not a PCI device: use a full address like 0000:83:00.0, a short one like 83:00.0, or vendor:device IDs like 15b3:1003");

    [Fact]
    public void Unknown_address() =>
        AssertOneLineError(CliRunner.OnCapture("devvm", "show", "83:00.0"), 2,
            "no PCI function at 83:00.0: see `passthru list` for the devices of this host");

    [Fact]
    public void Unknown_ids() =>
        AssertOneLineError(CliRunner.OnCapture("devvm", "show", "15b3:1003"), 2,
            "no PCI function has IDs 15b3:1003: see `passthru list` for the devices of this host");

    [Fact]
    public void Ids_matching_several_functions_list_the_candidates()
    {
        var tree = Repo.CopyCapture("devvm");
        try
        {
            // A twin: the same IDs at two addresses (its modalias gone, the device file gives them).
            File.Delete(Path.Combine(tree, "sys/bus/pci/devices/0000:00:04.0/modalias"));
            var dev = Path.Combine(tree, "sys/bus/pci/devices/0000:00:04.0/device");
            File.WriteAllText(dev, "0x1041\n");
            var r = CliRunner.Run("show", "1af4:1041", "--root", tree);
            AssertOneLineError(r, 2, "1af4:1041 matches 2 functions (0000:00:03.0, 0000:00:04.0): name one by its address");
        }
        finally { Directory.Delete(tree, true); }
    }

    [Fact]
    public void Root_that_is_not_a_directory() =>
        AssertOneLineError(CliRunner.Run("list", "--root", "/nonexistent/tree"), 2,
            "host root '/nonexistent/tree' is not a directory: give / or a captured tree");

    [Fact]
    public void Root_without_sysfs()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        try
        {
            AssertOneLineError(CliRunner.Run("list", "--root", dir), 1,
                $"{dir}/sys/bus/pci/devices does not exist: --root must be a Linux host's root (with sysfs mounted) or a captured tree");
        }
        finally { Directory.Delete(dir); }
    }

    [Theory]
    [InlineData("vendor", "zzzz\n", "holds 'zzzz', not a hex number up to 0xffff")]
    [InlineData("vendor", "0x123456\n", "holds '0x123456', not a hex number up to 0xffff")]
    [InlineData("class", "\u0001\u0002garbage\n", "holds '??garbage', not a hex number up to 0xffffff")]
    [InlineData("revision", "one\n", "holds 'one', not a hex number up to 0xff")]
    [InlineData("numa_node", "one\n", "holds 'one', not a decimal number", "show")]
    [InlineData("modalias", "pci:v0000zzzzd00001041sv00001AF4sd00001041bc02sc00i00\n", "holds 'pci:v0000zzzzd00001041sv00001AF4sd000010…', not a PCI modalias (pci:vVVVVVVVVdDDDDDDDDsv...sd...bc..sc..i..)")]
    [InlineData("modalias", "\u0001garbage\n", "holds '?garbage', not a PCI modalias (pci:vVVVVVVVVdDDDDDDDDsv...sd...bc..sc..i..)", "show")]
    public void Garbage_in_a_sysfs_attribute(string attribute, string content, string expected, string command = "list")
    {
        var tree = Repo.CopyCapture("devvm");
        try
        {
            var dir = Path.Combine(tree, "sys/devices/pci0000:00/0000:00:03.0");
            // The IDs and class come from modalias where the tree has one: without it, from these files.
            if (attribute is "vendor" or "device" or "class") File.Delete(Path.Combine(dir, "modalias"));
            var file = Path.Combine(dir, attribute);
            File.WriteAllText(file, content);
            AssertOneLineError(CliRunner.Run(command == "list" ? ["list", "--root", tree] : ["show", "00:03.0", "--root", tree]), 1,
                $"{tree}/sys/bus/pci/devices/0000:00:03.0/{attribute} {expected}: the tree is damaged or not sysfs");
        }
        finally { Directory.Delete(tree, true); }
    }

    [Fact]
    public void Missing_required_attribute()
    {
        var tree = Repo.CopyCapture("devvm");
        try
        {
            File.Delete(Path.Combine(tree, "sys/devices/pci0000:00/0000:00:02.0/modalias"));
            File.Delete(Path.Combine(tree, "sys/devices/pci0000:00/0000:00:02.0/class"));
            AssertOneLineError(CliRunner.Run("list", "--root", tree), 1,
                $"{tree}/sys/bus/pci/devices/0000:00:02.0/class is missing: the tree for 0000:00:02.0 is incomplete");
        }
        finally { Directory.Delete(tree, true); }
    }

    [Fact]
    public void Truncated_pci_ids()
    {
        var file = Path.GetTempFileName();
        try
        {
            var full = File.ReadAllBytes(Repo.SystemPciIds);
            File.WriteAllBytes(file, full[..(full.Length / 2)]);
            // Cut in the middle of a line almost surely; make sure of it.
            if (full[full.Length / 2 - 1] == '\n') File.AppendAllText(file, "80");
            AssertOneLineError(CliRunner.Run("list", "--root", Repo.Capture("devvm"), "--pci-ids", file), 2,
                $"pci.ids file '{file}' ends mid-line (truncated?): reinstall the pci.ids package or pass another with --pci-ids");
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void Pci_ids_that_is_not_pci_ids()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "# header\n8086  Intel Corporation\n<html>not a database</html>\n");
            AssertOneLineError(CliRunner.Run("list", "--root", Repo.Capture("devvm"), "--pci-ids", file), 2,
                $"pci.ids file '{file}' line 3 is not a vendor or class entry: the file is damaged; reinstall it or pass another with --pci-ids");
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void Missing_pci_ids_file() =>
        Assert.Equal(2, CliRunner.Run("list", "--root", Repo.Capture("devvm"), "--pci-ids", "/nonexistent/pci.ids").ExitCode);

    [Fact]
    public void Unknown_option_is_a_usage_error()
    {
        var r = CliRunner.Run("list", "--colour");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("passthru: Unrecognized command or argument '--colour'. (see passthru --help)\n", r.Stderr);
    }
}
