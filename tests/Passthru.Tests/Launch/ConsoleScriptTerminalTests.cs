using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Passthru.Launch;
using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>
/// Terminal queries answered on recorded console bytes, and scripts run against stand-in guests (sh scripts that act
/// as fish does: ask, then wait for the answer), in-process and through `run`.
/// </summary>
public sealed class ConsoleScriptTerminalTests : IDisposable
{
    private readonly string _dir = GuestFiles.Directory("passthru-script-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>Barrelfish's fish at a prompt, as recorded from its console: it asks twice (before and after moving right).</summary>
    private const string FishPrompt = "measure_pmap_res\r\n\u001b[6n\u001b[999C\u001b[6n> ";

    [Fact]
    public void Fishs_prompt_gets_two_answers_and_the_terminal_sees_no_query()
    {
        var q = new TerminalQueries();
        var (output, answers) = q.Scan(FishPrompt);
        // Its width probe: at the start of the line, then 999 to the right, where an 80-column terminal stops.
        Assert.Equal([TerminalQueries.CursorAnswer, "\u001b[24;80R"], answers);
        Assert.Equal("\u001b[24;1R", TerminalQueries.CursorAnswer);
        Assert.Equal("measure_pmap_res\r\n\u001b[999C> ", output);
        Assert.Equal(2, q.Answered);
    }

    [Fact]
    public void A_query_split_across_chunks_is_answered_once_it_is_whole()
    {
        var q = new TerminalQueries();
        var first = q.Scan("prompt\u001b[");
        Assert.Equal(("prompt", 0), (first.Output, first.Answers.Count));
        var second = q.Scan("6");
        Assert.Equal(("", 0), (second.Output, second.Answers.Count));
        var third = q.Scan("n> ");
        Assert.Equal(("> ", 1), (third.Output, third.Answers.Count));
        // Split right after ESC, and device attributes in both spellings.
        Assert.Empty(q.Scan("\u001b").Answers);
        Assert.Equal([TerminalQueries.AttributesAnswer], q.Scan("[c").Answers);
        Assert.Equal("\u001b[?1;2c", TerminalQueries.AttributesAnswer);
        // "prompt> x" so far: the cursor is in column 10.
        Assert.Equal([TerminalQueries.AttributesAnswer, "\u001b[24;10R"], q.Scan("\u001b[0cx\u001b[6n").Answers);
    }

    [Fact]
    public void Other_escape_sequences_pass_through_untouched_and_queries_repeat()
    {
        var q = new TerminalQueries();
        var colours = "\u001b[34minit.\u001b[31m0.0\u001b[0m: ready\u001b\u001b[6n";
        var (output, answers) = q.Scan(colours);
        Assert.Equal("\u001b[34minit.\u001b[31m0.0\u001b[0m: ready\u001b", output);
        Assert.Single(answers);
        for (int i = 0; i < 5; i++) Assert.Single(q.Scan("\u001b[6n").Answers);
        Assert.Equal(6, q.Answered);
        // The column follows the text and the cursor moves: "ab\tc" ends at 10; back 3, forward 1.
        Assert.Equal(["\u001b[24;10R", "\u001b[24;8R", "\u001b[24;1R"], q.Scan("\r\nab\tc\u001b[6n\u001b[3D\u001b[C\u001b[6n\r\u001b[6n").Answers);
    }

    private GuestOutcome Guest(string sh, string script, TextWriter? console = null) =>
        GuestProcess.Run(["/bin/sh", "-c", sh], new GuestWatch
        {
            Timeout = TimeSpan.FromSeconds(60),
            Script = ConsoleScript.Parse("t.script", script),
            Console = console,
        });

    [Fact]
    public void A_script_types_after_the_answer_and_matches_what_follows()
    {
        // Like fish: asks for the cursor, reads the answer, then a command line.
        var console = new StringWriter();
        var o = Guest("echo booting; printf '\\033[6n> '; head -c 7 >/dev/null; read -r cmd; echo \"ran $cmd\"; printf '\\033[6n> '; exec sleep 60",
            "expect booting\nexpect > \nsend ps\\n\nexpect ran ps\n", console);
        Assert.Equal(GuestEnd.Completed, o.End);
        Assert.True(o.Script!.Finished);
        Assert.Equal(4, o.Script.Steps.Count);
        Assert.Contains("ran ps", console.ToString());
        Assert.DoesNotContain("\u001b[6n", console.ToString());
    }

    [Fact]
    [Trait(Support.Tier.Name, Support.Tier.Slow)] // three quiet seconds by design
    public void An_answer_the_guest_missed_is_given_again_after_three_quiet_seconds()
    {
        // The guest throws away whatever comes in its first second (fish before it is ready), counting it into a file
        // (not the console: output after the query would tell Passthru the guest had moved on), then waits for an
        // answer: the first answer is lost (7 bytes thrown away), and only a second one lets it go on.
        var lost = Path.Combine(_dir, "lost");
        var o = Guest($"printf '\\033[6n'; timeout 1 cat | wc -c > {lost}; head -c 7 | od -An -c | tr -d ' \\n'; echo; echo answered; exec sleep 60",
            "timeout 15\nexpect answered\n");
        Assert.Equal(GuestEnd.Completed, o.End);
        Assert.Equal("7", File.ReadAllText(lost).Trim());
        Assert.Contains("033[24;1R", string.Join("\n", o.LastLines));
    }

    [Fact]
    public void On_an_injected_clock_a_missed_answer_goes_again_at_three_quiet_seconds_and_a_timed_out_step_reports_its_timeout()
    {
        var input = new MemoryStream();
        var runner = new ScriptRunner(ConsoleScript.Parse("t.script", "timeout 15\nexpect answered\n"), input);
        int Answers() => Regex.Matches(Encoding.ASCII.GetString(input.ToArray()), Regex.Escape("\u001b[24;1R")).Count;
        Assert.True(runner.Advance(TimeSpan.Zero));
        Assert.Equal("", runner.Filter("\u001b[6n"));             // the query at 0 s, answered at once
        Assert.Equal(1, Answers());
        Assert.True(runner.Advance(TimeSpan.FromMilliseconds(2999)));
        Assert.Equal(1, Answers());                                 // not yet: under three quiet seconds
        Assert.True(runner.Advance(TimeSpan.FromSeconds(3)));
        Assert.Equal(2, Answers());                                 // given again
        Assert.True(runner.Advance(TimeSpan.FromMilliseconds(5999)));
        Assert.Equal(2, Answers());
        Assert.True(runner.Advance(TimeSpan.FromSeconds(6)));
        Assert.Equal(3, Answers());                                 // and again, three seconds after the last
        Assert.Equal("answered\n", runner.Filter("answered\n"));
        Assert.True(runner.Advance(TimeSpan.FromSeconds(6.5)));
        Assert.True(runner.Done);
        Assert.Equal(3, Answers());                                 // output since: nothing more is sent
        var done = runner.Result(stoppedEarly: false);
        Assert.True(done.Finished);
        Assert.Equal(TimeSpan.FromSeconds(6.5), Assert.Single(done.Steps).Duration);

        // A step with a 2 s timeout: still in time at 1.999 s, out of it at 2 s; the report gives it those 2 s.
        var late = new ScriptRunner(ConsoleScript.Parse("t.script", "timeout 2\nexpect never printed\nexpect not reached\n"), new MemoryStream());
        Assert.True(late.Advance(TimeSpan.Zero));
        Assert.True(late.Advance(TimeSpan.FromMilliseconds(1999)));
        Assert.False(late.Advance(TimeSpan.FromSeconds(2)));
        var failed = late.Result(stoppedEarly: true);
        Assert.Equal(2, failed.Failed!.Line);
        var suite = JUnitReport.Build(failed, TimeSpan.FromSeconds(2.5), ["> "], "timed out").Root!;
        Assert.Equal(["2.000", "0.000"], suite.Elements("testcase").Select(c => (string)c.Attribute("time")!));
        Assert.Equal("2.500", (string?)suite.Attribute("time"));
    }

    private string Qemu(string body) => GuestFiles.StandInQemu(_dir, body);

    private CliResult Run(string qemuBody, string script, params string[] more)
    {
        var file = Path.Combine(_dir, "t.script");
        File.WriteAllText(file, script);
        return CliRunner.OnCapture("vhost", ["run", "--qemu", Qemu(qemuBody), "--kernel", Path.Combine(_dir, "kernel"), "--accel", "tcg", "--script", file, .. more]);
    }

    /// <summary>The failure, after the [passthru] starting line.</summary>
    private static string Failure(CliResult r) => r.Stderr[r.Stderr.IndexOf("passthru: ", StringComparison.Ordinal)..];

    [Fact]
    [Trait(Support.Tier.Name, Support.Tier.Slow)] // a 2 s step timeout by design
    public void A_step_that_times_out_names_its_line_and_fails_its_junit_case()
    {
        var junit = Path.Combine(_dir, "report.xml");
        var r = Run("echo 'fish v0.2 -- pleased to meet you!'; printf '\\033[6n> '; exec sleep 60",
            "expect fish v0\\.2\n# the shell is up\ntimeout 2\nexpect never printed\nexpect not reached\n", "--junit", junit);
        Assert.Equal(ExitCodes.Failure, r.ExitCode);
        var file = Path.Combine(_dir, "t.script");
        Assert.StartsWith($"passthru: {file}:4: `expect never printed` timed out after 2 s; last console lines:\n  | fish v0.2 -- pleased to meet you!\n  | > ", Failure(r));
        var suite = XDocument.Load(junit).Root!;
        Assert.Equal(("testsuite", "passthru run", "3", "1"), (suite.Name.LocalName, (string?)suite.Attribute("name"), (string?)suite.Attribute("tests"), (string?)suite.Attribute("failures")));
        var cases = suite.Elements("testcase").ToList();
        Assert.Equal(["1: expect fish v0\\.2", "4: expect never printed", "5: expect not reached"], cases.Select(c => (string)c.Attribute("name")!));
        Assert.Null(cases[0].Element("failure"));
        Assert.Contains("fish v0.2 -- pleased", cases[1].Element("failure")!.Value);
        Assert.NotNull(cases[2].Element("skipped"));
        // Seconds with three decimals (how long it took is the clock's business: see the injected-clock test above).
        Assert.Matches(@"^[0-9]+\.[0-9]{3}$", (string)cases[1].Attribute("time")!);
        Assert.Equal("0.000", (string?)cases[2].Attribute("time"));
    }

    [Fact]
    public void Quiet_keeps_the_console_off_the_terminal_but_the_log_and_script_see_it()
    {
        var log = Path.Combine(_dir, "console.log");
        var r = Run("echo hello from the guest; exec sleep 60", "expect hello\n", "--quiet", "--serial-log", log);
        Assert.Equal(0, r.ExitCode);
        Assert.DoesNotContain("hello", r.Stdout);
        Assert.Equal("hello from the guest\n", File.ReadAllText(log));
        Assert.Matches(new Regex(@"\[passthru\] .*t\.script: 1 step done after \d+\.\d s: stopped the guest"), r.Stderr);
    }

    [Fact]
    public void A_profile_names_the_script_and_report_relative_to_itself_and_can_be_quiet()
    {
        var profiles = Directory.CreateDirectory(Path.Combine(_dir, "profiles")).FullName;
        File.WriteAllText(Path.Combine(profiles, "boot.script"), "expect hello\n");
        var qemu = Qemu("echo hello from the guest; exec sleep 60");
        File.WriteAllText(Path.Combine(profiles, "guest.toml"),
            $"qemu = \"{qemu}\"\nkernel = \"../kernel\"\naccel = \"tcg\"\nscript = \"boot.script\"\njunit = \"report.xml\"\nquiet = true\n");
        var r = CliRunner.OnCapture("vhost", "run", "-f", Path.Combine(profiles, "guest.toml"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.DoesNotContain("hello", r.Stdout);
        Assert.Contains($"[passthru] {Path.Combine(profiles, "boot.script")}: 1 step done", r.Stderr);
        Assert.Equal("1", (string?)XDocument.Load(Path.Combine(profiles, "report.xml")).Root!.Attribute("tests"));
    }

    [Fact]
    public void A_guest_that_exits_mid_script_fails_at_that_step()
    {
        var r = Run("echo bye; exit 3", "expect bye\nexpect more\n");
        Assert.Equal(ExitCodes.Failure, r.ExitCode);
        Assert.Equal($"passthru: {Path.Combine(_dir, "t.script")}:2: `expect more`: QEMU exited (status 3) before it completed; last console lines:\n  | bye\n", Failure(r));
    }
}

/// <summary>--keep-running through the published binary: Passthru's stdin reaches the guest after the script.</summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed class ConsoleScriptKeepRunningTests : IDisposable
{
    private readonly string _dir = GuestFiles.Directory("passthru-keep-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public async Task After_the_script_the_users_typing_goes_to_the_guest_with_enter_as_a_carriage_return()
    {
        var qemu = Path.Combine(_dir, "qemu");
        File.WriteAllText(qemu, "#!/bin/sh\necho ready; head -c 6 | od -An -c; exit 4\n");
        File.SetUnixFileMode(qemu, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllText(Path.Combine(_dir, "kernel"), "");
        File.WriteAllText(Path.Combine(_dir, "s"), "expect ready\n");
        var start = new System.Diagnostics.ProcessStartInfo(PublishedBinary.Path)
        { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "run", "--root", Repo.Capture("vhost"), "--qemu", qemu, "--kernel", Path.Combine(_dir, "kernel"), "--accel", "tcg",
            "--script", Path.Combine(_dir, "s"), "--keep-running" })
            start.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await Task.Delay(1000);
        p.StandardInput.Write("hello\n");
        p.StandardInput.Flush();
        Assert.True(p.WaitForExit(30_000), "still running");
        Assert.Equal(4, p.ExitCode); // QEMU's, as without a script
        Assert.Matches(@"h\s+e\s+l\s+l\s+o\s+\\r", await stdout);
        Assert.DoesNotContain("passthru:", await stderr);
    }
}
