using CsCheck;
using Passthru.Pci;

namespace Passthru.Tests.Pci;

public class PciAddressTests
{
    [Theory]
    [InlineData("0000:83:00.0", 0, 0x83, 0, 0)]
    [InlineData("83:00.0", 0, 0x83, 0, 0)]
    [InlineData("00:1f.7", 0, 0, 0x1f, 7)]
    [InlineData("10000:00:00.0", -1, 0, 0, 0)]
    [InlineData("abcd:EF:1F.3", 0xabcd, 0xef, 0x1f, 3)]
    public void Parses_full_and_short_addresses(string text, int domain, int bus, int device, int function)
    {
        bool ok = PciAddress.TryParse(text, out var a);
        if (domain < 0) { Assert.False(ok); return; }
        Assert.True(ok);
        Assert.Equal(new PciAddress(domain, bus, device, function), a);
    }

    [Theory]
    [InlineData("")]
    [InlineData("83:00")]
    [InlineData("83:20.0")]   // device is 5 bits
    [InlineData("83:00.8")]   // function is 3 bits
    [InlineData("0000:83:00:0")]
    [InlineData("000:83:00.0")]
    [InlineData("0000:83:00.0 ")]
    [InlineData("g0:00.0")]
    [InlineData("+1:00.0")]
    public void Rejects_malformed_addresses(string text) => Assert.False(PciAddress.TryParse(text, out _));

    [Fact]
    public void Formats_round_trip_for_every_valid_address() =>
        Gen.Select(Gen.Int[0, 0xffff], Gen.Int[0, 0xff], Gen.Int[0, 0x1f], Gen.Int[0, 7])
            .Sample((d, b, s, f) =>
            {
                var a = new PciAddress(d, b, s, f);
                return PciAddress.TryParse(a.ToString(), out var back) && back == a
                    && (d != 0 || (PciAddress.TryParse(a.ToShortString(), out var shortBack) && shortBack == a));
            });

    [Fact]
    public void Formats_into_a_callers_buffer_as_its_string_reads() =>
        Gen.Select(Gen.Int[0, 0x7fffffff], Gen.Int[0, 0xff], Gen.Int[0, 0x1f], Gen.Int[0, 7])
            .Sample((d, b, s, f) =>
            {
                var a = new PciAddress(d, b, s, f);
                var text = $"{d:x4}:{b:x2}:{s:x2}.{f:x1}";
                Span<char> exact = stackalloc char[text.Length];
                Span<char> short1 = stackalloc char[text.Length - 1];
                return a.ToString() == text
                    && $"sys/bus/pci/devices/{a}/net" == "sys/bus/pci/devices/" + text + "/net"
                    && a.TryFormat(exact, out int n, default, null) && n == text.Length && exact.SequenceEqual(text)
                    && !a.TryFormat(short1, out _, default, null);
            });

    [Fact]
    public void A_domain_beyond_four_digits_is_written_whole() =>
        Assert.Equal("10000:e1:00.0", $"{new PciAddress(0x10000, 0xe1, 0, 0)}");

    [Fact]
    public void Orders_by_domain_bus_device_function()
    {
        var sorted = new[] { "0001:00:00.0", "0000:01:00.0", "0000:00:02.1", "0000:00:02.0" }
            .Select(PciAddress.Parse).Order().Select(a => a.ToString());
        Assert.Equal(["0000:00:02.0", "0000:00:02.1", "0000:01:00.0", "0001:00:00.0"], sorted);
    }

    [Theory]
    [InlineData("15b3:1003", true)]
    [InlineData("0000:83:00.0", false)]
    [InlineData("83:00.0", false)]
    public void Selector_tells_ids_from_addresses(string text, bool byIds) =>
        Assert.Equal(byIds, DeviceSelector.Parse(text) is DeviceSelector.ByIds);

    [Theory]
    [InlineData("15b3")]
    [InlineData("15b3:10033")]
    [InlineData("eth0")]
    [InlineData("83.00.0")]
    [InlineData("xyz1:1003")]
    public void Selector_rejects_anything_else_with_a_usage_error(string text)
    {
        var e = Assert.Throws<UserError>(() => DeviceSelector.Parse(text));
        Assert.Equal(ExitCodes.Usage, e.ExitCode);
        Assert.Equal($"'{text}' is not a PCI device: use a full address like 0000:83:00.0, a short one like 83:00.0, or vendor:device IDs like 15b3:1003", e.Message);
    }
}
