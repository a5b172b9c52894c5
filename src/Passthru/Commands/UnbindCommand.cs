using System.CommandLine;
using Passthru.Binding;
using Passthru.Pci;

namespace Passthru.Cli.Commands;

/// <summary>
/// `passthru unbind DEVICE...` and `passthru restore [DEVICE...|--all]`: give devices back to the driver they had
/// before Passthru took them, from the journal.
/// </summary>
public static class UnbindCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout) => Build(globals, stdout, restore: false);

    public static Command CreateRestore(GlobalOptions globals, TextWriter stdout) => Build(globals, stdout, restore: true);

    private static Command Build(GlobalOptions globals, TextWriter stdout, bool restore)
    {
        var devices = BindingOptions.Devices(restore ? ArgumentArity.ZeroOrMore : ArgumentArity.OneOrMore);
        var group = new Option<bool>("--group") { Description = "Also give back the other functions of each device's IOMMU group that Passthru bound" };
        var all = new Option<bool>("--all") { Description = "Every device Passthru has bound (the default for restore without devices)" };
        var shared = new BindingOptions();
        var command = restore
            ? new Command("restore", "Give every device Passthru bound (or the ones named) back to its driver; works after a crash") { devices, all }
            : new Command("unbind", "Give devices back to the driver they had before bind") { devices, group };
        shared.AddTo(command);
        command.SetAction(p =>
        {
            var selectors = p.GetValue(devices)!.Select(DeviceSelector.Parse).ToList();
            var host = globals.Host(p);
            var dir = shared.Directory(p, host);
            bool dryRun = p.GetValue(shared.DryRun);
            if (!dryRun) BindingOptions.RequireRoot(host, restore ? "restore" : "unbind");
            using var custody = dryRun ? Custody.Look(host, dir) : Custody.Take(host, dir);
            var plan = custody.PlanRestore(selectors, p.GetValue(group), restore);
            if (plan.IsEmpty && plan.Functions.Count == 0 && plan.Sriov.Count == 0)
            {
                foreach (var note in plan.Notes) stdout.WriteLine(note);
                stdout.WriteLine($"nothing to give back: Passthru has no devices bound (journal {Path.Combine(dir, Journal.FileName)})");
                return ExitCodes.Ok;
            }
            if (dryRun)
            {
                BindingOptions.PrintPlan(stdout, plan);
                return ExitCodes.Ok;
            }
            var result = BindingOptions.GiveBack(custody, plan, stdout, p.GetValue(shared.Verbose));
            return result.Problems.Count == 0 ? ExitCodes.Ok : ExitCodes.Failure;
        });
        return command;
    }
}
