using System.Text.Json.Nodes;
using Passthru.Export;
using Passthru.Pci;
using Passthru.Tests.Support;

namespace Passthru.Tests.Export;

/// <summary>
/// The YAML writer read back by PyYAML (a YAML 1.1 reader, as Kubernetes' own is): every string comes back as the
/// same string, never as a boolean, number, null or date; ints and bools as such; the structure as written.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed class YamlTextTests
{
    private static JsonNode? ReadBack(string yaml)
    {
        var r = Repo.Exec("/usr/bin/python3", "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(sys.argv[1])), sys.stdout, default=str)", yaml);
        Assert.True(r.ExitCode == 0, r.Stderr + "\n" + yaml);
        return JsonNode.Parse(r.Stdout);
    }

    public static TheoryData<string> TrickyStrings => new(
    [
        "on", "Off", "yes", "NO", "y", "n", "true", "False", "null", "~", "", " ", "0x1f", "0o17", "010", "1e3", "1_000", "12:30:00",
        "8086:1520", "2001-12-14", ".inf", "-.nan", "- a", "a: b", "a #b", "#a", "'a'", "\"a\"", "a\\b", "@a", "`a", "%a", "!a", "&a", "*a",
        "|", ">", "{a}", "[a]", "a,b", "?", "a\nb", "a\tb", "tab\there", "trailing ", " leading", "caf\u00e9", "\u2028", "emoji \U0001F600", "a\u0001b",
        "console=ttyS0 quiet", "/boot/vmlinuz", "registry.example.com/guests/probe:1", "pci.passthru/ethernet-8086-10d3", "end.",
    ]);

    [Theory]
    [MemberData(nameof(TrickyStrings))]
    public void A_string_reads_back_as_the_same_string(string value)
    {
        var yaml = YamlText.Write([([], new YamlMap { ["key"] = value, ["list"] = new YamlList { value }, [value.Length == 0 ? "k" : value] = 1 })]);
        var doc = ReadBack(yaml)![0]!;
        Assert.Equal(value, (string?)doc["key"]);
        Assert.Equal(value, (string?)doc["list"]![0]);
        Assert.Equal(1, (int)doc[value.Length == 0 ? "k" : value]!);
    }

    [Fact]
    public void Structure_numbers_bools_empty_collections_and_comments_read_back()
    {
        var yaml = YamlText.Write(
        [
            (["first # document", ""], new YamlMap { ["a"] = 1, ["b"] = true, ["c"] = new YamlMap(), ["d"] = new YamlList(), ["skipped"] = null }),
            ([], new YamlMap
            {
                ["list"] = new YamlList { new YamlMap { ["x"] = 1, ["y"] = new YamlMap { ["z"] = "w" } }, "s", new YamlList { 1, 2 }, new YamlMap() },
            }),
        ]);
        Assert.StartsWith("---\n# first # document\n#\na: 1\n", yaml);
        var docs = ReadBack(yaml)!.AsArray();
        Assert.Equal("""{"a":1,"b":true,"c":{},"d":[]}""", docs[0]!.ToJsonString());
        Assert.Equal("""{"list":[{"x":1,"y":{"z":"w"}},"s",[1,2],{}]}""", docs[1]!.ToJsonString());
    }

    [Theory]
    [InlineData(0x020000, 0x8086, 0x10d3, null, null, "ethernet-8086-10d3")]
    [InlineData(0x010802, 0x1b36, 0x0010, null, null, "nvme-1b36-0010")]
    [InlineData(0x030000, 0x10de, 0x1eb8, null, null, "gpu-10de-1eb8")]
    [InlineData(0x120000, 0x1da3, 0x1000, null, null, "accelerator-1da3-1000")]
    [InlineData(0x028000, 0x8086, 0x1572, 64, null, "network-8086-1572-pf")]
    [InlineData(0x020000, 0x8086, 0x10ca, null, "0000:03:10.0", "ethernet-8086-10ca-vf")]
    [InlineData(0xff0000, 0x1af4, 0x1045, null, null, "pci-1af4-1045")]
    public void Device_kinds_are_named_by_class_ids_and_sriov_role(int classCode, int vendor, int device, int? totalVfs, string? physfn, string kind)
    {
        var d = new PciDevice
        {
            Address = PciAddress.Parse("0000:03:00.0"), VendorId = (ushort)vendor, DeviceId = (ushort)device, ClassCode = classCode, Revision = 1,
            SriovTotalVfs = totalVfs, PhysicalFunction = physfn is null ? null : PciAddress.Parse(physfn),
        };
        Assert.Equal(kind, FleetNames.Kind(d));
        Assert.Equal("pci.passthru/" + kind, FleetNames.ResourceName(d));
    }
}
