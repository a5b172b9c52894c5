using System.Globalization;
using System.Text.RegularExpressions;
using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Launch;

/// <summary>
/// When QEMU fails to start a guest with devices, its message names a symptom ("Operation not permitted", "Device or
/// resource busy"); the cause is often in the kernel's log or the host's state. This recognises the known vfio failures
/// in QEMU's stderr and the kernel's lines logged during the run, and says the cause and the fix in one line.
/// The patterns are QEMU 7.2's and Linux 6.1's own messages (see tests/fixtures/qemu-failures for where each came from).
/// </summary>
public static partial class QemuFailure
{
    /// <summary>
    /// The signal that killed QEMU, or null when it exited (or may have). .NET reports a child killed by a signal as
    /// 128 + the signal; QEMU itself exits 0 or 1, so a status above 128 is a signal, unless the guest can set the
    /// status (isa-debug-exit: (value &lt;&lt; 1) | 1, up to 255), when it stays a number. A crash leaves QEMU no
    /// chance to say anything: without this, the run ended in silence.
    /// </summary>
    public static int? Signal(int status, IReadOnlyList<string> argv) =>
        status is > 128 and < 128 + 65 && !argv.Any(a => a.Contains("isa-debug-exit", StringComparison.Ordinal)) ? status - 128 : null;

    /// <summary>How QEMU's process ended, in words: "exited (status 1)", or "died of signal 11 (SIGSEGV)" (<see cref="Signal"/>).</summary>
    public static string Ended(int status, int? signal) =>
        signal is int s ? $"died of signal {s}{(SignalName(s) is string name ? $" ({name})" : "")}" : $"exited (status {status})";

    private static string? SignalName(int signal) => signal switch
    {
        1 => "SIGHUP", 2 => "SIGINT", 3 => "SIGQUIT", 4 => "SIGILL", 5 => "SIGTRAP", 6 => "SIGABRT", 7 => "SIGBUS", 8 => "SIGFPE",
        9 => "SIGKILL", 10 => "SIGUSR1", 11 => "SIGSEGV", 12 => "SIGUSR2", 13 => "SIGPIPE", 14 => "SIGALRM", 15 => "SIGTERM",
        _ => null,
    };

    public static string? Explain(string qemuStderr, IReadOnlyList<string> kernelLines, HostRoot host, int guestMiB)
    {
        var kernel = string.Join('\n', kernelLines);
        // Numbers are parsed with TryParse: \d also matches other scripts' digits, and a number can overflow.
        if (NotViable().Match(qemuStderr) is { Success: true } nv && int.TryParse(nv.Groups[2].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var nvGroup))
            return NotViableCause(host, nv.Groups[1].Value, nvGroup);
        if (qemuStderr.Contains("Failed to set iommu for container: Operation not permitted", StringComparison.Ordinal)
            || kernel.Contains("No interrupt remapping support", StringComparison.Ordinal))
            return "the IOMMU does not remap interrupts and vfio_iommu_type1 does not allow unsafe interrupts, so vfio refused the device; "
                + "fix: passthru run --allow-unsafe-interrupts (for this run) or passthru setup --allow-unsafe-interrupts (for good): " + InterruptSafety.Risk;
        if (Busy().Match(qemuStderr) is { Success: true } busy && int.TryParse(busy.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var group))
        {
            var holders = ProcessScan.Holders(host, $"/dev/vfio/{group}");
            return $"IOMMU group {group} is already open{(holders.Count > 0 ? $" by {string.Join(", ", holders)}" : " by another process")} (another guest has its devices); "
                + "fix: stop that guest first, or pass a different device";
        }
        var ml = MemlockExceeded().Match(kernel);
        if (ml.Success || qemuStderr.Contains("VFIO_MAP_DMA failed: Cannot allocate memory", StringComparison.Ordinal))
        {
            // The kernel's line has QEMU's limit; without it (dmesg restricted), QEMU inherited this process's.
            long? bytes = ml.Success && long.TryParse(ml.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var kernelLimit) ? kernelLimit
                : host.IsLive && ResourceLimits.LockedMemory().Soft is var soft && soft < long.MaxValue ? (long)soft : null;
            var limit = bytes is long b ? $"the locked-memory limit ({b >> 10} KiB)" : "the locked-memory limit";
            return $"QEMU could not pin the guest's memory for DMA: {limit} is below the {guestMiB} MiB the guest needs (vfio pins all of it, plus some MiB for device ROMs); "
                + $"fix: raise it to at least {guestMiB + 64} MiB (ulimit -l {(guestMiB + 64) * 1024}, or unlimited; memlock in /etc/security/limits.conf), or run as root";
        }
        if (BarReserve().Match(kernel) is { Success: true } bar
            && ulong.TryParse(bar.Groups[3].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var barStart)
            && ulong.TryParse(bar.Groups[4].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var barEnd))
            return BarCause(host, bar.Groups[1].Value, bar.Groups[2].Value, barStart, barEnd);
        if (D3cold().Match(kernel) is { Success: true } d3)
            return $"{d3.Groups[1].Value} is stuck in D3cold (powered off) and does not answer; fix: keep it powered (echo on > /sys/bus/pci/devices/{d3.Groups[1].Value}/power/control), "
                + $"or remove and rescan it (echo 1 > /sys/bus/pci/devices/{d3.Groups[1].Value}/remove; echo 1 > /sys/bus/pci/rescan); reboot the host if it still does not answer";
        if (NoReset().Match(qemuStderr) is { Success: true } reset)
            return $"{reset.Groups[1].Value} has no reset mechanism (no FLR, power-management or bus reset), so vfio cannot put it back in a clean state; "
                + "fix: pass every function of its slot or bus together, or use a device with FLR (lspci -vv shows FLReset+); it may work again after a host reboot";
        return null;
    }

    private static string NotViableCause(HostRoot host, string address, int group)
    {
        var blockers = new List<string>();
        foreach (var member in host.List($"sys/kernel/iommu_groups/{group}/devices"))
        {
            var driver = host.ReadLinkName($"sys/bus/pci/devices/{member}/driver");
            if (driver is not null and not "vfio-pci" and not "pcieport") blockers.Add($"{member} ({driver})");
        }
        var held = blockers.Count > 0 ? $"{string.Join(", ", blockers)} {(blockers.Count == 1 ? "is" : "are")} still on a host driver" : "a function in it is still on a host driver";
        return $"IOMMU group {group} of {address} is not viable: {held}, and a group passes through whole; fix: passthru run --group (or passthru bind --group {address}), or name every function of the group with --device";
    }

    /// <summary>A BAR the kernel could not reserve, and what holds it in /proc/iomem (a boot framebuffer, usually).</summary>
    private static string BarCause(HostRoot host, string address, string bar, ulong start, ulong end)
    {
        // The innermost framebuffer over the BAR: the last in the map's order.
        var holder = Iomem.Read(host).LastOrDefault(r => r.Overlaps(start, end) && Framebuffer().IsMatch(r.Name)) is { } r ? $"{r.Name} at {r.Span}" : null;
        return holder is not null
            ? $"BAR {bar} of {address} is held by the boot framebuffer ({holder} in /proc/iomem), which the host's console still uses; "
                + "fix: add video=efifb:off video=vesafb:off initcall_blacklist=sysfb_init to the kernel command line and reboot (the console then starts on another GPU or none)"
            : $"BAR {bar} of {address} cannot be reserved: another driver holds that memory (see /proc/iomem); fix: stop what holds it (a framebuffer driver, usually) or reboot with it disabled";
    }

    [GeneratedRegex(@"vfio (\S+): group (\d+) is not viable")]
    private static partial Regex NotViable();

    [GeneratedRegex(@"failed to open /dev/vfio/(\d+): Device or resource busy")]
    private static partial Regex Busy();

    [GeneratedRegex(@"RLIMIT_MEMLOCK \((\d+)\) exceeded")]
    private static partial Regex MemlockExceeded();

    [GeneratedRegex(@"(\S+): BAR (\d+): can't reserve \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)")]
    private static partial Regex BarReserve();

    [GeneratedRegex(@"(\S+): Unable to change power state from D3cold to D0, device inaccessible")]
    private static partial Regex D3cold();

    [GeneratedRegex(@"Cannot reset device (\S+), no available reset mechanism")]
    private static partial Regex NoReset();

    [GeneratedRegex(@"BOOTFB|simpledrm|simple-framebuffer|efifb|vesafb", RegexOptions.IgnoreCase)]
    private static partial Regex Framebuffer();
}
