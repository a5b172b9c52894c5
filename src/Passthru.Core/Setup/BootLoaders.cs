using Passthru.Host;

namespace Passthru.Setup;

/// <summary>What a boot loader needs for a set of parameter changes: files to change and commands to run.</summary>
public sealed record LoaderChanges(IReadOnlyList<FileChange> Files, IReadOnlyList<PlannedCommand> Commands, IReadOnlyList<PlannedCommand> UndoCommands);

/// <summary>
/// Where this host keeps its kernel command line and how it is put into effect. Detected under the host root:
/// grubby (Fedora, RHEL), GRUB's etc/default/grub (Debian, Ubuntu, Arch with GRUB), kernel-install's
/// etc/kernel/cmdline (systemd-boot, unified kernel images).
/// </summary>
public abstract class BootLoader
{
    public static readonly string[] Names = ["grub", "kernel-install", "grubby"];

    public abstract string Description { get; }

    /// <summary>The configured command line, in the order the kernel will see it.</summary>
    public abstract IReadOnlyList<CmdlineWord> Words { get; }

    public abstract LoaderChanges Change(IReadOnlyList<ParameterChange> changes);

    public static BootLoader? Detect(HostRoot host, string? choice)
    {
        switch (choice)
        {
            case null or "" or "auto": break;
            case "grub":
                return host.Exists(GrubLoader.DefaultsFile) ? new GrubLoader(host)
                    : throw new UserError($"--boot-loader grub: {host.Path(GrubLoader.DefaultsFile)} does not exist");
            case "kernel-install": return new KernelInstallLoader(host);
            case "grubby":
                return Programs.Find(host, "grubby") is not null ? new GrubbyLoader(host)
                    : throw new UserError("--boot-loader grubby: grubby is not installed on this host");
            default:
                throw new UserError($"unknown boot loader '{choice}': use grub, kernel-install or grubby (or leave --boot-loader out to detect it)", ExitCodes.Usage);
        }
        if (Programs.Find(host, "grubby") is not null) return new GrubbyLoader(host);
        if (host.Exists(GrubLoader.DefaultsFile)) return new GrubLoader(host);
        if (host.Exists(KernelInstallLoader.CmdlineFile)
            || (Programs.Find(host, "kernel-install") is not null
                && new[] { "boot/loader/entries", "efi/loader", "boot/efi/loader" }.Any(host.DirectoryExists)))
            return new KernelInstallLoader(host);
        return null; // the planner turns this into an error that names the parameters to add by hand
    }

    internal static FileChange? Changed(string path, string? before, string after) =>
        before == after ? null : new FileChange(path, before, after);
}

/// <summary>GRUB: GRUB_CMDLINE_LINUX_DEFAULT in etc/default/grub (or the drop-in that sets it last), then update-grub.</summary>
public sealed class GrubLoader : BootLoader
{
    public const string DefaultsFile = "etc/default/grub";
    public const string DropInDir = "etc/default/grub.d";

    private readonly HostRoot _host;
    private readonly List<(string Path, string Text)> _files = [];
    private readonly List<GrubAssignment> _assignments = [];

    public GrubLoader(HostRoot host)
    {
        _host = host;
        // update-grub (grub-mkconfig) sources etc/default/grub, then each etc/default/grub.d/*.cfg in order.
        var paths = new[] { DefaultsFile }.Concat(host.List(DropInDir).Where(n => n.EndsWith(".cfg", StringComparison.Ordinal)).Select(n => DropInDir + "/" + n));
        foreach (var path in paths)
        {
            var text = SetupFiles.ReadText(host, path) ?? throw new UserError($"cannot read {host.Path(path)}: run as root");
            _files.Add((path, text));
            _assignments.AddRange(GrubDefaults.Parse(text, path));
        }
        Regenerate = RegenerateCommand(host);
    }

    public PlannedCommand Regenerate { get; }

    public override string Description =>
        $"GRUB ({string.Join(", ", _assignments.Where(a => a.Variable == GrubDefaults.LinuxDefault).Select(a => a.File).DefaultIfEmpty(DefaultsFile).Distinct())})";

    // grub.cfg's linux line has ${GRUB_CMDLINE_LINUX} ${GRUB_CMDLINE_LINUX_DEFAULT}, in that order.
    public override IReadOnlyList<CmdlineWord> Words =>
        _assignments.Where(a => a.Variable == GrubDefaults.Linux).Concat(_assignments.Where(a => a.Variable == GrubDefaults.LinuxDefault))
            .SelectMany(a => a.Words).ToList();

    public override LoaderChanges Change(IReadOnlyList<ParameterChange> changes)
    {
        var edits = new List<TextEdit>();
        string TextOf(string file) => _files.First(f => f.Path == file).Text;
        foreach (var c in changes)
        {
            if (c is ParameterChange.Replace r) edits.Add(new TextEdit(r.Word.File, r.Word.Start, r.Word.Length, r.Text));
            if (c is ParameterChange.Remove m) edits.Add(TextEdit.RemoveWord(TextOf(m.Word.File), m.Word));
        }
        var added = changes.OfType<ParameterChange.Add>().Select(a => a.Text).ToList();
        string? appendLine = null;
        if (added.Count > 0)
        {
            var target = _assignments.LastOrDefault(a => a.Variable == GrubDefaults.LinuxDefault);
            if (target is not null) edits.Add(GrubDefaults.Append(TextOf(target.File), target, added));
            else appendLine = $"{GrubDefaults.LinuxDefault}=\"{string.Join(' ', added)}\"\n";
        }
        var files = new List<FileChange>();
        foreach (var (path, text) in _files)
        {
            var after = TextEdit.ApplyAll(text, edits.Where(e => e.File == path));
            if (appendLine is not null && path == DefaultsFile)
                after += (after.Length == 0 || after.EndsWith('\n') ? "" : "\n") + appendLine;
            if (Changed(path, text, after) is { } f) files.Add(f);
        }
        return files.Count == 0 ? new([], [], []) : new(files, [Regenerate], [Regenerate]);
    }

    private static PlannedCommand RegenerateCommand(HostRoot host)
    {
        const string purpose = "writes the boot menu (grub.cfg) from the GRUB defaults";
        if (Programs.Find(host, "update-grub") is not null) return new(["update-grub"], purpose);
        if (Programs.Find(host, "grub2-mkconfig") is not null) return new(["grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"], purpose);
        if (Programs.Find(host, "grub-mkconfig") is not null) return new(["grub-mkconfig", "-o", "/boot/grub/grub.cfg"], purpose);
        throw new UserError($"{host.Path(DefaultsFile)} is here but none of update-grub, grub2-mkconfig, grub-mkconfig is installed: install GRUB's tools or choose --boot-loader");
    }
}

/// <summary>systemd-boot and unified kernel images: etc/kernel/cmdline, put into effect by kernel-install.</summary>
public sealed class KernelInstallLoader : BootLoader
{
    public const string CmdlineFile = "etc/kernel/cmdline";

    private readonly string? _before;
    private readonly string _text;
    private readonly PlannedCommand? _install;

    public KernelInstallLoader(HostRoot host)
    {
        _before = host.Exists(CmdlineFile)
            ? SetupFiles.ReadText(host, CmdlineFile) ?? throw new UserError($"cannot read {host.Path(CmdlineFile)}: run as root")
            : null;
        // Without the file kernel-install uses the running command line; the new file starts from it, less what the
        // boot loader itself adds.
        _text = _before ?? string.Join(' ', KernelParameters.SplitPlain(host.ReadAttribute("proc/cmdline") ?? "", CmdlineFile)
            .Select(w => w.Text).Where(w => !w.StartsWith("BOOT_IMAGE=", StringComparison.Ordinal) && !w.StartsWith("initrd=", StringComparison.Ordinal))) + "\n";
        if (_text == "\n") _text = "";
        var release = host.ReadAttribute("proc/sys/kernel/osrelease");
        var image = release is null ? null : new[] { $"boot/vmlinuz-{release}", $"usr/lib/modules/{release}/vmlinuz" }.FirstOrDefault(host.Exists);
        if (Programs.Find(host, "kernel-install") is not null && image is not null)
            _install = new(["kernel-install", "add", release!, "/" + image], "writes the boot entry of the running kernel with the new command line");
    }

    public override string Description => $"kernel-install ({CmdlineFile}{(_before is null ? ", new" : "")})";

    public override IReadOnlyList<CmdlineWord> Words => KernelParameters.SplitPlain(_text, CmdlineFile);

    public override LoaderChanges Change(IReadOnlyList<ParameterChange> changes)
    {
        var edits = new List<TextEdit>();
        foreach (var c in changes)
        {
            if (c is ParameterChange.Replace r) edits.Add(new TextEdit(CmdlineFile, r.Word.Start, r.Word.Length, r.Text));
            if (c is ParameterChange.Remove m) edits.Add(TextEdit.RemoveWord(_text, m.Word));
        }
        var added = changes.OfType<ParameterChange.Add>().Select(a => a.Text).ToList();
        var after = _text;
        if (added.Count > 0)
        {
            var initArgs = Words.FirstOrDefault(w => w.Text == "--");
            int end = _text.TrimEnd().Length;
            edits.Add(initArgs is not null ? new TextEdit(CmdlineFile, initArgs.Start, 0, string.Join(' ', added) + " ")
                : new TextEdit(CmdlineFile, end, 0, (end == 0 ? "" : " ") + string.Join(' ', added) + (_text.Length == 0 ? "\n" : "")));
        }
        after = TextEdit.ApplyAll(after, edits);
        if (Changed(CmdlineFile, _before, after) is not { } file) return new([], [], []);
        return _install is null ? new([file], [], []) : new([file], [_install], [_install]);
    }
}

/// <summary>
/// grubby (Fedora, RHEL) edits every boot entry itself: the plan is its command, and undo is the opposite command.
/// The current command line is the running kernel's, which grubby's entries produced.
/// </summary>
public sealed class GrubbyLoader(HostRoot host) : BootLoader
{
    public override string Description => "grubby (every installed kernel's boot entry)";

    public override IReadOnlyList<CmdlineWord> Words { get; } = KernelParameters.SplitPlain(host.ReadAttribute("proc/cmdline") ?? "", "proc/cmdline");

    public override LoaderChanges Change(IReadOnlyList<ParameterChange> changes)
    {
        var add = changes.Select(c => c switch { ParameterChange.Add a => a.Text, ParameterChange.Replace r => r.Text, _ => null }).OfType<string>().ToList();
        var remove = changes.Select(c => c switch { ParameterChange.Remove m => m.Word.Text, ParameterChange.Replace r => r.Word.Text, _ => null }).OfType<string>().ToList();
        if (add.Count == 0 && remove.Count == 0) return new([], [], []);
        return new([], [Command(add, remove, "adds the parameters to every boot entry")], [Command(remove, add, "puts the boot entries' parameters back")]);
    }

    private static PlannedCommand Command(List<string> add, List<string> remove, string purpose)
    {
        var argv = new List<string> { "grubby", "--update-kernel=ALL" };
        if (remove.Count > 0) argv.Add("--remove-args=" + string.Join(' ', remove));
        if (add.Count > 0) argv.Add("--args=" + string.Join(' ', add));
        return new PlannedCommand(argv, purpose);
    }
}
