using System.Diagnostics;
using System.Xml.Linq;
using Passthru.Tests.Support;
using Xunit.Abstractions;

namespace Passthru.Tests.Launch;

/// <summary>
/// Scripts against real Barrelfish (../shared/barrelfish) under plain QEMU TCG on this machine, no device: its fish
/// shell asks for the cursor position at every prompt and reads nothing until answered. Four boots (30-90 s each),
/// in one class so they never run at the same time.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed class ConsoleScriptBarrelfishTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = GuestFiles.Directory("passthru-bf-script-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>Up to the shell's first prompt: "> ", printed once both of its cursor queries were answered.</summary>
    private const string ToTheShell = "# Barrelfish to its shell\ntimeout 240\nexpect fish v0\\.2\nexpect > \n";

    private CliResult Boot(string script, params string[] more)
    {
        var file = Path.Combine(_dir, "barrelfish.script");
        File.WriteAllText(file, script);
        var clock = Stopwatch.StartNew();
        var r = CliRunner.Run(["run", "--menu", Repo.Shared("barrelfish/build/platforms/x86/menu.lst.x86_64"), "--memory", "1024", "--accel", "tcg",
            "--script", file, "--timeout", "300", .. more]);
        output.WriteLine($"exit {r.ExitCode} after {clock.Elapsed.TotalSeconds:0.0} s\n--- stderr\n{r.Stderr}\n--- console (end)\n{r.Stdout[Math.Max(0, r.Stdout.Length - 1500)..]}");
        return r;
    }

    [Fact]
    public void A_script_types_commands_into_fish_and_reports_each_expect_as_a_passing_test()
    {
        var junit = Path.Combine(_dir, "report.xml");
        var r = Boot(ToTheShell + "send ps\\r\nexpect \\d+\\s+R\\s+fish\nexpect > \nsend free\\r\nexpect Free memory: \\d+ bytes\n", "--junit", junit);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("DOMAINID\tSTAT\tCOMMAND", r.Stdout);
        Assert.Contains("> free", r.Stdout);
        Assert.DoesNotContain("\u001b[6n", r.Stdout); // answered by Passthru, never shown to the terminal
        Assert.Contains("barrelfish.script: 7 steps done after", r.Stderr);
        var suite = XDocument.Load(junit).Root!;
        Assert.Equal(("passthru run", "5", "0"), ((string?)suite.Attribute("name"), (string?)suite.Attribute("tests"), (string?)suite.Attribute("failures")));
        Assert.Equal(["3: expect fish v0\\.2", "4: expect >", "6: expect \\d+\\s+R\\s+fish", "7: expect >", "9: expect Free memory: \\d+ bytes"],
            suite.Elements("testcase").Select(c => (string)c.Attribute("name")!));
        Assert.All(suite.Elements("testcase"), c => Assert.Empty(c.Elements()));
    }

    /// <summary>
    /// Barrelfish is a multikernel: with -smp N, kaluga sees N processors in ACPI and has corectrl boot a CPU driver on
    /// each; startd starts the shell only once every core's spawnd is up, and fish's nproc counts those spawnds.
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void Every_core_boots_its_cpu_driver_and_fishs_nproc_counts_them(int cores)
    {
        var junit = Path.Combine(_dir, "report.xml");
        var r = Boot(ToTheShell + $"send nproc\\r\nexpect (?m)^{cores:x}\\r?$\nexpect > \n", "--cpus", cores.ToString(), "--junit", junit);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains($" -smp {cores} ", r.Stderr);
        for (int core = 0; core < cores; core++)
        {
            Assert.Matches($"Barrelfish CPU driver starting on x86_64 apic_id {core}\\b", r.Stdout);
            Assert.Contains($"spawnd.{core} up.", r.Stdout);
        }
        Assert.DoesNotMatch($"apic_id {cores}\\b", r.Stdout);
        var steps = XDocument.Load(junit).Root!.Elements("testcase").ToList();
        output.WriteLine($"{cores} cores: to the shell's first prompt {steps.Take(2).Sum(c => (double)c.Attribute("time")!):0.0} s");
    }

    [Fact]
    public void A_step_that_never_matches_fails_the_run_and_names_its_line()
    {
        var r = Boot(ToTheShell + "timeout 5\nexpect no such output\n");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"passthru: {Path.Combine(_dir, "barrelfish.script")}:6: `expect no such output` timed out after 5 s; last console lines:\n", r.Stderr);
        Assert.Contains("  | measure_pmap_res", r.Stderr);
    }
}
