using System.Text.Json;
using Passthru.Tests.Support;

namespace Passthru.Tests.Discovery;

public class ListTests
{
    /// <summary>lspci itself, reading the same captured tree with the same pci.ids, is the reference.</summary>
    public static string[] LspciOnCapture(string capture, params string[] extra)
    {
        // Names from pci.ids alone, as Passthru reads them: libpci would also look in udev's hwdb where one is installed.
        var r = Repo.Exec("lspci", ["-D", "-nn", ..extra, "-i", Repo.SystemPciIds, "-O", "hwdb.disable=1", "-A", "linux-sysfs", "-O", $"sysfs.path={Repo.Capture(capture)}/sys/bus/pci"]);
        Assert.True(r.ExitCode == 0, "lspci failed: " + r.Stderr);
        return r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    [Theory]
    [InlineData("devvm")]
    [InlineData("vhost-sriov")]
    public void Lines_begin_exactly_as_lspci_Dnn_on_the_same_tree(string capture)
    {
        var lspci = LspciOnCapture(capture);
        var ours = CliRunner.OnCapture(capture, "list");
        Assert.Equal(0, ours.ExitCode);
        Assert.Equal(lspci, ours.Lines.Select(l => l[..l.IndexOf("  driver=", StringComparison.Ordinal)]));
    }

    [Theory]
    [InlineData("devvm")]
    public void Drivers_agree_with_lspci_k(string capture)
    {
        // lspci -k prints "\tKernel driver in use: NAME" under each function that has one.
        var expected = new Dictionary<string, string>();
        string? current = null;
        foreach (var line in LspciOnCapture(capture, "-k"))
        {
            if (!line.StartsWith('\t')) current = line[..12];
            else if (line.StartsWith("\tKernel driver in use: ", StringComparison.Ordinal)) expected[current!] = line["\tKernel driver in use: ".Length..];
        }
        foreach (var line in CliRunner.OnCapture(capture, "list").Lines)
        {
            var driver = line[(line.IndexOf("driver=", StringComparison.Ordinal) + 7)..].Split(' ')[0];
            Assert.Equal(expected.GetValueOrDefault(line[..12], "none"), driver);
        }
    }

    [Fact]
    public void Exact_output_on_the_dev_vm_capture_says_once_that_groups_are_absent()
    {
        var r = CliRunner.OnCapture("devvm", "list");
        Assert.Equal("""
            0000:00:00.0 Host bridge [0600]: Intel Corporation Device [8086:0d57]  driver=none
            0000:00:01.0 Unassigned class [ffff]: Red Hat, Inc. Virtio 1.0 memory balloon [1af4:1045] (rev 01)  driver=virtio-pci
            0000:00:02.0 Mass storage controller [0180]: Red Hat, Inc. Virtio 1.0 block device [1af4:1042] (rev 01)  driver=virtio-pci
            0000:00:03.0 Ethernet controller [0200]: Red Hat, Inc. Virtio 1.0 network device [1af4:1041] (rev 01)  driver=virtio-pci
            0000:00:04.0 Unassigned class [ffff]: Red Hat, Inc. Virtio 1.0 socket [1af4:1053] (rev 01)  driver=virtio-pci
            0000:00:05.0 Unassigned class [ffff]: Red Hat, Inc. Virtio 1.0 RNG [1af4:1044] (rev 01)  driver=virtio-pci

            """, r.Stdout);
        Assert.Equal("note: this host has no IOMMU groups: the IOMMU is off or absent, so no device can be passed through (see `passthru check`)\n", r.Stderr);
    }

    [Theory]
    [InlineData("--class", "net", new[] { "0000:00:03.0" })]
    [InlineData("--class", "0180", new[] { "0000:00:02.0" })]
    [InlineData("--class", "01", new[] { "0000:00:02.0" })]
    [InlineData("--class", "bridge", new[] { "0000:00:00.0" })]
    [InlineData("--vendor", "8086", new[] { "0000:00:00.0" })]
    [InlineData("--vendor", "red hat", new[] { "0000:00:01.0", "0000:00:02.0", "0000:00:03.0", "0000:00:04.0", "0000:00:05.0" })]
    [InlineData("--driver", "none", new[] { "0000:00:00.0" })]
    [InlineData("--driver", "e1000e", new string[0])]
    public void Filters_select_functions(string option, string value, string[] expected)
    {
        var r = CliRunner.OnCapture("devvm", "list", option, value);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(expected, r.Lines.Select(l => l[..12]));
    }

    [Fact]
    public void Unknown_class_is_a_usage_error()
    {
        var r = CliRunner.OnCapture("devvm", "list", "--class", "toaster");
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("passthru: --class 'toaster' is not a class: use one of storage, net,", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void Json_follows_the_documented_schema()
    {
        var r = CliRunner.OnCapture("devvm", "list", "--json", "--class", "net");
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal(1, root.GetProperty("schema").GetInt32());
        Assert.False(root.GetProperty("iommu_groups_present").GetBoolean());
        var d = Assert.Single(root.GetProperty("devices").EnumerateArray());
        Assert.Equal("""
            {"address":"0000:00:03.0","vendor_id":"1af4","device_id":"1041","vendor_name":"Red Hat, Inc.","device_name":"Virtio 1.0 network device","class":"0200","prog_if":"00","class_name":"Ethernet controller","revision":"01","subsystem_vendor_id":"1af4","subsystem_device_id":"1041","driver":"virtio-pci","driver_override":null,"iommu_group":null,"is_bridge":false,"physfn":null}
            """, JsonSerializerCompact(d));
        Assert.Empty(root.GetProperty("groups").EnumerateArray());
    }

    internal static string JsonSerializerCompact(JsonElement e)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms)) e.WriteTo(w);
        return System.Text.Encoding.UTF8.GetString(ms.ToArray());
    }

    [Fact]
    public void Without_a_pci_ids_file_ids_are_numeric_as_lspci_prints_them()
    {
        var empty = Path.GetTempFileName();
        try
        {
            File.WriteAllText(empty, "# no entries\n");
            var r = CliRunner.Run("list", "--root", Repo.Capture("devvm"), "--pci-ids", empty);
            var lspci = Repo.Exec("lspci", "-D", "-nn", "-i", empty, "-O", "hwdb.disable=1", "-A", "linux-sysfs", "-O", $"sysfs.path={Repo.Capture("devvm")}/sys/bus/pci");
            Assert.Equal(lspci.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), r.Lines.Select(l => l[..l.IndexOf("  driver=", StringComparison.Ordinal)]));
            Assert.Contains("0000:00:03.0 Class [0200]: Device [1af4:1041] (rev 01)  driver=virtio-pci", r.Lines);
        }
        finally { File.Delete(empty); }
    }
}
