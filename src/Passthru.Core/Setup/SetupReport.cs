namespace Passthru.Setup;

/// <summary>The plan as users read it: why each parameter, a unified diff of each file, the commands, what next.</summary>
public static class SetupReport
{
    public const string RebootAdvice = "A reboot is needed for these changes to take effect; after it, run `passthru check` to confirm.";

    public static void WritePlan(TextWriter o, SetupPlan plan, string applyCommand)
    {
        o.WriteLine($"Boot loader: {plan.BootLoader}");
        if (plan.Parameters.Count > 0)
        {
            o.WriteLine("Kernel parameters:");
            foreach (var p in plan.Parameters) o.WriteLine($"  {p.Describe()}: {p.Reason}");
        }
        foreach (var note in plan.Decisions.Notes) o.WriteLine($"Note: {note}");
        if (plan.IsEmpty)
        {
            o.WriteLine("Nothing to change: the boot configuration already has everything passthru setup adds.");
            o.WriteLine("If you have not rebooted since it was applied, reboot; then `passthru check` confirms.");
            return;
        }
        foreach (var f in plan.Files)
        {
            o.WriteLine();
            o.Write(UnifiedDiff.Make(f.Path, f.Before, f.After));
        }
        if (plan.Commands.Count > 0)
        {
            o.WriteLine();
            o.WriteLine("Commands:");
            int width = plan.Commands.Max(c => c.Display.Length);
            foreach (var c in plan.Commands) o.WriteLine($"  {c.Display.PadRight(width)}  # {c.Purpose}");
        }
        o.WriteLine();
        o.WriteLine($"This is the plan: nothing was changed. To apply it (files are backed up first): {applyCommand}");
        o.WriteLine(RebootAdvice);
    }
}
