using System.Text.Json;
using Passthru.Tests.Support;

namespace Passthru.Tests.Discovery;

public class ShowTests
{
    [Theory]
    [InlineData("0000:00:03.0")]
    [InlineData("00:03.0")]
    [InlineData("1af4:1041")]
    public void Every_address_form_names_the_same_device(string device)
    {
        var r = CliRunner.OnCapture("devvm", "show", device);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("""
            0000:00:03.0 Ethernet controller [0200]: Red Hat, Inc. Virtio 1.0 network device [1af4:1041] (rev 01)
              Vendor:          Red Hat, Inc. [1af4]
              Device:          Virtio 1.0 network device [1041]
              Class:           Ethernet controller [0200], prog-if 00
              Revision:        01
              Subsystem:       Red Hat, Inc. Virtio 1.0 network device [1af4:1041]
              Driver:          virtio-pci
              Driver override: none
              IOMMU group:     none: the IOMMU is off or absent
              Reset methods:   not reported by the kernel
              Power:           state not reported, D3cold not allowed
              BARs:            BAR0: 512 KiB memory, 64-bit, non-prefetchable
              Boot VGA:        n/a
              Option ROM:      none (no ROM BAR)
              NUMA node:       none
              Passthrough:     not possible
                               cannot: this host has no IOMMU groups (IOMMU off or absent): see `passthru check`

            """, r.Stdout);
    }

    [Fact]
    public void Subsystem_agrees_with_lspci_v()
    {
        var lspci = ListTests.LspciOnCapture("devvm", "-v", "-s", "00:01.0");
        var subsystem = lspci.Single(l => l.StartsWith("\tSubsystem: ", StringComparison.Ordinal))["\tSubsystem: ".Length..];
        var ours = CliRunner.OnCapture("devvm", "show", "00:01.0").Lines.Single(l => l.StartsWith("  Subsystem:", StringComparison.Ordinal));
        Assert.Equal(subsystem, ours["  Subsystem:".Length..].Trim());
    }

    [Fact]
    public void Json_reports_passthrough_not_possible()
    {
        var r = CliRunner.OnCapture("devvm", "show", "00:02.0", "--json");
        using var doc = JsonDocument.Parse(r.Stdout);
        var p = doc.RootElement.GetProperty("passthrough");
        Assert.False(p.GetProperty("possible").GetBoolean());
        Assert.Equal("0000:00:02.0", doc.RootElement.GetProperty("device").GetProperty("address").GetString());
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("group").ValueKind);
    }
}
