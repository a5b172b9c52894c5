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

    /// <summary>The __managedcode section's start and end, and every method symbol in it, by name.</summary>
    private static (ulong Start, ulong End, Dictionary<string, ulong> Methods) ManagedCode(string binary)
    {
        var sections = Repo.Exec("readelf", "-S", "-W", binary);
        Assert.True(sections.ExitCode == 0, sections.Stderr);
        var fields = sections.Stdout.Split('\n')
            .Select(l => l.Contains(']') ? l[(l.IndexOf(']') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries) : [])
            .Single(f => f.Length > 4 && f[0] == "__managedcode");
        ulong start = ulong.Parse(fields[2], NumberStyles.HexNumber), end = start + ulong.Parse(fields[4], NumberStyles.HexNumber);
        var nm = Repo.Exec("nm", "--defined-only", binary + ".dbg");
        Assert.True(nm.ExitCode == 0, nm.Stderr);
        var methods = new Dictionary<string, ulong>();
        foreach (var line in nm.Stdout.Split('\n'))
        {
            var f = line.Split(' ');
            if (f.Length != 3 || f[1] is not ("t" or "T")) continue;
            var address = ulong.Parse(f[0], NumberStyles.HexNumber);
            if (address >= start && address < end) methods[f[2]] = address;
        }
        return (start, end, methods);
    }

    [Fact]
    public void The_binary_lays_out_the_ordered_methods_first_in_their_order()
    {
        var (start, _, methods) = ManagedCode(PublishedBinary.Path);
        var ordered = Order().Where(methods.ContainsKey).Select(n => methods[n]).ToList();
        Assert.NotEmpty(ordered);
        Assert.Equal(start, ordered[0]);                       // the first method a start enters opens the section
        for (int i = 1; i < ordered.Count; i++)                // in the order traced (aliases share an address)
            Assert.True(ordered[i] >= ordered[i - 1], $"the {i}th ordered method lies before the one listed ahead of it");
        var last = ordered.Max();
        var unlisted = methods.Values.Except(ordered).Where(a => a < last).ToList();
        Assert.True(unlisted.Count == 0, $"{unlisted.Count} methods the order does not name lie among the ordered ones");
    }

    [Fact]
    public void The_order_names_the_methods_of_this_build()
    {
        var (_, _, methods) = ManagedCode(PublishedBinary.Path);
        var order = Order();
        var known = order.Count(methods.ContainsKey);
        // Renamed or new methods lose the order part of its effect: regenerate it once a tenth of it is stale.
        Assert.True(known >= order.Count * 9 / 10,
            $"only {known} of the {order.Count} names in src/Passthru/startup.order are methods of this build: regenerate it with scripts/startup-order.sh");
    }

    [Fact]
    public void The_tracer_names_the_methods_a_run_enters_in_the_order_it_enters_them()
    {
        var work = Directory.CreateTempSubdirectory("passthru-order-").FullName;
        try
        {
            var binary = PublishedBinary.Path;
            var tracer = Path.Combine(Repo.Root, "scripts", "startup-order.py");
            var prepared = Repo.Exec("/usr/bin/python3", tracer, "prepare", binary, binary + ".dbg", work);
            Assert.True(prepared.ExitCode == 0, prepared.Stderr);
            var output = Path.Combine(work, "order");
            var traced = Repo.Exec("/usr/bin/python3", tracer, "trace", work, output, "--", "restore", "--dry-run", "--root", Repo.Capture("vhost"));
            Assert.True(traced.ExitCode == 0, traced.Stderr);             // passthru's own exit code, passed on
            Assert.Contains("nothing to give back", traced.Stdout);        // the traced run did its work
            var entered = File.ReadAllLines(output).ToList();
            var run = entered.IndexOf("passthru_Passthru_Cli_Cli__Run");
            var plan = entered.IndexOf("Passthru_Core_Passthru_Binding_Custody__PlanRestore");
            Assert.True(run >= 0 && plan > run, "Cli.Run, then Custody.PlanRestore, among what the run entered");
            Assert.Equal(entered.Count, entered.Distinct().Count());      // each method once
            var unknown = Repo.Exec("/usr/bin/python3", tracer, "trace", work, output, "--", "no-such-command");
            Assert.Equal(2, unknown.ExitCode);                             // a usage error stays one
        }
        finally
        {
            Directory.Delete(work, true);
        }
    }
}
