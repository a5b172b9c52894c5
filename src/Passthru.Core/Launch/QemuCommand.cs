using Passthru.Pci;

namespace Passthru.Launch;

/// <summary>What the guest boots, resolved to QEMU's terms: files and strings ready for -kernel, -append, -initrd.</summary>
public sealed record GuestBoot(string? Kernel, string? Append, string? Initrd, IReadOnlyList<string> Disks, string? Cdrom)
{
    public static GuestBoot From(RunOptions o)
    {
        if (o.Menu is not null)
        {
            var menu = BarrelfishMenu.Load(o.Menu);
            var (kernel, append, initrd) = menu.ToQemu(o.BuildDir ?? menu.DefaultBuildDir(o.Menu));
            return new GuestBoot(kernel, append, initrd.Length > 0 ? initrd : null, Full(o.Disks), Full(o.Cdrom));
        }
        return new GuestBoot(Full(o.Kernel), o.Append, Full(o.Initrd), Full(o.Disks), Full(o.Cdrom));
    }

    private static string? Full(string? path) => path is null ? null : Path.GetFullPath(path);
    private static IReadOnlyList<string> Full(IReadOnlyList<string> paths) => paths.Select(p => Path.GetFullPath(p)).ToList();
}

/// <summary>
/// The QEMU argument vector for a run. Built as a list and started without a shell, so nothing is re-split or
/// expanded; <see cref="QemuArgs.ShellJoin"/> renders it for users to read or paste.
/// </summary>
public static class QemuCommand
{
    /// <summary>
    /// Passed-through devices get a PCIe root port each on q35 (ids pt0, pt1, ... at fixed slots from 0x10), so their
    /// guest addresses stay the same from run to run and do not shift when other devices are added; functions of one
    /// multifunction device share a port, at their own function numbers, with multifunction=on.
    /// </summary>
    public const int FirstPortSlot = 0x10;

    public static IReadOnlyList<string> Build(string qemu, RunOptions o, GuestBoot boot, bool kvm, IReadOnlyList<(PciAddress Address, PassthroughDevice Options)> devices)
    {
        var argv = new List<string> { qemu, "-machine", $"{o.Machine},accel={(kvm ? "kvm" : "tcg")}" };
        if (kvm) argv.AddRange(["-cpu", "host"]);
        argv.AddRange(["-m", o.MemoryMiB.ToString(), "-smp", o.Cpus.ToString()]);
        // The guest's serial console on our stdio (QEMU's monitor behind Ctrl-A c), no graphical window.
        argv.Add("-nographic");
        if (o.Name is not null) argv.AddRange(["-name", QemuArgs.EscapeCommas(o.Name)]);
        if (boot.Kernel is not null)
        {
            argv.AddRange(["-kernel", boot.Kernel]);
            if (boot.Append is { Length: > 0 }) argv.AddRange(["-append", boot.Append]);
            if (boot.Initrd is not null) argv.AddRange(["-initrd", boot.Initrd]);
        }
        if (boot.Disks.Count > 0)
        {
            argv.AddRange(["-device", "ahci,id=ahci"]);
            for (int i = 0; i < boot.Disks.Count; i++)
            {
                var format = Passthru.Export.LibvirtDomain.DiskFormat(boot.Disks[i]);
                argv.AddRange(["-drive", $"id=disk{i},file={QemuArgs.EscapeCommas(boot.Disks[i])},format={format},if=none",
                               "-device", $"ide-hd,drive=disk{i},bus=ahci.{i}"]);
            }
        }
        if (boot.Cdrom is not null) argv.AddRange(["-cdrom", boot.Cdrom]);
        // The guest gets the devices it was given and no others: without -nic none QEMU adds its default NIC.
        argv.AddRange(["-nic", o.Net is null ? "none" : o.Net.Model is null ? "user" : $"user,model={o.Net.Model}"]);

        bool pcie = o.Machine.StartsWith("q35", StringComparison.Ordinal);
        int port = 0;
        foreach (var slot in devices.GroupBy(d => (d.Address.Domain, d.Address.Bus, d.Address.Device)))
        {
            var functions = slot.OrderBy(d => d.Address.Function).ToList();
            bool multi = functions.Count > 1;
            string bus;
            if (pcie)
            {
                bus = $"pt{port}";
                argv.AddRange(["-device", $"pcie-root-port,id={bus},chassis={port + 1},bus=pcie.0,addr=0x{FirstPortSlot + port:x}"]);
            }
            else bus = "pci.0";
            // Guest function numbers count from 0 in host order: a guest only looks past function 0 when it exists.
            for (int f = 0; f < functions.Count; f++)
            {
                var (address, options) = functions[f];
                var addr = pcie ? $"0.{f}" : $"0x{FirstPortSlot + port:x}.{f}";
                var props = $"vfio-pci,host={address},bus={bus},addr={addr}";
                if (multi && f == 0) props += ",multifunction=on";
                if (!options.RomBar) props += ",rombar=0";
                if (options.RomFile is not null) props += $",romfile={QemuArgs.EscapeCommas(Path.GetFullPath(options.RomFile))}";
                if (options.XVga) props += ",x-vga=on";
                argv.AddRange(["-device", props]);
            }
            port++;
        }
        argv.AddRange(o.ExtraArgs);
        return argv;
    }
}
