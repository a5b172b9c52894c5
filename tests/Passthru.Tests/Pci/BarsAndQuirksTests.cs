using Passthru.Pci;
using Passthru.Tests.Support;

namespace Passthru.Tests.Pci;

/// <summary>BARs from sysfs `resource` (the GPU capture's and lines written here) and the reset-quirk table.</summary>
public class BarsAndQuirksTests
{
    [Fact]
    public void The_captured_vga_has_a_16_MiB_prefetchable_32_bit_bar0_and_a_4_KiB_bar2()
    {
        var bars = Bars.Parse(File.ReadAllText(Path.Combine(Repo.Capture("vhost-gpu"), "sys/bus/pci/devices/0000:03:00.0/resource")));
        Assert.Equal(2, bars.Count);
        Assert.Equal(new Bar(0, 0xfd000000, 16UL << 20, IsIo: false, Is64Bit: false, Prefetchable: true), bars[0]);
        Assert.Equal(new Bar(2, 0xfe814000, 4096, IsIo: false, Is64Bit: false, Prefetchable: false), bars[1]);
        Assert.Equal("BAR0: 16 MiB memory, 32-bit, prefetchable", bars[0].Describe());
    }

    [Fact]
    public void Flags_give_64_bit_prefetchable_memory_and_io_ports()
    {
        var text = "0x0000004000000000 0x0000004fffffffff 0x000000000014220c\n"    // 64 GiB, 64-bit prefetchable
            + "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"          // BAR1: the upper half of BAR0
            + "0x000000000000c000 0x000000000000c0ff 0x0000000000040101\n"          // 256 I/O ports
            + "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
            + "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
            + "0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
            + "0x00000000000c0000 0x00000000000dffff 0x0000000000000212\n";         // the ROM: not a BAR
        var bars = Bars.Parse(text);
        Assert.Equal(2, bars.Count);
        Assert.True(bars[0].Is64BitPrefetchable);
        Assert.Equal(64UL << 30, bars[0].Size);
        Assert.Equal("BAR0: 64 GiB memory, 64-bit, prefetchable", bars[0].Describe());
        Assert.Equal("BAR2: 256 bytes I/O ports", bars[1].Describe());
        Assert.Empty(Bars.Parse("not a resource file\n"));
    }

    [Fact]
    public void The_quirk_table_holds_vendor_resets_67_amd_ids_by_family()
    {
        Assert.Equal(67, ResetQuirks.All.Count);
        Assert.Equal("navi10", ResetQuirks.Find(0x1002, 0x731f)!.Family);        // Radeon RX 5700 XT
        Assert.Equal("polaris10", ResetQuirks.Find(0x1002, 0x67df)!.Family);     // Radeon RX 470/480/570/580
        Assert.Equal("vega10", ResetQuirks.Find(0x1002, 0x687f)!.Family);        // Radeon RX Vega 56/64
        Assert.StartsWith("arcturus", ResetQuirks.Find(0x1002, 0x738c)!.Family); // Instinct MI100
        Assert.Null(ResetQuirks.Find(0x1234, 0x1111));                           // QEMU's VGA
        Assert.Null(ResetQuirks.Find(0x1002, 0x73bf));                           // Navi 21: not in vendor-reset
        Assert.All(ResetQuirks.All, q => Assert.Equal(0x1002, q.VendorId));
    }

    [Theory]
    [InlineData("1002:731f\n", "is not 'VENDOR:DEVICE family'")]
    [InlineData("1002-731f navi10\n", "is not 'VENDOR:DEVICE family'")]
    [InlineData("1002:731 navi10\n", "is not 'VENDOR:DEVICE family'")]
    [InlineData("1002:731f navi10\n1002:731F navi10\n", "1002:731F is listed twice")]
    public void A_malformed_table_line_is_a_build_mistake_named_by_line(string text, string message) =>
        Assert.Contains(message, Assert.Throws<FormatException>(() => ResetQuirks.Parse("# comment\n" + text)).Message);
}
