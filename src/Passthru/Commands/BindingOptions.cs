using System.CommandLine;
using System.Runtime.InteropServices;
using Passthru.Binding;
using Passthru.Host;

namespace Passthru.Cli.Commands;

/// <summary>What bind, unbind and restore share: --dry-run, --state-dir, --verbose, and the way they apply a plan.</summary>
public sealed class BindingOptions
{
    public Option<bool> DryRun { get; } = new("--dry-run") { Description = "Print the exact plan (each sysfs write, each module) and change nothing" };
    public Option<string?> StateDir { get; } = new("--state-dir") { Description = "Where the journal and lock live (default: /run/passthru under --root)" };
    public Option<bool> Verbose { get; } = new("--verbose", "-v") { Description = "Print each step as it is done" };

    public void AddTo(Command command)
    {
        command.Options.Add(DryRun);
        command.Options.Add(StateDir);
        command.Options.Add(Verbose);
    }

    public string Directory(ParseResult p, HostRoot host) => p.GetValue(StateDir) ?? Journal.DefaultDirectory(host);

    /// <summary>Writing to a live host needs root; say so before anything changes.</summary>
    public static void RequireRoot(HostRoot host, string verb)
    {
        if (host.IsLive && !Environment.IsPrivilegedProcess)
            throw new UserError($"{verb} changes which driver holds a device: run it as root (sudo passthru {verb} ...); nothing was changed");
    }

    /// <summary>
    /// Applies a plan under the state lock, with Ctrl-C and SIGTERM turned into a rollback instead of a half-done bind.
    /// </summary>
    public static void Apply(HostRoot host, Journal journal, BindPlan plan, TextWriter progress)
    {
        using var cancel = new CancellationTokenSource();
        void Stop(PosixSignalContext c) { c.Cancel = true; cancel.Cancel(); }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Stop);
        new BindApplier(host, journal, progress).Apply(plan, cancel.Token);
    }

    public static void PrintPlan(TextWriter o, BindPlan plan)
    {
        foreach (var line in plan.Describe()) o.WriteLine(line);
        if (plan.IsEmpty) o.WriteLine("nothing to do");
    }
}
