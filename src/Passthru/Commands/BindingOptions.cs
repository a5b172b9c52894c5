using System.CommandLine;
using System.CommandLine.Parsing;
using Passthru.Binding;
using Passthru.Host;

namespace Passthru.Cli.Commands;

/// <summary>What bind, unbind and restore share: --dry-run, --state-dir, --verbose, and the way they apply a plan.</summary>
public sealed class BindingOptions
{
    public Option<bool> DryRun { get; } = new("--dry-run") { Description = "Print the exact plan (each sysfs write, each module) and change nothing" };
    public Option<string?> StateDir { get; } = StateDirOption();
    public Option<bool> Verbose { get; } = new("--verbose", "-v") { Description = "Print each step as it is done" };

    public void AddTo(Command command)
    {
        command.Options.Add(DryRun);
        command.Options.Add(StateDir);
        command.Options.Add(Verbose);
    }

    public string Directory(ParseResult p, HostRoot host) => StateDirectory(p, StateDir, host);

    /// <summary>--state-dir, the same for every command that reads or changes what Passthru holds (one description, one default).</summary>
    public static Option<string?> StateDirOption() => new("--state-dir")
    {
        Description = "Where Passthru keeps what it changed on the host: the journal, the lock and running guests' records (default: /run/passthru under --root)",
    };

    public static string StateDirectory(ParseResult p, Option<string?> option, HostRoot host) => p.GetValue(option) ?? Custody.DefaultDirectory(host);

    /// <summary>Writing to a live host needs root; say so before anything changes.</summary>
    public static void RequireRoot(HostRoot host, string verb)
    {
        if (host.IsLive && !Environment.IsPrivilegedProcess)
            throw new UserError($"{verb} changes which driver holds a device: run it as root (sudo passthru {verb} ...); nothing was changed");
    }

    /// <summary>
    /// Applies a plan under the state lock, with Ctrl-C, SIGTERM and SIGHUP turned into a rollback instead of a
    /// half-done bind (held from before the first step to after the rollback).
    /// </summary>
    public static void Apply(Custody custody, BindPlan plan, TextWriter progress)
    {
        using var interrupts = InterruptHold.Begin();
        custody.Apply(plan, progress, () => interrupts.Received);
    }

    /// <summary>Gives back through custody and says what happened: a line per change, then each problem the check afterwards found.</summary>
    public static GiveBackResult GiveBack(Custody custody, BindPlan plan, TextWriter stdout, bool verbose)
    {
        stdout.Flush();
        var result = custody.GiveBack(plan, verbose ? stdout : TextWriter.Null);
        foreach (var line in result.Lines) stdout.WriteLine(line);
        foreach (var problem in result.Problems) stdout.WriteLine($"passthru: after giving back: {problem}");
        return result;
    }

    /// <summary>
    /// The DEVICE... argument. Its words are taken as they are: System.CommandLine's own conversion to string[]
    /// creates the array through reflection, which costs milliseconds at start-up under emulation.
    /// </summary>
    public static Argument<string[]> Devices(ArgumentArity arity) => new("device")
    {
        Description = "0000:83:00.0, 83:00.0 or vendor:device",
        Arity = arity,
        CustomParser = Words,
        DefaultValueFactory = _ => [],
    };

    private static string[] Words(ArgumentResult result)
    {
        var words = new string[result.Tokens.Count];
        for (int i = 0; i < words.Length; i++) words[i] = result.Tokens[i].Value;
        return words;
    }

    public static void PrintPlan(TextWriter o, BindPlan plan)
    {
        foreach (var line in plan.Describe()) o.WriteLine(line);
        if (plan.IsEmpty) o.WriteLine("nothing to do");
    }
}
