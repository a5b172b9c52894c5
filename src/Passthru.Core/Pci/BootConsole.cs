using Passthru.Host;

namespace Passthru.Pci;

/// <summary>
/// A firmware framebuffer (efifb, vesafb, simplefb/simpledrm, the BOOTFB the firmware left) inside one of a GPU's BARs:
/// the host's boot console draws there, and while a driver holds that memory vfio cannot reserve the BAR (QEMU:
/// "BAR 0: can't reserve"). <see cref="PlatformDevice"/> and <see cref="Driver"/> name what holds it, when a driver
/// does: unbinding that driver releases the memory.
/// </summary>
public sealed record FirmwareFramebuffer(PciAddress Function, Bar Bar, IomemRange Range, string? PlatformDevice, string? Driver)
{
    public string Describe() =>
        $"{Range.Name} {(PlatformDevice is null ? "" : $"({PlatformDevice}{(Driver is null ? ", no driver" : $", driver {Driver}")}) ")}holds {Range.Span} in {Function}'s BAR {Bar.Index}";
}

/// <summary>
/// What of the host's console lives on a function: firmware framebuffers in its BARs, the framebuffer devices
/// (/dev/fbN) drawn on it, and whether the kernel's framebuffer console (fbcon) is bound to a virtual terminal console.
/// Passing the function to a guest takes these away from the host: bind and run release them as journaled steps
/// (--release-console) and give them back with the device.
/// </summary>
public sealed record BootConsole(PciAddress Function, IReadOnlyList<FirmwareFramebuffer> Framebuffers, IReadOnlyList<string> FramebufferDevices,
    IReadOnlyList<string> BoundFramebufferConsoles)
{
    /// <summary>Names /proc/iomem gives a firmware framebuffer's memory, and the platform device each comes from.</summary>
    private static readonly (string Iomem, string Platform)[] Known =
    [
        ("efifb", "efi-framebuffer"), ("vesafb", "vesa-framebuffer"),
        ("BOOTFB", "simple-framebuffer"), ("simplefb", "simple-framebuffer"), ("simpledrm", "simple-framebuffer"), ("simple-framebuffer", "simple-framebuffer"),
    ];

    /// <summary>Anything of the host's console on this function.</summary>
    public bool Any => Framebuffers.Count > 0 || FramebufferDevices.Count > 0;

    public static BootConsole Of(HostRoot host, PciAddress function)
    {
        var bars = Bars.Of(host, function).Where(b => !b.IsIo && b.Size > 0).ToList();
        var framebuffers = new List<FirmwareFramebuffer>();
        if (bars.Count > 0)
        {
            foreach (var range in Iomem.Read(host))
            {
                var known = Known.FirstOrDefault(k => k.Iomem == range.Name);
                if (known.Iomem is null || bars.FirstOrDefault(b => b.Start <= range.Start && range.End - b.Start < b.Size) is not { } bar) continue;
                var device = host.List("sys/bus/platform/devices").Where(d => d.StartsWith(known.Platform + ".", StringComparison.Ordinal)).Order(StringComparer.Ordinal).FirstOrDefault();
                var driver = device is null ? null : host.ReadLinkName($"sys/bus/platform/devices/{device}/driver");
                if (framebuffers.Any(f => f.PlatformDevice is not null && f.PlatformDevice == device)) continue; // BOOTFB and simplefb nested: one holder
                framebuffers.Add(new FirmwareFramebuffer(function, bar, range, device, driver));
            }
        }
        // /dev/fbN drawn on this function: by its own DRM driver (the device link names the function) or by a firmware
        // framebuffer in its BARs (the link names that platform device).
        var platform = framebuffers.Select(f => f.PlatformDevice).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var fbs = host.List("sys/class/graphics").Where(n => n.StartsWith("fb", StringComparison.Ordinal) && n.Length > 2 && n[2..].All(char.IsAsciiDigit))
            .Where(n => DeviceOf(host, n) is { } d && (d == function.ToString() || platform.Contains(d)))
            .Order(StringComparer.Ordinal).ToList();
        var consoles = fbs.Count == 0 ? [] : BoundFramebufferConsolesOf(host);
        return new BootConsole(function, framebuffers, fbs, consoles);
    }

    /// <summary>
    /// The device a framebuffer is drawn on (the PCI function or platform device its `device` link resolves to): the
    /// link's own last part is not always its name (a captured tree's relative links may read "../..").
    /// </summary>
    private static string? DeviceOf(HostRoot host, string fb) =>
        NativeFiles.RealPath(host.Path($"sys/class/graphics/{fb}/device")) is { } real ? Path.GetFileName(real) : null;

    /// <summary>The virtual terminal consoles fbcon is bound to (sys/class/vtconsole/vtconN: name "(M) frame buffer device", bind 1).</summary>
    public static IReadOnlyList<string> BoundFramebufferConsolesOf(HostRoot host) =>
        host.List("sys/class/vtconsole").Where(IsVtConsoleName)
            .Where(v => (host.ReadAttribute($"sys/class/vtconsole/{v}/name") ?? "").Contains("frame buffer", StringComparison.Ordinal)
                        && host.ReadAttribute($"sys/class/vtconsole/{v}/bind")?.Trim() == "1")
            .Order(StringComparer.Ordinal).ToList();

    public static bool IsVtConsoleName(string name) => name.StartsWith("vtcon", StringComparison.Ordinal) && name.Length is > 5 and < 9 && name[5..].All(char.IsAsciiDigit);
}
