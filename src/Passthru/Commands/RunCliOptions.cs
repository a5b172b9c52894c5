using System.CommandLine;
using Passthru.Host;
using Passthru.Launch;

namespace Passthru.Cli.Commands;

/// <summary>
/// The options that describe a VM, shared by `run` and `export libvirt` so both always mean the same thing.
/// Command-line values override a profile's (-f); unset options keep the profile's or the defaults.
/// </summary>
public sealed class RunCliOptions
{
    public Option<string?> Profile { get; } = new("--profile", "-f") { Description = "TOML profile with these options (command-line values win)" };
    public Option<string?> Menu { get; } = new("--menu") { Description = "Barrelfish menu.lst: kernel, modules and arguments" };
    public Option<string?> BuildDir { get; } = new("--build-dir") { Description = "Barrelfish build directory the menu's paths start from" };
    public Option<string?> Kernel { get; } = new("--kernel") { Description = "Kernel to boot (Linux bzImage or multiboot ELF)" };
    public Option<string?> Initrd { get; } = new("--initrd") { Description = "Initrd (or multiboot modules: 'FILE ARGS,FILE ARGS')" };
    public Option<string?> Append { get; } = new("--append") { Description = "Kernel command line" };
    public Option<string[]> Disks { get; } = new("--disk") { Description = "Disk image (repeatable)", AllowMultipleArgumentsPerToken = false };
    public Option<string?> Cdrom { get; } = new("--cdrom") { Description = "ISO image" };
    // Numbers are read as text and parsed by Passthru, so a bad one gets a message that names the option and the
    // accepted forms, never System.CommandLine's "as expected type 'System.Nullable`1[System.Int32]'".
    public Option<string?> Memory { get; } = new("--memory", "-m") { Description = "Guest memory: MiB, or a size as QEMU's -m takes it (512M, 2G, 1.5G; default 1024)" };
    public Option<string?> Cpus { get; } = new("--cpus") { Description = "Virtual CPUs (default 2)" };
    public Option<string?> Machine { get; } = new("--machine") { Description = "QEMU machine (default q35: passthrough wants PCIe)" };
    public Option<string?> AccelOption { get; } = new("--accel") { Description = "kvm, tcg or auto (default: KVM where it really works, else TCG)" };
    public Option<string?> Net { get; } = new("--net") { Description = "Emulated NIC: none (default: only the devices passed through) or user[,model=NAME]" };
    public Option<string?> Qemu { get; } = new("--qemu") { Description = "QEMU binary (default: qemu-system-x86_64 on PATH)" };
    public Option<string[]> Devices { get; } = new("--device") { Description = "Device to pass through (repeatable): ADDRESS[,rombar=0][,romfile=FILE][,x-vga=on]" };
    public Option<bool> Group { get; } = new("--group") { Description = "Also bind the other endpoints of each device's IOMMU group (the named devices' own other functions in it join the guest with them)" };
    public Option<bool> AllFunctions { get; } = new("--all-functions") { Description = "Pass every function of each named device as one multifunction device (a GPU with its HDMI audio)" };
    public Option<bool> ReleaseConsole { get; } = new("--release-console") { Description = "Let the host's console go of a GPU passed through (boot VGA, a firmware framebuffer in its BAR); taken back after" };
    public Option<string?> Display { get; } = new("--display") { Description = "QEMU's emulated display: std, virtio, none, ... (default: QEMU's, none when a GPU is passed through)" };
    public Option<string?> Name { get; } = new("--name") { Description = "Guest name" };
    public Argument<string[]> QemuArgs { get; } = new("qemu-args") { Description = "Extra QEMU arguments, after --", Arity = ArgumentArity.ZeroOrMore };

    public RunCliOptions()
    {
        // Offered by the completion scripts and listed in the man page; the parsers below still decide what is valid.
        AccelOption.CompletionSources.Add(RunProfile.AccelNames);
        Display.CompletionSources.Add(RunProfile.DisplayTypes);
        Net.CompletionSources.Add(GuestNetwork.Kinds);
    }

    public void AddTo(Command c)
    {
        foreach (var o in new Option[] { Profile, Menu, BuildDir, Kernel, Initrd, Append, Disks, Cdrom, Memory, Cpus, Machine, AccelOption, Net, Qemu, Devices, Group, AllFunctions, ReleaseConsole, Display, Name })
            c.Options.Add(o);
        c.Arguments.Add(QemuArgs);
    }

    public RunOptions Read(ParseResult p)
    {
        var extra = p.GetValue(QemuArgs) ?? [];
        if (extra.Length > 0 && !p.Tokens.Any(t => t.Value == "--"))
            throw new UserError($"unexpected argument '{extra[0]}': QEMU arguments go after --", ExitCodes.Usage);
        var o = p.GetValue(Profile) is string profile ? RunProfile.Load(InputFile.FullPath("--profile", profile)) : new RunOptions();
        var disks = p.GetValue(Disks) ?? [];
        var devices = p.GetValue(Devices) ?? [];
        return o with
        {
            Menu = Full("--menu", p.GetValue(Menu)) ?? o.Menu,
            BuildDir = Full("--build-dir", p.GetValue(BuildDir)) ?? o.BuildDir,
            Kernel = Full("--kernel", p.GetValue(Kernel)) ?? o.Kernel,
            Initrd = NotEmpty("--initrd", p.GetValue(Initrd)) ?? o.Initrd,
            Append = p.GetValue(Append) ?? o.Append,
            Disks = disks.Length > 0 ? disks.Select(d => Full("--disk", d)!).ToList() : o.Disks,
            Cdrom = Full("--cdrom", p.GetValue(Cdrom)) ?? o.Cdrom,
            MemoryMiB = p.GetValue(Memory) is string m ? MemorySize.ParseMiB(m, "--memory") : o.MemoryMiB,
            Cpus = p.GetValue(Cpus) is string c ? MemorySize.ParseCount(c, "--cpus") : o.Cpus,
            Machine = p.GetValue(Machine) ?? o.Machine,
            Accel = p.GetValue(AccelOption) is string a ? RunProfile.ParseAccel(a, "--accel") : o.Accel,
            Net = p.GetValue(Net) is string n ? GuestNetwork.Parse(n, "--net") : o.Net,
            Qemu = NotEmpty("--qemu", p.GetValue(Qemu)) ?? o.Qemu,
            Devices = devices.Length > 0 ? devices.Select(PassthroughDevice.Parse).ToList() : o.Devices,
            WholeGroup = p.GetValue(Group) || o.WholeGroup,
            AllFunctions = p.GetValue(AllFunctions) || o.AllFunctions,
            ReleaseConsole = p.GetValue(ReleaseConsole) || o.ReleaseConsole,
            Display = p.GetValue(Display) is string display ? RunProfile.ParseDisplay(display, "--display") : o.Display,
            Name = p.GetValue(Name) ?? o.Name,
            ExtraArgs = extra.Length > 0 ? extra : o.ExtraArgs,
        };
    }

    private static string? Full(string option, string? path) => path is null ? null : InputFile.FullPath(option, path);

    /// <summary>A file name kept as given (QEMU or the initrd list resolve it), but never an empty one or one with a NUL.</summary>
    private static string? NotEmpty(string option, string? path)
    {
        if (path is not null) InputFile.FullPath(option, path);
        return path;
    }
}
