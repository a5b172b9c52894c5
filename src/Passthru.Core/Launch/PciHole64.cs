using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Launch;

/// <summary>
/// The 64-bit MMIO window ("64-bit PCI hole") a guest needs for its passed devices' large BARs, and the size to give
/// q35's host bridge when QEMU's default is too small. Firmware puts 64-bit prefetchable BARs above 4 GiB, inside this
/// hole; a GPU with a 16 or 64 GiB BAR (resizable BAR grown) does not fit QEMU's default and the guest sees the device
/// without its memory.
/// </summary>
/// <param name="Needed">The passed devices' 64-bit prefetchable BARs, each aligned to its size, per root port and then together.</param>
/// <param name="Size">What to set: <paramref name="Needed"/> with room for the hole's start to reach the largest BAR's alignment, as a power of two.</param>
public sealed record PciHole64(ulong Needed, ulong Size)
{
    /// <summary>QEMU's default for q35 (hw/pci-host/q35.c, Q35_PCI_HOST_HOLE64_SIZE_DEFAULT: 1 << 35), checked with 7.2's -device q35-pcihost,help.</summary>
    public const ulong Q35Default = 32UL << 30;
    public const string Q35Property = "q35-pcihost.pci-hole64-size";
    private const ulong GiB = 1UL << 30;

    public string QemuValue => Bytes.Qemu(Size);

    /// <summary>
    /// The hole the devices need, or null when QEMU's q35 default holds them. Each guest slot sits behind its own root
    /// port (<see cref="QemuCommand.Layout"/>), whose prefetchable window holds its functions' BARs.
    /// </summary>
    public static PciHole64? For(HostRoot host, IReadOnlyList<PciAddress> devices)
    {
        var windows = new List<(ulong Size, ulong Align)>();
        foreach (var slot in devices.GroupBy(a => (a.Domain, a.Bus, a.Device)))
        {
            var bars = slot.SelectMany(a => Bars.Of(host, a)).Where(b => b.Is64BitPrefetchable).Select(b => b.Size).ToList();
            if (bars.Count > 0) windows.Add((Pack(bars), bars.Max()));
        }
        if (windows.Count == 0) return null;
        ulong needed = 0;
        foreach (var (window, align) in windows.OrderByDescending(w => w.Align)) needed = AlignUp(needed, align) + window;
        // QEMU starts the hole at a 1 GiB boundary above the guest's RAM; firmware then aligns each window to its largest BAR.
        ulong largest = windows.Max(w => w.Align);
        ulong withStart = AlignUp(needed, GiB) + (largest > GiB ? largest - GiB : 0);
        if (withStart <= Q35Default) return null;
        ulong size = GiB;
        while (size < withStart) size <<= 1;
        return new PciHole64(needed, size);
    }

    /// <summary>BARs packed largest first: each (a power of two) then starts aligned to its own size.</summary>
    private static ulong Pack(List<ulong> sizes)
    {
        ulong end = 0;
        foreach (var s in sizes.OrderByDescending(s => s)) end = AlignUp(end, s) + s;
        return end;
    }

    private static ulong AlignUp(ulong n, ulong align) => align == 0 ? n : (n + align - 1) / align * align;

    public static bool IsQ35(string machine) => machine == "q35" || machine.StartsWith("pc-q35", StringComparison.Ordinal);

    /// <summary>The line run says when it sets the hole; an export says what the guest needs.</summary>
    public string Describe(bool exporting) =>
        $"note: the passed devices' 64-bit prefetchable BARs need {Bytes.Format(Needed)} of 64-bit MMIO, more than QEMU's q35 default of {Bytes.Format(Q35Default)}: "
        + (exporting ? $"the guest needs pci-hole64-size={QemuValue}" : $"adding -global {Q35Property}={QemuValue}");
}
