using Passthru.Pci;

namespace Passthru.Launch;

/// <summary>A pcie-root-port of the guest: its id (the bus devices name), its slot on pcie.0, its chassis number.</summary>
public sealed record RootPort(string Id, int Slot, int Chassis);

/// <summary>A passed-through function's place in the guest.</summary>
public sealed record PlacedDevice(PciAddress Address, PassthroughDevice Options, string Id, string Bus, string Addr, bool Multifunction);

public sealed record PortLayout(IReadOnlyList<RootPort> Ports, IReadOnlyList<PlacedDevice> Devices);

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

    /// <summary>QEMU's id for a passed-through function's vfio-pci device ("hostdev-0000-83-00-0"): device_del names it.</summary>
    public static string DeviceId(PciAddress a) => $"hostdev-{a.ToString().Replace(':', '-').Replace('.', '-')}";

    /// <summary>
    /// Where each device goes and which ports exist: on q35 one pcie-root-port per device slot (pt0, pt1, ... from slot
    /// 0x10), then the spare hot-plug ports (hp0, hp1, ...) right after them, so a guest's addresses are the same from
    /// run to run; chassis numbers follow the slots. On other machines everything sits on pci.0 and nothing is hot-pluggable.
    /// </summary>
    public static PortLayout Layout(RunOptions o, IReadOnlyList<(PciAddress Address, PassthroughDevice Options)> devices)
    {
        bool pcie = o.IsPcie;
        var ports = new List<RootPort>();
        var placed = new List<PlacedDevice>();
        int port = 0;
        foreach (var slot in devices.GroupBy(d => (d.Address.Domain, d.Address.Bus, d.Address.Device)))
        {
            var functions = slot.OrderBy(d => d.Address.Function).ToList();
            string bus = pcie ? $"pt{port}" : "pci.0";
            if (pcie) ports.Add(new RootPort(bus, FirstPortSlot + port, port + 1));
            // Guest function numbers count from 0 in host order: a guest only looks past function 0 when it exists.
            for (int f = 0; f < functions.Count; f++)
            {
                var (address, options) = functions[f];
                placed.Add(new PlacedDevice(address, options, DeviceId(address), bus, pcie ? $"0.{f}" : $"0x{FirstPortSlot + port:x}.{f}",
                    Multifunction: functions.Count > 1 && f == 0));
            }
            port++;
        }
        for (int i = 0; pcie && i < o.SpareHotplugPorts; i++, port++)
            ports.Add(new RootPort($"hp{i}", FirstPortSlot + port, port + 1));
        return new PortLayout(ports, placed);
    }

    /// <summary>
    /// Stands for the QMP socket's descriptor in an unprivileged QEMU's argument vector: Passthru listens on the socket
    /// (under its root-only state directory, where QEMU's user could not create it) and QEMU inherits it under this
    /// number, filled in when it starts.
    /// </summary>
    public const string QmpDescriptor = "@qmp-fd@";

    public static IReadOnlyList<string> Build(string qemu, RunOptions o, GuestBoot boot, bool kvm, IReadOnlyList<(PciAddress Address, PassthroughDevice Options)> devices,
        QemuPrivilege? privilege = null)
    {
        var argv = new List<string> { qemu, "-machine", $"{o.Machine},accel={(kvm ? "kvm" : "tcg")}" };
        if (kvm) argv.AddRange(["-cpu", "host"]);
        argv.AddRange(["-m", o.MemoryMiB.ToString(), "-smp", o.Cpus.ToString()]);
        // The guest's serial console on our stdio (QEMU's monitor behind Ctrl-A c), no graphical window.
        argv.Add("-nographic");
        if (o.Display is not null) argv.AddRange(["-vga", o.Display]);
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
                var format = DiskImage.Format(boot.Disks[i]);
                argv.AddRange(["-drive", $"id=disk{i},file={QemuArgs.EscapeCommas(boot.Disks[i])},format={format},if=none",
                               "-device", $"ide-hd,drive=disk{i},bus=ahci.{i}"]);
            }
        }
        if (boot.Cdrom is not null)
        {
            argv.AddRange(["-cdrom", boot.Cdrom]);
            // Boot from it, before any disk (then the disks): the firmware's own order tries the disks first, and a
            // passed-through NIC's option ROM may add a network boot after them.
            if (boot.Kernel is null) argv.AddRange(["-boot", boot.Disks.Count > 0 ? "order=dc" : "order=d"]);
        }
        // The guest gets the devices it was given and no others: without -nic none QEMU adds its default NIC.
        argv.AddRange(["-nic", o.Net is null ? "none" : o.Net.Model is null ? "user" : $"user,model={o.Net.Model}"]);

        var layout = Layout(o, devices);
        foreach (var port in layout.Ports)
            argv.AddRange(["-device", $"pcie-root-port,id={port.Id},chassis={port.Chassis},bus=pcie.0,addr=0x{port.Slot:x}"]);
        foreach (var d in layout.Devices)
        {
            var props = $"vfio-pci,host={d.Address},id={d.Id},bus={d.Bus},addr={d.Addr}";
            if (d.Multifunction) props += ",multifunction=on";
            if (!d.Options.RomBar) props += ",rombar=0";
            if (d.Options.RomFile is not null) props += $",romfile={QemuArgs.EscapeCommas(Path.GetFullPath(d.Options.RomFile))}";
            if (d.Options.XVga) props += ",x-vga=on";
            argv.AddRange(["-device", props]);
        }
        // The guest's control socket (attach, detach): QEMU listens, and serves one client at a time. An unprivileged
        // QEMU listens on the socket Passthru made; the guest's UUID then names it in QEMU's command line.
        if (o.ControlSocket is not null && privilege?.User is not null)
            argv.AddRange(["-uuid", Passthru.Binding.GuestRecords.Uuid(o.ControlSocket),
                "-chardev", $"socket,id=qmp,fd={QmpDescriptor},server=on,wait=off", "-mon", "chardev=qmp,mode=control"]);
        else if (o.ControlSocket is not null) argv.AddRange(["-qmp", $"unix:{QemuArgs.EscapeCommas(o.ControlSocket)},server=on,wait=off"]);
        if (privilege?.Sandbox == true) argv.AddRange(["-sandbox", QemuPrivilege.SandboxOption]);
        argv.AddRange(o.ExtraArgs);
        return argv;
    }
}
