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
        // lspci -nn on the devvm capture used the same file: every name it printed must be ours too.
        var ids = PciIds.FromFile(Repo.SystemPciIds);
        Assert.Equal("Red Hat, Inc.", ids.VendorName(0x1af4));
        Assert.Equal("Virtio 1.0 network device", ids.DeviceName(0x1af4, 0x1041));
        Assert.Equal("Ethernet controller", ids.ClassName(0x0200));
        Assert.Equal("Unassigned class", ids.ClassName(0xffff));
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
