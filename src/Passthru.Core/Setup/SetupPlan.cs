using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Setup;

/// <summary>
/// A file the plan writes. Text is the file's bytes read as Latin-1, one character per byte, so bytes Passthru does
/// not touch are written back exactly whatever their encoding. Before is null for a file the plan creates.
/// </summary>
public sealed record FileChange(string Path, string? Before, string After)
{
    public bool Created => Before is null;
}

/// <summary>A program the plan runs, as an argument vector (never a shell), and why.</summary>
public sealed record PlannedCommand(IReadOnlyList<string> Argv, string Purpose)
{
    public string Display => string.Join(' ', Argv.Select(Quote));

    private static string Quote(string a) =>
        a.Length > 0 && a.All(c => char.IsAsciiLetterOrDigit(c) || "-_=./:,@+".Contains(c)) ? a : "'" + a.Replace("'", "'\\''") + "'";
}

/// <summary>Everything `setup` would do on this host: data, printed as a diff, applied by <see cref="SetupApplier"/>.</summary>
public sealed record SetupPlan(
    string BootLoader,
    SetupDecisions Decisions,
    IReadOnlyList<ParameterChange> Parameters,
    IReadOnlyList<FileChange> Files,
    IReadOnlyList<PlannedCommand> Commands,
    IReadOnlyList<PlannedCommand> UndoCommands)
{
    public bool IsEmpty => Files.Count == 0 && Commands.Count == 0;

    public static SetupPlan Make(HostRoot host, SetupRequest request)
    {
        var facts = new HostFacts(host);
        var decisions = SetupDecisions.Decide(facts, PciInventory.Load(host), request);
        var loader = Setup.BootLoader.Detect(host, request.BootLoader);
        if (loader is null)
        {
            var wanted = KernelParameters.Decide(KernelParameters.SplitPlain(host.ReadAttribute("proc/cmdline") ?? "", "proc/cmdline"), decisions);
            throw new UserError($"no supported boot loader under {host.Root} (GRUB's etc/default/grub, grubby, kernel-install's etc/kernel/cmdline): "
                + (wanted.Count == 0 ? "nothing to add to the kernel command line" : $"change the kernel command line by hand ({string.Join("; ", wanted.Select(c => c.Describe()))})")
                + ", or name one with --boot-loader");
        }
        var parameters = KernelParameters.Decide(loader.Words, decisions);
        var boot = loader.Change(parameters);
        var modules = ModuleFiles.Plan(host, decisions);

        var commands = new List<PlannedCommand>();
        var undo = new List<PlannedCommand>();
        if (modules.Count > 0 && ModuleFiles.InitramfsCommand(host) is { } initramfs)
        {
            commands.Add(initramfs);
            undo.Add(initramfs);
        }
        else if (modules.Any(m => m.Path != ModuleFiles.ModulesLoad))
            decisions = decisions with { Notes = [.. decisions.Notes, "no initramfs tool found (update-initramfs, dracut, mkinitcpio): if the initramfs loads the devices' drivers, rebuild it by hand"] };
        // The boot entries come after the initramfs: kernel-install and grubby pick up the new image.
        commands.AddRange(boot.Commands);
        undo.AddRange(boot.UndoCommands);
        return new SetupPlan(loader.Description, decisions, parameters, [.. boot.Files, .. modules], commands, undo);
    }
}
