using System.CommandLine;
using Passthru.Binding;
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
        var stateDir = new Option<string?>("--state-dir") { Description = "Where the binding journal and lock live (default: /run/passthru under --root)" };
        var command = new Command("run", "Boot a guest in QEMU with PCI devices passed through; give them back afterwards")
        {
            dryRun, keepBound, serialLog, expect, timeout, script, junit, quiet, keepRunning, unsafeInterrupts, stateDir,
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
                SerialLog = p.GetValue(serialLog) is string log ? Path.GetFullPath(log) : options0.SerialLog,
                Expect = p.GetValue(expect) ?? options0.Expect,
                Script = p.GetValue(script) ?? options0.Script,
                Junit = p.GetValue(junit) is string j ? Path.GetFullPath(j) : options0.Junit,
                Quiet = p.GetValue(quiet) || options0.Quiet,
                KeepRunning = p.GetValue(keepRunning) || options0.KeepRunning,
                TimeoutSeconds = p.GetValue(timeout) is string t ? MemorySize.ParseCount(t, "--timeout") : options0.TimeoutSeconds,
            };
            var host = globals.Host(p);
            var plan = RunSession.Plan(host, options);
            if (p.GetValue(dryRun))
            {
                foreach (var w in plan.Warnings) stdout.WriteLine(w);
                if (!plan.Binding.IsEmpty || plan.Binding.Notes.Count > 0)
                {
                    foreach (var line in plan.Binding.Describe()) stdout.WriteLine(line);
                    if (!options.KeepBound && !plan.Binding.IsEmpty) stdout.WriteLine("  then, when QEMU exits: give them back to their drivers");
                }
                stdout.WriteLine(QemuArgs.ShellJoin(plan.Argv));
                return ExitCodes.Ok;
            }
            stdout.Flush();
            return RunSession.Execute(host, plan, p.GetValue(stateDir) ?? Journal.DefaultDirectory(host), stdout, stderr,
                progress: !Console.IsErrorRedirected);
        });
        return command;
    }
}
