using System.CommandLine;
using Passthru.Binding;
using Passthru.Hotplug;
using Passthru.Launch;

namespace Passthru.Cli.Commands;

/// <summary>`passthru run`: boot Barrelfish (or any guest) in QEMU with devices passed through, and give them back after.</summary>
public static class RunCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout, TextWriter stderr)
    {
        var vm = new RunCliOptions();
        var dryRun = new Option<bool>("--dry-run", "--print-cmd") { Description = "Print the binding plan and the exact QEMU command line; change nothing" };
        var keepBound = new Option<bool>("--keep-bound") { Description = "Leave the devices on vfio-pci when QEMU exits" };
        var serialLog = new Option<string?>("--serial-log") { Description = "Also write the serial console to this file" };
        var expect = new Option<string?>("--expect") { Description = "Succeed as soon as the console shows this regular expression, then stop the guest" };
        var timeout = new Option<string?>("--timeout") { Description = "Stop the guest after this many seconds (a failure with --expect)" };
        var unsafeInterrupts = new Option<bool>("--allow-unsafe-interrupts")
        {
            Description = "On an IOMMU without interrupt remapping, let vfio use the devices for this run (a guest's device can then forge interrupts against the host); put back after it",
        };
        var script = new Option<string?>("--script")
        {
            Description = "Run this console script against the guest, then stop it: lines `expect REGEX` (a .NET regular expression), "
                + "`send TEXT` (escapes \\r \\n \\t \\e \\xHH \\\\), `timeout SECONDS` (per step, default 60), # comments",
        };
        var junit = new Option<string?>("--junit") { Description = "With --script: write a JUnit XML report (one test case per expect line) to this file" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Do not show the guest's console on the terminal (--serial-log and --script still see it)" };
        var keepRunning = new Option<bool>("--keep-running") { Description = "With --script: after it, leave the guest running with the console handed back to the terminal" };
        var stateDir = BindingOptions.StateDirOption();
        var user = new Option<string?>("--user") { Description = $"Run QEMU as this unprivileged user (default {Passthru.Host.Accounts.DefaultQemuUser}, created on first use)" };
        var asRoot = new Option<bool>("--as-root") { Description = "Run QEMU as root without its seccomp sandbox, as before (warned about: a QEMU escape then owns the host)" };
        var resetMethod = BindCommand.ResetMethodOption();
        var hotplugSlots = new Option<string?>("--hotplug-slots") { Description = "Spare PCIe root ports for `passthru attach` (q35 only; default 2, 0 for none)" };
        var command = new Command("run", "Boot a guest in QEMU with PCI devices passed through; give them back afterwards")
        {
            dryRun, keepBound, serialLog, expect, timeout, script, junit, quiet, keepRunning, unsafeInterrupts, stateDir, hotplugSlots, user, asRoot, resetMethod,
        };
        vm.AddTo(command);
        command.SetAction(p =>
        {
            var options0 = vm.Read(p); // the profile's (-f) and the shared VM options
            var options = options0 with
            {
                KeepBound = p.GetValue(keepBound) || options0.KeepBound,
                AllowUnsafeInterrupts = p.GetValue(unsafeInterrupts) || options0.AllowUnsafeInterrupts,
                // A profile's values stand unless the command line gives its own.
                SerialLog = p.GetValue(serialLog) is string log ? Passthru.Host.InputFile.FullPath("--serial-log", log) : options0.SerialLog,
                Expect = p.GetValue(expect) ?? options0.Expect,
                Script = p.GetValue(script) ?? options0.Script,
                Junit = p.GetValue(junit) ?? options0.Junit,
                Quiet = p.GetValue(quiet) || options0.Quiet,
                KeepRunning = p.GetValue(keepRunning) || options0.KeepRunning,
                TimeoutSeconds = p.GetValue(timeout) is string t ? MemorySize.ParseCount(t, "--timeout") : options0.TimeoutSeconds,
                HotplugSlots = p.GetValue(hotplugSlots) is string h ? MemorySize.ParseCount(h, "--hotplug-slots") : options0.HotplugSlots,
                QemuUser = p.GetValue(user) ?? options0.QemuUser,
                AsRoot = p.GetValue(asRoot) || options0.AsRoot,
                ResetMethods = p.GetValue(resetMethod) is string rm ? ResetMethodPlanner.ParseOption(rm) : options0.ResetMethods,
            };
            var host = globals.Host(p);
            var dir = BindingOptions.StateDirectory(p, stateDir, host);
            options = WithControl(options, dir, stderr, dryRun: p.GetValue(dryRun));
            RunPlan plan;
            try { plan = RunSession.Plan(host, options); }
            catch when (options.ControlSocket is not null && options.Name is not null)
            {
                GuestRecords.ForgetReservation(dir, options.Name); // the name this run reserved, if it did
                throw;
            }
            if (p.GetValue(dryRun))
            {
                foreach (var w in plan.Warnings) stdout.WriteLine(w);
                if (!plan.Binding.IsEmpty || plan.Binding.Notes.Count > 0)
                {
                    foreach (var line in plan.Binding.Describe()) stdout.WriteLine(line);
                    if (!options.KeepBound && !plan.Binding.IsEmpty)
                    {
                        // The give-back is a plan too: the journaled inverses of the bind, as it will be when the guest ends.
                        stdout.WriteLine("then, when QEMU exits (give back):");
                        int i = 1;
                        foreach (var step in BindPlanner.PredictReturn(host, plan.Binding)) stdout.WriteLine($"  {i++,2}. {step.Describe()}");
                    }
                }
                if (plan.Privilege.User is { } account && plan.Devices.Count > 0)
                    stdout.WriteLine($"then: hand the vfio node of each device's IOMMU group (/dev/vfio/N) to {account.Name}, mode 0600, until the guest ends (journaled; put back as it was)");
                stdout.WriteLine(plan.Privilege.Describe());
                if (plan.Argv.Any(a => a.Contains(QemuCommand.QmpDescriptor, StringComparison.Ordinal)))
                    stdout.WriteLine($"(the control socket {options.ControlSocket} is made by passthru and handed to QEMU as {QemuCommand.QmpDescriptor})");
                stdout.WriteLine(QemuArgs.ShellJoin(plan.Argv));
                return ExitCodes.Ok;
            }
            stdout.Flush();
            return RunSession.Execute(host, plan, dir, stdout, stderr,
                progress: !Console.IsErrorRedirected);
        });
        return command;
    }

    /// <summary>The guest's name and control socket, from custody's naming of guests; a note when it runs without one.</summary>
    private static RunOptions WithControl(RunOptions o, string stateDir, TextWriter stderr, bool dryRun)
    {
        var named = GuestRecords.Name(stateDir, o.Name, Stem(o), reserve: !dryRun);
        if (named.Note is not null) stderr.WriteLine($"[passthru] note: {named.Note}");
        return o with { Name = named.Name, ControlSocket = named.Socket, StateDir = stateDir };
    }

    private static string Stem(RunOptions o)
    {
        var file = o.Menu is not null ? "barrelfish" : Path.GetFileNameWithoutExtension(o.Kernel ?? o.Disks.FirstOrDefault() ?? o.Cdrom ?? "guest");
        var stem = new string(file.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? char.ToLowerInvariant(c) : '-').ToArray()).Trim('-', '_');
        return stem.Length == 0 || !char.IsAsciiLetterOrDigit(stem[0]) ? "guest" : stem[..Math.Min(stem.Length, 40)];
    }
}
