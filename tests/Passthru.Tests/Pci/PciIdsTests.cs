using CsCheck;
using Passthru.Pci;
using Passthru.Tests.Support;

namespace Passthru.Tests.Pci;

public class PciIdsTests
{
    private static PciIds Small() => PciIds.FromBytes(System.Text.Encoding.UTF8.GetBytes("""
        # comment
        8086  Intel Corporation
        	10d3  82574L Gigabit Network Connection
        		8086 a01f  Gigabit CT Desktop Adapter
        # a comment between devices
        	1237  440FX - 82441FX PMC [Natoma]
        1af4  Red Hat, Inc.
        	1041  Virtio 1.0 network device
        C 02  Network controller
        	00  Ethernet controller
        	80  Network controller
        C 06  Bridge
        	04  PCI bridge
        		00  Normal decode

        """.Replace("        ", "")), "test");

    [Theory]
    [InlineData(0x8086, 0x10d3, "Intel Corporation 82574L Gigabit Network Connection [8086:10d3]")]
    [InlineData(0x8086, 0x1237, "Intel Corporation 440FX - 82441FX PMC [Natoma] [8086:1237]")]
    [InlineData(0x8086, 0x1041, "Intel Corporation Device [8086:1041]")]
    [InlineData(0x1234, 0x1111, "Device [1234:1111]")]
    public void Vendor_and_device_as_lspci_formats_them(int vendor, int device, string expected) =>
        Assert.Equal(expected, Small().FormatVendorDevice((ushort)vendor, (ushort)device));

    [Theory]
    [InlineData(0x0200, "Ethernet controller [0200]")]
    [InlineData(0x0201, "Network controller [0201]")]  // unknown subclass: the class's name
    [InlineData(0x0604, "PCI bridge [0604]")]
    [InlineData(0x0300, "Class [0300]")]
    public void Class_names(int classId, string expected) => Assert.Equal(expected, Small().FormatClass(classId));

    [Fact]
    public void Subsystem_entry_or_the_device_itself()
    {
        var ids = Small();
        Assert.Equal("Intel Corporation Gigabit CT Desktop Adapter [8086:a01f]", ids.FormatSubsystem(0x8086, 0x10d3, 0x8086, 0xa01f));
        Assert.Equal("Red Hat, Inc. Virtio 1.0 network device [1af4:1041]", ids.FormatSubsystem(0x1af4, 0x1041, 0x1af4, 0x1041));
        Assert.Equal("Red Hat, Inc. Device [1af4:1100]", ids.FormatSubsystem(0x8086, 0x10d3, 0x1af4, 0x1100));
    }

    [Fact]
    public void Names_of_every_vendor_in_the_system_database_match_lspci()
    {
        // One made-up function per vendor of the system's pci.ids (with the vendor's first device, or device 0000 when
        // it lists none), cycling through every class and subclass it lists, in a config-space dump that lspci reads
        // with -F: lspci names them from the same file, and every name must be ours too.
        var vendors = new List<(ushort Vendor, ushort Device)>();
        var classes = new List<int>();
        int? currentClass = null;
        foreach (var line in File.ReadLines(Repo.SystemPciIds))
        {
            if (line.StartsWith('#') || line.Length == 0) continue;
            if (line.StartsWith("C ", StringComparison.Ordinal)) { currentClass = Convert.ToInt32(line[2..4], 16); classes.Add(currentClass.Value << 8); continue; }
            if (currentClass is int c)
            {
                if (line.StartsWith('\t') && !line.StartsWith("\t\t", StringComparison.Ordinal)) classes.Add(c << 8 | Convert.ToInt32(line[1..3], 16));
                continue;
            }
            if (char.IsAsciiHexDigit(line[0])) vendors.Add((Convert.ToUInt16(line[..4], 16), 0));
            else if (line.StartsWith('\t') && !line.StartsWith("\t\t", StringComparison.Ordinal) && vendors[^1].Device == 0)
                vendors[^1] = (vendors[^1].Vendor, Convert.ToUInt16(line[1..5], 16));
        }
        Assert.True(vendors.Count > 2000, $"only {vendors.Count} vendors in {Repo.SystemPciIds}");
        Assert.Contains(vendors, v => v.Vendor == 0x8086);
        Assert.Contains(0x0200, classes);

        var dump = new System.Text.StringBuilder();
        var expected = new List<string>();
        var ids = PciIds.FromFile(Repo.SystemPciIds);
        for (int i = 0; i < vendors.Count; i++)
        {
            var (vendor, device) = vendors[i];
            int cls = classes[i % classes.Count];
            var address = $"{i >> 8:x2}:{(i >> 3) & 0x1f:x2}.{i & 7}";
            dump.Append($"{address} x\n00: {vendor & 0xff:x2} {vendor >> 8:x2} {device & 0xff:x2} {device >> 8:x2} 00 00 00 00 00 00 {cls & 0xff:x2} {cls >> 8:x2} 00 00 00 00\n");
            foreach (var offset in new[] { "10", "20", "30" }) dump.Append($"{offset}: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n");
            dump.Append('\n');
            expected.Add($"{address} {ids.FormatClass(cls)}: {ids.FormatVendorDevice(vendor, device)}");
        }
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, dump.ToString());
            var lspci = Repo.Exec("lspci", "-F", file, "-nn", "-i", Repo.SystemPciIds, "-O", "hwdb.disable=1");
            Assert.True(lspci.ExitCode == 0, lspci.Stderr);
            var lines = lspci.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(vendors.Count, lines.Length);
            // lspci names into a 128-byte buffer and ends a name that does not fit with "..." (pciutils' format_name):
            // there ours, which is not cut, must begin with what lspci printed.
            static bool Same(string ours, string theirs) => ours == theirs
                || theirs.EndsWith("...", StringComparison.Ordinal) && ours.StartsWith(theirs[..^3], StringComparison.Ordinal) && ours.Length > theirs.Length;
            var differ = expected.Zip(lines).Where(p => !Same(p.First, p.Second)).Select(p => $"ours:  {p.First}\nlspci: {p.Second}").ToList();
            Assert.True(differ.Count == 0, $"{differ.Count} of {lines.Length} differ:\n{string.Join("\n", differ.Take(20))}");
        }
        finally { File.Delete(file); }
    }

    /// <summary>Whatever bytes a pci.ids holds, lookups answer or fail with a UserError: never another exception.</summary>
    [Fact]
    public void Damaged_databases_fail_only_with_user_errors()
    {
        var valid = System.Text.Encoding.UTF8.GetBytes("8086  Intel Corporation\n\t10d3  82574L\nC 02  Network controller\n\t00  Ethernet controller\n");
        Gen.Select(Gen.Int[0, valid.Length - 1], Gen.Byte, Gen.Int[1, valid.Length])
            .Sample((position, value, cut) =>
            {
                var bytes = valid[..cut];
                if (position < bytes.Length) bytes[position] = value;
                try
                {
                    var ids = PciIds.FromBytes(bytes, "fuzz");
                    _ = ids.FormatVendorDevice(0x8086, 0x10d3) + ids.FormatClass(0x0200) + ids.FormatSubsystem(0x8086, 0x10d3, 0x8086, 1);
                }
                catch (UserError) { }
            }, iter: 5000);
    }
}
