using System.Buffers.Binary;
using Passthru.Pci;

namespace Passthru.Tests.Pci;

/// <summary>
/// The Resizable BAR capability parsed from config space built here byte by byte (no QEMU device has one): extended
/// capability headers from 0x100, each BAR's capability and control register as the PCIe spec lays them out.
/// </summary>
public class ResizableBarTests
{
    private static byte[] Config(int length = 4096) => new byte[length];

    private static void U32(byte[] c, int at, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(at), value);

    /// <summary>An extended capability header: ID, version 1, the next header's offset.</summary>
    private static uint Header(ushort id, int next) => id | (1u << 16) | ((uint)next << 20);

    /// <summary>A config with AER (ID 1) at 0x100 pointing to a ReBAR capability at 0x150 of the given BAR entries.</summary>
    private static byte[] WithRebar(params (int Bar, uint SizesFrom1MiB, int CurrentLog2MiB, ushort UpperSizes)[] bars)
    {
        var c = Config();
        U32(c, 0x100, Header(0x0001, 0x150));
        U32(c, 0x150, Header(0x0015, 0));
        for (int i = 0; i < bars.Length; i++)
        {
            var (bar, sizes, current, upper) = bars[i];
            U32(c, 0x154 + 8 * i, sizes << 4);
            uint control = (uint)bar | ((uint)current << 8) | ((uint)upper << 16);
            if (i == 0) control |= (uint)bars.Length << 5;
            U32(c, 0x158 + 8 * i, control);
        }
        return c;
    }

    [Fact]
    public void A_gpu_with_a_resizable_bar0_lists_its_sizes_and_the_current_one()
    {
        // BAR0: 256 MiB to 16 GiB supported (bits 8 to 14 of the sizes: 2^8 MiB ... 2^14 MiB), now 256 MiB; BAR2: 2 MiB, now 2 MiB.
        var rebar = ResizableBar.Parse(WithRebar((0, 0b111_1111_0000_0000, 8, 0), (2, 0b10, 1, 0)))!;
        Assert.Equal(0x150, rebar.Offset);
        Assert.Equal(2, rebar.Bars.Count);
        Assert.Equal(0, rebar.Bars[0].BarIndex);
        Assert.Equal(256UL << 20, rebar.Bars[0].CurrentSize);
        Assert.Equal(new ulong[] { 256UL << 20, 512UL << 20, 1UL << 30, 2UL << 30, 4UL << 30, 8UL << 30, 16UL << 30 }, rebar.Bars[0].SupportedSizes);
        Assert.Equal(2, rebar.Bars[1].BarIndex);
        Assert.Equal(new ulong[] { 2UL << 20 }, rebar.Bars[1].SupportedSizes);
        Assert.Equal(2UL << 20, rebar.Bars[1].CurrentSize);
    }

    [Fact]
    public void Sizes_past_128_TiB_come_from_the_control_registers_upper_half()
    {
        // Capability bit 31: 128 TiB (2^47); control bit 16: 256 TiB (2^48).
        var rebar = ResizableBar.Parse(WithRebar((0, 1u << 27, 27, 1)))!;
        Assert.Equal(new ulong[] { 1UL << 47, 1UL << 48 }, rebar.Bars[0].SupportedSizes);
        Assert.Equal(1UL << 47, rebar.Bars[0].CurrentSize);
    }

    [Fact]
    public void No_capability_is_null_and_256_bytes_cannot_tell()
    {
        var c = Config();
        U32(c, 0x100, Header(0x0001, 0x140));
        U32(c, 0x140, Header(0x000b, 0));
        Assert.Null(ResizableBar.Parse(c));
        Assert.Null(ResizableBar.Parse(Config()));           // no extended capabilities at all
        Assert.Null(ResizableBar.Parse(Config(256)));        // read unprivileged
        Assert.False(ResizableBar.ExtendedReadable(Config(256)));
        Assert.True(ResizableBar.ExtendedReadable(Config()));
    }

    [Fact]
    public void A_looping_or_escaping_capability_list_ends_the_walk()
    {
        var c = Config();
        U32(c, 0x100, Header(0x0001, 0x100));   // points at itself
        Assert.Null(ResizableBar.Parse(c));
        U32(c, 0x100, Header(0x0001, 0x40));    // below 0x100: the list ends
        Assert.Null(ResizableBar.Parse(c));
        var cut = Config(0x104);
        U32(cut, 0x100, Header(0x0001, 0x200)); // past the end of what was read
        Assert.Null(ResizableBar.Parse(cut));
    }

    [Theory]
    [InlineData(0, 0, "says 0 resizable BARs (1 to 6 can be)")]
    [InlineData(7, 0, "says 7 resizable BARs (1 to 6 can be)")]
    [InlineData(1, 6, "names BAR6 (a function has BAR0 to BAR5)")]
    [InlineData(1, 0x3f00, "beyond 2^63")]
    public void A_capability_that_cannot_be_is_refused_with_the_reason(int count, int controlLow, string reason)
    {
        var c = Config();
        U32(c, 0x100, Header(0x0015, 0));
        U32(c, 0x104, 1u << 4);
        U32(c, 0x108, ((uint)count << 5) | (uint)controlLow);
        var e = Assert.Throws<FormatException>(() => ResizableBar.Parse(c));
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void A_capability_cut_off_by_the_end_of_config_space_is_refused()
    {
        var c = Config(0x110);
        U32(c, 0x100, Header(0x0015, 0));
        U32(c, 0x108, 3u << 5); // three BARs: 0x104 + 24 bytes, past 0x110
        Assert.Contains("lists 3 BARs but config space ends at 0x110", Assert.Throws<FormatException>(() => ResizableBar.Parse(c)).Message);
    }
}
