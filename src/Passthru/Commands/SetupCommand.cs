using System.CommandLine;
using Passthru.Pci;
using Passthru.Setup;

namespace Passthru.Cli.Commands;

/// <summary>
/// `passthru setup`: the permanent boot configuration for passthrough (kernel parameters, vfio modules, devices
/// claimed at boot). Prints the plan as a diff; --apply applies it; --undo puts back what it changed.
/// </summary>
public static class SetupCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout)
    {
        var device = new Option<string[]>("--device") { Description = "A device vfio-pci claims at boot: 0000:83:00.0, 83:00.0 or vendor:device (repeatable)" };
        var vfs = new Option<string[]>("--vfs") { Description = "Create VFs at boot: PF=N, e.g. 0000:03:00.0=4 (repeatable); with --device naming VFs, they go to vfio-pci" };
        var iommuPt = new Option<bool>("--iommu-pt") { Description = "Add iommu=pt: host devices skip IOMMU translation (host I/O performance)" };
        var unsafeInterrupts = new Option<bool>("--allow-unsafe-interrupts")
        {
            Description = "Add vfio_iommu_type1.allow_unsafe_interrupts=1 where the IOMMU does not remap interrupts (a guest's device can then forge interrupts against the host)",
        };
        var noBootFramebuffer = new Option<bool>("--no-boot-framebuffer")
        {
            Description = "Keep the firmware's framebuffer (efifb, vesafb, simplefb) off the GPUs at boot, so none holds a GPU meant for guests (the console then starts on the GPU's own driver, or on serial)",
        };
        var loader = new Option<string?>("--boot-loader") { Description = "grub, kernel-install or grubby (default: detected)" };
        loader.CompletionSources.Add(BootLoader.Names);
        var apply = new Option<bool>("--apply") { Description = "Apply the plan: back up and write the files, run the commands" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the plan and change nothing (what setup does without --apply)" };
        var undo = new Option<bool>("--undo") { Description = "Put back every file setup changed and remove those it created" };
        var force = new Option<bool>("--force") { Description = "Claim a device even though mounted file systems live on it" };
        // The lock setup shares with bind and run lives there; setup's own record stays in var/lib/passthru under --root
        // (it must outlive the reboot setup asks for, where /run does not).
        var stateDir = BindingOptions.StateDirOption();
        var command = new Command("setup", "Configure the boot for passthrough (IOMMU, vfio modules, devices at boot): shows a plan, --apply applies it")
        {
            device, vfs, iommuPt, unsafeInterrupts, noBootFramebuffer, loader, apply, dryRun, undo, force, stateDir,
        };
        command.SetAction(p =>
        {
            var host = globals.Host(p);
            if (p.GetValue(dryRun) && (p.GetValue(apply) || p.GetValue(undo)))
                throw new UserError($"--dry-run changes nothing, --{(p.GetValue(apply) ? "apply" : "undo")} changes the host: give one of them", ExitCodes.Usage);
            var applier = new SetupApplier(host, Environment.IsPrivilegedProcess, stateDir: p.GetValue(stateDir));
            if (p.GetValue(undo))
            {
                if (p.GetValue(device) is { Length: > 0 } || p.GetValue(vfs) is { Length: > 0 } || p.GetValue(iommuPt) || p.GetValue(apply) || p.GetValue(force) || p.GetValue(unsafeInterrupts) || p.GetValue(noBootFramebuffer))
                    throw new UserError("--undo takes no other setup options: it puts back what was recorded", ExitCodes.Usage);
                foreach (var line in applier.Undo().Lines) stdout.WriteLine(line);
                stdout.WriteLine("A reboot is needed for the restored configuration to take effect.");
                return ExitCodes.Ok;
            }
            var request = new SetupRequest((p.GetValue(device) ?? []).Select(DeviceSelector.Parse).ToList(), p.GetValue(iommuPt), p.GetValue(loader), p.GetValue(force), p.GetValue(unsafeInterrupts))
            {
                Vfs = (p.GetValue(vfs) ?? []).Select(VfsAtBoot.Parse).ToList(),
                NoBootFramebuffer = p.GetValue(noBootFramebuffer),
            };
            var plan = SetupPlan.Make(host, request);
            if (!p.GetValue(apply))
            {
                SetupReport.WritePlan(stdout, plan, ApplyCommand(p.Tokens.Select(t => t.Value).Where(t => t != "--dry-run")));
                return ExitCodes.Ok;
            }
            foreach (var line in applier.Apply(plan).Lines) stdout.WriteLine(line);
            if (!plan.IsEmpty) stdout.WriteLine(SetupReport.RebootAdvice);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static string ApplyCommand(IEnumerable<string> tokens) =>
        "passthru " + string.Join(' ', tokens.Select(t => t.Contains(' ') ? $"'{t}'" : t)) + " --apply";
}
