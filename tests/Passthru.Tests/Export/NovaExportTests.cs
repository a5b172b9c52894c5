using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Passthru.Export;
using Passthru.Host;
using Passthru.Pci;
using Passthru.Tests.Support;

namespace Passthru.Tests.Export;

/// <summary>
/// `export nova` read by Nova's own code (python3-nova, nova_pci.py): oslo.config parses the section with Nova's option
/// definitions, nova.pci.whitelist/devspec match the device_spec against every function of the tree, nova.pci.request
/// parses the alias and the flavor property. Broken sections must be rejected by the same code.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed class NovaExportTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("passthru-nova-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static string Script => Path.Combine(Repo.Root, "tests/Passthru.Tests/Export/nova_pci.py");

    /// <summary>Every endpoint function of the tree, as Nova's libvirt driver reports a node's devices.</summary>
    private static JsonArray NodeDevices(string tree) => new(PciInventory.Load(new HostRoot(tree)).Devices.Where(d => d.IsEndpoint).Select(d => (JsonNode)new JsonObject
    {
        ["address"] = d.Address.ToString(),
        ["vendor_id"] = $"{d.VendorId:x4}",
        ["product_id"] = $"{d.DeviceId:x4}",
        ["dev_type"] = NovaExport.DeviceType(FleetNames.Role(d)),
        ["parent_addr"] = d.PhysicalFunction?.ToString(),
    }).ToArray());

    /// <summary>What Nova makes of an exported section: its error, or which functions it offers and how the flavor's aliases resolve.</summary>
    private JsonObject Nova(string conf, string tree)
    {
        var flavor = Regex.Match(conf, "--property \"pci_passthrough:alias\"=\"([^\"]+)\"");
        Assert.True(flavor.Success, "no flavor command in:\n" + conf);
        var confFile = Path.Combine(_dir, $"nova-{Guid.NewGuid():n}.conf");
        var requestFile = Path.Combine(_dir, "request.json");
        File.WriteAllText(confFile, conf);
        File.WriteAllText(requestFile, new JsonObject { ["sysfs_root"] = tree, ["devices"] = NodeDevices(tree), ["flavor_alias"] = flavor.Groups[1].Value }.ToJsonString());
        var r = Repo.Exec("/usr/bin/python3", Script, confFile, requestFile);
        Assert.True(r.ExitCode == 0, "nova_pci.py failed (scripts/install-deps.sh installs python3-nova): " + r.Stderr);
        return JsonNode.Parse(r.Stdout)!.AsObject();
    }

    private static string[] Strings(JsonNode? array) => array!.AsArray().Select(a => (string)a!).ToArray();

    [Fact]
    public void Nova_offers_exactly_the_chosen_functions_and_the_flavor_asks_for_them()
    {
        var r = CliRunner.OnCapture("vhost", "export", "nova", "--device", "00:02.0", "--device", "00:04.0", "--device", "02:01.0", "--group", "--flavor", "bf.passthru");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var nova = Nova(r.Stdout, Repo.Capture("vhost"));
        Assert.True(nova["error"] is null, (string?)nova["error"]);
        // Not 00:03.0, the twin of 00:02.0 with the same IDs: device_spec names addresses.
        Assert.Equal(["0000:00:02.0", "0000:00:04.0", "0000:02:01.0", "0000:02:02.0"], Strings(nova["assignable"]));
        Assert.Equal(["ethernet-8086-10d3", "nvme-1b36-0010", "ethernet-8086-100e"], nova["aliases"]!.AsObject().Select(a => a.Key));
        Assert.Equal("type-PCI", (string?)nova["aliases"]!["nvme-1b36-0010"]!["specs"]![0]!["dev_type"]);
        Assert.Equal(["0000:00:04.0"], Strings(nova["alias_matches"]!["nvme-1b36-0010"]));
        Assert.Equal(["0000:02:01.0", "0000:02:02.0"], Strings(nova["alias_matches"]!["ethernet-8086-100e"]));
        Assert.Equal(["ethernet-8086-10d3:1", "nvme-1b36-0010:1", "ethernet-8086-100e:2"],
            nova["requests"]!.AsArray().Select(q => $"{q!["alias_name"]}:{q["count"]}"));
        Assert.Contains("#   openstack flavor set bf.passthru --property \"pci_passthrough:alias\"=\"ethernet-8086-10d3:1,nvme-1b36-0010:1,ethernet-8086-100e:2\"\n", r.Stdout);
        Assert.Contains("# The alias lines go in nova.conf on the API nodes (nova-api) too", r.Stdout);
        Assert.Contains("passthru setup --device 0000:00:02.0 --device 0000:00:04.0 --device 0000:02:01.0 --device 0000:02:02.0 --apply", r.Stdout);
        Assert.Contains("note: 0000:02:01.0 and 0000:02:02.0 are both 8086:100e: the flavor asks for 2 of alias ethernet-8086-100e", r.Stderr);
    }

    [Fact]
    public void An_sriov_pf_and_vf_get_their_device_types_and_the_pf_spec_does_not_take_its_vfs()
    {
        var tree = Repo.CopyCapture("vhost");
        try
        {
            // 00:02.0 made a physical function with one virtual function, 00:03.0 (an 82576 VF's IDs), as sysfs links them.
            var devices = Path.Combine(tree, "sys/bus/pci/devices");
            File.WriteAllText(Path.Combine(devices, "0000:00:02.0/sriov_totalvfs"), "7\n");
            File.CreateSymbolicLink(Path.Combine(devices, "0000:00:02.0/virtfn0"), "../0000:00:03.0");
            File.Delete(Path.Combine(devices, "0000:00:03.0/modalias")); // the IDs from the device file, then
            File.WriteAllText(Path.Combine(devices, "0000:00:03.0/device"), "0x10ca\n");
            File.CreateSymbolicLink(Path.Combine(devices, "0000:00:03.0/physfn"), "../0000:00:02.0");

            var both = CliRunner.Run("--root", tree, "export", "nova", "--device", "00:02.0", "--device", "00:03.0");
            Assert.True(both.ExitCode == 0, both.Stderr);
            Assert.Contains("alias = {\"name\": \"ethernet-8086-10d3-pf\", \"vendor_id\": \"8086\", \"product_id\": \"10d3\", \"device_type\": \"type-PF\"}\n", both.Stdout);
            Assert.Contains("alias = {\"name\": \"ethernet-8086-10ca-vf\", \"vendor_id\": \"8086\", \"product_id\": \"10ca\", \"device_type\": \"type-VF\"}\n", both.Stdout);
            var nova = Nova(both.Stdout, tree);
            Assert.True(nova["error"] is null, (string?)nova["error"]);
            Assert.Equal(["0000:00:02.0", "0000:00:03.0"], Strings(nova["assignable"]));
            Assert.Equal(["0000:00:02.0"], Strings(nova["alias_matches"]!["ethernet-8086-10d3-pf"]));
            Assert.Equal(["0000:00:03.0"], Strings(nova["alias_matches"]!["ethernet-8086-10ca-vf"]));

            // A PF's address alone would offer its VFs too (Nova matches a VF by its parent's address); the product ID keeps it to the PF.
            var pf = CliRunner.Run("--root", tree, "export", "nova", "--device", "00:02.0");
            Assert.Equal(["0000:00:02.0"], Strings(Nova(pf.Stdout, tree)["assignable"]));
            var addressOnly = Nova(Regex.Replace(pf.Stdout, ", \"vendor_id\": \"8086\", \"product_id\": \"10d3\"}", "}"), tree);
            Assert.Equal(["0000:00:02.0", "0000:00:03.0"], Strings(addressOnly["assignable"]));
        }
        finally { Directory.Delete(tree, true); }
    }

    [Theory]
    [InlineData("\"product_id\": \"10d3\"}", "\"product_id\": \"10dz\"}", "PciConfigInvalidSpec")]
    [InlineData("\"address\": \"0000:00:02.0\"", "\"address\": \"0000:00:02.0.1\"", "PciConfigInvalidSpec")]
    [InlineData("\"device_type\": \"type-PCI\"", "\"device_type\": \"type-GPU\"", "PciInvalidAlias")]
    [InlineData("alias = {\"name\": \"ethernet-8086-10d3\", ", "alias = {\"nmae\": \"ethernet-8086-10d3\", ", "PciInvalidAlias")]
    public void Nova_rejects_a_broken_section(string good, string broken, string error)
    {
        var r = CliRunner.OnCapture("vhost", "export", "nova", "--device", "00:02.0");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains(good, r.Stdout);
        Assert.True(Nova(r.Stdout, Repo.Capture("vhost"))["error"] is null);
        var nova = Nova(r.Stdout.Replace(good, broken), Repo.Capture("vhost"));
        Assert.StartsWith(error + ":", (string?)nova["error"]);
    }

    [Theory]
    [InlineData(new string[0], "passthru: export nova needs --device ADDRESS (repeatable)")]
    [InlineData(new[] { "--device", "00:02.0,rombar=0" }, "passthru: --device '00:02.0,rombar=0': Nova's PCI passthrough has no rombar, romfile or x-vga setting")]
    [InlineData(new[] { "--device", "07:00.0" }, "passthru: no PCI function at 07:00.0")]
    [InlineData(new[] { "--device", "8086:10d3" }, "passthru: 8086:10d3 matches 2 functions (0000:00:02.0, 0000:00:03.0): name one by its address")]
    [InlineData(new[] { "--device", "02:01.0" }, "passthru: IOMMU group 8 of 0000:02:01.0 also holds 0000:02:02.0 (e1000): a group passes through whole; add --group")]
    [InlineData(new[] { "--device", "00:02.0", "--flavor", "" }, "passthru: --flavor '': give the name")]
    public void Bad_input_is_one_line_and_exit_2(string[] args, string message)
    {
        var target = Path.Combine(_dir, "never.conf");
        var r = CliRunner.OnCapture("vhost", ["export", "nova", .. args, "-o", target]);
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith(message, r.Stderr);
        Assert.Equal(1, r.Stderr.Count(c => c == '\n'));
        Assert.False(File.Exists(target));
    }
}
