using Passthru.Tests.VirtualHost;

namespace Passthru.Tests.Discovery;

/// <summary>show's BAR list against the real kernel: the GPU stand-in's VGA (QEMU's 1234:1111) in the virtual host with a GPU.</summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host with a GPU")]
public class VirtualHostGpuBarTests(GpuFixture vm)
{
    [Fact]
    public void Show_lists_the_vgas_16_MiB_prefetchable_32_bit_bar0_and_root_reads_past_256_bytes()
    {
        var show = vm.RunOk($"{vm.Passthru} show 03:00.0");
        Assert.Contains("  BARs:            BAR0: 16 MiB memory, 32-bit, prefetchable\n"
            + "                   BAR2: 4 KiB memory, 32-bit, non-prefetchable\n", show);
        Assert.DoesNotContain("Reset quirk", show);
        // The e1000e is PCI Express: as root its 4096 bytes of config space are read, and it has no Resizable BAR.
        Assert.Contains("  Resizable BAR:   none\n", vm.RunOk($"{vm.Passthru} show 00:02.0"));
    }
}
