using System.Globalization;
using Passthru.Tests.Support;

namespace Passthru.Tests.Packaging;

/// <summary>
/// The published binary lays out first the managed methods a start enters (src/Passthru/startup.order, traced by
/// scripts/startup-order.sh): that a build applies the order, that the order still names this build's methods, and that
/// the tracer that writes it names what a run enters.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed class StartupOrderTests
{
    private static readonly string OrderFile = Path.Combine(Repo.Root, "src", "Passthru", "startup.order");

    private static List<string> Order() =>
        File.ReadLines(OrderFile).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();

    private static readonly string Tracer = Path.Combine(Repo.Root, "scripts", "startup-order.py");

    /// <summary>
    /// The tracer's table of the published binary's managed methods (its `prepare`, which also marks a copy for
    /// tracing): read once for the class, so the binary's symbols are parsed in one place, the script.
    /// </summary>
    private static readonly Lazy<string> Prepared = new(() =>
    {
        var work = Path.Combine(Repo.Root, "artifacts", "startup-order-test");
        if (Directory.Exists(work)) Directory.Delete(work, true);
        var binary = PublishedBinary.Path;
        var prepared = Repo.Exec("/usr/bin/python3", Tracer, "prepare", binary, binary + ".dbg", work);
        if (prepared.ExitCode != 0) throw new InvalidOperationException("startup-order.py prepare failed: " + prepared.Stderr);
        return work;
    });

    /// <summary>Every managed method's address, by each of its names (aliases share one).</summary>
    private static Dictionary<string, ulong> Methods()
    {
        var methods = new Dictionary<string, ulong>();
        foreach (var line in File.ReadLines(Path.Combine(Prepared.Value, "methods.tsv")))
        {
            var f = line.Split('\t');
            var address = ulong.Parse(f[0], NumberStyles.HexNumber);
            foreach (var name in f[2].Split(' ')) methods[name] = address;
        }
        return methods;
    }

    [Fact]
    public void The_binary_lays_out_the_ordered_methods_first_in_their_order()
    {
        var methods = Methods();
        var ordered = Order().Where(methods.ContainsKey).Select(n => methods[n]).ToList();
        Assert.NotEmpty(ordered);
        Assert.Equal(methods.Values.Min(), ordered[0]);        // the first method a start enters opens the managed code
        for (int i = 1; i < ordered.Count; i++)                // in the order traced (aliases share an address)
            Assert.True(ordered[i] >= ordered[i - 1], $"the {i}th ordered method lies before the one listed ahead of it");
        var last = ordered.Max();
        var unlisted = methods.Values.Except(ordered).Where(a => a < last).ToList();
        Assert.True(unlisted.Count == 0, $"{unlisted.Count} methods the order does not name lie among the ordered ones");
    }

    [Fact]
    public void The_order_names_the_methods_of_this_build()
    {
        var methods = Methods();
        var order = Order();
        var known = order.Count(methods.ContainsKey);
        // Renamed or new methods lose the order part of its effect: regenerate it once a tenth of it is stale.
        Assert.True(known >= order.Count * 9 / 10,
            $"only {known} of the {order.Count} names in src/Passthru/startup.order are methods of this build: regenerate it with scripts/startup-order.sh");
    }

    [Fact]
    public void The_tracer_names_the_methods_a_run_enters_in_the_order_it_enters_them()
    {
        var output = Path.Combine(Prepared.Value, "order");
        File.Delete(output);
        var traced = Repo.Exec("/usr/bin/python3", Tracer, "trace", Prepared.Value, output, "--", "restore", "--dry-run", "--root", Repo.Capture("vhost"));
        Assert.True(traced.ExitCode == 0, traced.Stderr);             // passthru's own exit code, passed on
        Assert.Contains("nothing to give back", traced.Stdout);        // the traced run did its work
        var entered = File.ReadAllLines(output).ToList();
        var run = entered.IndexOf("passthru_Passthru_Cli_Cli__Run");
        var plan = entered.IndexOf("Passthru_Core_Passthru_Binding_Custody__PlanRestore");
        Assert.True(run >= 0 && plan > run, "Cli.Run, then Custody.PlanRestore, among what the run entered");
        Assert.Equal(entered.Count, entered.Distinct().Count());      // each method once
        var unknown = Repo.Exec("/usr/bin/python3", Tracer, "trace", Prepared.Value, output, "--", "no-such-command");
        Assert.Equal(2, unknown.ExitCode);                             // a usage error stays one
    }
}
