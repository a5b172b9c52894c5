using Passthru.Pci;

namespace Passthru.Launch;

/// <summary>A device to pass through, with the vfio-pci options users need (rombar=0, romfile=, x-vga=on).</summary>
public sealed record PassthroughDevice(DeviceSelector Selector, bool RomBar = true, string? RomFile = null, bool XVga = false)
{
    /// <summary>"0000:83:00.0", or with options: "83:00.0,rombar=0,romfile=/path/vbios.rom,x-vga=on".</summary>
    public static PassthroughDevice Parse(string text)
    {
        var parts = text.Split(',');
        var device = new PassthroughDevice(DeviceSelector.Parse(parts[0]));
        foreach (var option in parts.Skip(1))
        {
            var kv = option.Split('=', 2);
            device = (kv[0], kv.Length > 1 ? kv[1] : null) switch
            {
                ("rombar", "0" or "off") => device with { RomBar = false },
                ("rombar", "1" or "on") => device with { RomBar = true },
                ("romfile", { Length: > 0 } file) => device with { RomFile = file },
                ("x-vga", "on" or "1") => device with { XVga = true },
                ("x-vga", "off" or "0") => device with { XVga = false },
                _ => throw new UserError($"--device '{Shown.Value(text)}': unknown option '{Shown.Value(option)}' (use rombar=0, romfile=FILE or x-vga=on)", ExitCodes.Usage),
            };
        }
        return device;
    }
}

public enum Accel { Auto, Kvm, Tcg }

/// <summary>
/// The guest's emulated network: none unless asked for. QEMU otherwise adds a default NIC (on q35 an e1000e at
/// 00:02.0, the very model users often pass through), which a guest's driver may take instead of the real device.
/// </summary>
public sealed record GuestNetwork(string? Model)
{
    /// <summary>The words Parse starts from (user takes ,model=NAME), for completion and the man page.</summary>
    public static readonly string[] Kinds = ["none", "user"];

    /// <summary>"none", "user" or "user,model=NAME" (QEMU's own -nic spelling; Barrelfish's wrapper uses model=e1000).</summary>
    public static GuestNetwork? Parse(string text, string where)
    {
        var parts = text.Split(',');
        if (parts.Length == 1 && parts[0] == "none") return null;
        if (parts[0] != "user")
            throw new UserError($"{where} '{Shown.Value(text)}': give none, user or user,model=NAME (e.g. user,model=e1000)", ExitCodes.Usage);
        string? model = null;
        foreach (var option in parts.Skip(1))
        {
            if (option.StartsWith("model=", StringComparison.Ordinal) && option.Length > 6 && option[6..].All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
                model = option[6..];
            else throw new UserError($"{where} '{Shown.Value(text)}': unknown option '{Shown.Value(option)}' (only model=NAME, e.g. model=e1000)", ExitCodes.Usage);
        }
        return new GuestNetwork(model);
    }

    public override string ToString() => Model is null ? "user" : $"user,model={Model}";
}

/// <summary>Everything `passthru run` (and `export libvirt`) is told: from the command line, a profile file, or both.</summary>
public sealed record RunOptions
{
    /// <summary>Passthru's state directory, where run remembers what QEMU's -help said (<see cref="QemuProbe"/>); null: QEMU is asked every time.</summary>
    public string? StateDir { get; init; }
    public string? Menu { get; init; }
    public string? BuildDir { get; init; }
    public string? Kernel { get; init; }
    public string? Initrd { get; init; }
    public string? Append { get; init; }
    public IReadOnlyList<string> Disks { get; init; } = [];
    public string? Cdrom { get; init; }
    public int MemoryMiB { get; init; } = 1024;
    public int Cpus { get; init; } = 2;
    public string Machine { get; init; } = "q35";
    public Accel Accel { get; init; } = Accel.Auto;
    /// <summary>An emulated NIC on QEMU's user network, only when asked for (null: the guest has no NIC but its devices).</summary>
    public GuestNetwork? Net { get; init; }
    public string? Qemu { get; init; }
    public IReadOnlyList<PassthroughDevice> Devices { get; init; } = [];
    /// <summary>Also bind (and restore) the other endpoints of each device's IOMMU group.</summary>
    public bool WholeGroup { get; init; }
    /// <summary>Pass every function of each named device (a GPU and its HDMI audio) as functions of one device, as Proxmox's "All Functions".</summary>
    public bool AllFunctions { get; init; }
    /// <summary>Let the host's console go of a GPU passed through (boot VGA, a firmware framebuffer in its BAR), taken back after.</summary>
    public bool ReleaseConsole { get; init; }
    /// <summary>QEMU's emulated display (-vga TYPE); null: QEMU's default, or none when a display controller is passed through.</summary>
    public string? Display { get; init; }
    public bool KeepBound { get; init; }
    /// <summary>On an IOMMU without interrupt remapping, allow vfio unsafe interrupts for this run (put back after it).</summary>
    public bool AllowUnsafeInterrupts { get; init; }
    /// <summary>--reset-method: reset methods for the devices' reset_method while the run holds them (null: as they are).</summary>
    public IReadOnlyList<string>? ResetMethods { get; init; }
    public IReadOnlyList<string> ExtraArgs { get; init; } = [];
    public string? SerialLog { get; init; }
    public string? Expect { get; init; }
    public int? TimeoutSeconds { get; init; }
    /// <summary>A console script (<see cref="ConsoleScript"/>) to run against the guest: a test harness.</summary>
    public string? Script { get; init; }
    /// <summary>Where to write a JUnit XML report of the script's expect steps.</summary>
    public string? Junit { get; init; }
    /// <summary>Keep the console off the terminal (the serial log and the script still see it).</summary>
    public bool Quiet { get; init; }
    /// <summary>After the script, leave the guest running with the console handed back to the terminal.</summary>
    public bool KeepRunning { get; init; }
    public string? Name { get; init; }
    /// <summary>Spare hot-plug root ports for attach (null: 2 on q35, none elsewhere).</summary>
    public int? HotplugSlots { get; init; }
    /// <summary>QEMU's QMP socket for attach and detach (set by run, under the state directory; null: none).</summary>
    public string? ControlSocket { get; init; }
    /// <summary>The unprivileged account QEMU runs as when Passthru is root (--user; null: passthru-qemu).</summary>
    public string? QemuUser { get; init; }
    /// <summary>--as-root: QEMU keeps root, unsandboxed, as before least privilege (warned about).</summary>
    public bool AsRoot { get; init; }

    public bool IsPcie => Machine.StartsWith("q35", StringComparison.Ordinal);
    public int SpareHotplugPorts => HotplugSlots ?? (IsPcie ? 2 : 0);

    /// <summary>
    /// The files of an -initrd value: one initrd, or a multiboot module list ("FILE ARGS,FILE ARGS" with literal
    /// commas doubled), whose entries each start with a file.
    /// </summary>
    public static IEnumerable<string> InitrdFiles(string? initrd) => initrd is null ? [] :
        initrd.Replace(",,", "\0").Split(',').Select(e => e.Replace("\0", ",").Split(' ')[0]).Where(f => f.Length > 0);

    public void Validate()
    {
        int guests = (Menu is null ? 0 : 1) + (Kernel is null ? 0 : 1);
        if (guests > 1) throw new UserError("give either --menu (Barrelfish) or --kernel, not both", ExitCodes.Usage);
        if (guests > 0 && Cdrom is not null)
            throw new UserError($"--cdrom boots the guest from the ISO, --{(Menu is not null ? "menu" : "kernel")} from its own files: give one (a Barrelfish ISO: passthru image --menu MENU -o FILE.iso, then --cdrom FILE.iso)", ExitCodes.Usage);
        if (guests == 0 && Disks.Count == 0 && Cdrom is null)
            throw new UserError("nothing to boot: give --menu FILE (Barrelfish), --kernel FILE, --disk IMAGE or --cdrom ISO", ExitCodes.Usage);
        if (Kernel is null && (Initrd is not null || Append is not null))
            throw new UserError("--initrd and --append need --kernel", ExitCodes.Usage);
        if (Menu is null && BuildDir is not null) throw new UserError("--build-dir goes with --menu", ExitCodes.Usage);
        if (MemoryMiB is < 16 or > 16 << 20) throw new UserError($"--memory {MemoryMiB}: give MiB between 16 and {16 << 20}", ExitCodes.Usage);
        if (Cpus is < 1 or > 1024) throw new UserError($"--cpus {Cpus}: give 1 to 1024", ExitCodes.Usage);
        if (HotplugSlots is < 0 or > 8) throw new UserError($"--hotplug-slots {HotplugSlots}: give 0 to 8", ExitCodes.Usage);
        if (HotplugSlots is > 0 && !IsPcie)
            throw new UserError($"--hotplug-slots {HotplugSlots}: hot-plug ports are PCIe root ports, which need a q35 machine (not --machine {Machine})", ExitCodes.Usage);
        if (QemuUser is not null && !Host.Accounts.IsValidName(QemuUser))
            throw new UserError($"--user '{Shown.Value(QemuUser)}': give a system user name (lower-case letters, digits, '-' or '_', starting with a letter)", ExitCodes.Usage);
        if (QemuUser is not null && AsRoot) throw new UserError("give either --user NAME or --as-root, not both", ExitCodes.Usage);
        if (TimeoutSeconds is <= 0) throw new UserError("--timeout must be a positive number of seconds", ExitCodes.Usage);
        if (Machine.Length == 0 || Machine.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
            throw new UserError($"--machine '{Machine}': give a QEMU machine type such as q35 or pc (qemu-system-x86_64 -machine help lists them)", ExitCodes.Usage);
        if (SerialLog is not null && Path.GetDirectoryName(Path.GetFullPath(SerialLog)) is string logDir && !Directory.Exists(logDir))
            throw new UserError($"--serial-log {SerialLog}: the directory {logDir} does not exist", ExitCodes.Usage);
        if (Expect is not null)
        {
            try { _ = new System.Text.RegularExpressions.Regex(Expect); }
            catch (ArgumentException e) { throw new UserError($"--expect '{Shown.Value(Expect)}' is not a regular expression: {Shown.RegexError(e)}", ExitCodes.Usage); }
        }
        if (Script is not null && Expect is not null)
            throw new UserError("give either --script or --expect, not both (a script's `expect` lines do what --expect does)", ExitCodes.Usage);
        if (Script is null && (Junit is not null || KeepRunning))
            throw new UserError($"{(Junit is not null ? "--junit" : "--keep-running")} goes with --script", ExitCodes.Usage);
        Passthru.Host.OutputFile.Check("--junit", Junit);
        foreach (var (option, file) in new[] { ("--menu", Menu), ("--kernel", Kernel) }.Concat(InitrdFiles(Initrd).Select(f => ("--initrd", (string?)f))))
            if (file is not null) Passthru.Host.InputFile.Require(option, file);
        // An ISO or a disk may be a block device (a real drive or a partition handed to the guest).
        foreach (var (option, file) in new[] { ("--cdrom", Cdrom) }.Concat(Disks.Select(d => ("--disk", (string?)d))))
            if (file is not null) Passthru.Host.InputFile.Require(option, file, blockDevice: true);
        if (Append is not null && Append.Any(c => char.IsControl(c) || c is '\ufffe' or '\uffff'))
            throw new UserError($"--append '{Shown.Value(Append)}': a kernel command line cannot hold control characters", ExitCodes.Usage);
    }
}
