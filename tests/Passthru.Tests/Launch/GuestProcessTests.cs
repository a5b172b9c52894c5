using System.Text.RegularExpressions;
using Passthru.Launch;

namespace Passthru.Tests.Launch;

/// <summary>The console watcher and process handling, driven by real processes (sh) standing in for QEMU.</summary>
public class GuestProcessTests
{
    private static GuestOutcome Sh(string script, string? expect = null, double timeout = 30, string? log = null, TextWriter? console = null) =>
        GuestProcess.Run(["/bin/sh", "-c", script], new GuestWatch
        {
            Expect = expect is null ? null : new Regex(expect),
            Timeout = TimeSpan.FromSeconds(timeout),
            SerialLog = log,
            Console = console,
        });

    [Fact]
    public void A_match_stops_the_guest_at_once()
    {
        // The guest would sleep for 10 minutes (well past the 30 s timeout); it notes the SIGTERM that stops it.
        var stopped = Path.Combine(Path.GetTempPath(), $"passthru-stopped-{Guid.NewGuid():n}");
        try
        {
            var o = Sh($"trap 'echo TERM > {stopped}; kill $s; exit 0' TERM; echo booting; echo 'probe: pci 00:02.0 8086:10d3 class 0200'; sleep 600 & s=$!; wait $s",
                expect: "8086:10d3");
            Assert.Equal(GuestEnd.Matched, o.End);    // not TimedOut: stopped on the match, not at the timeout
            Assert.Equal("TERM\n", File.ReadAllText(stopped));
            Assert.Equal(0, o.ExitCode);              // it ended through its trap, not its sleep running out
            Assert.Equal(["booting", "probe: pci 00:02.0 8086:10d3 class 0200"], o.LastLines);
        }
        finally { File.Delete(stopped); }
    }

    [Fact]
    public void A_prompt_without_newline_matches()
    {
        var o = Sh("printf 'login: '; exec sleep 60", expect: "login: $");
        Assert.Equal(GuestEnd.Matched, o.End);
        Assert.Equal(["login: "], o.LastLines);
    }

    [Fact]
    public void The_timeout_stops_the_guest_and_keeps_the_last_lines()
    {
        var o = Sh("for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22; do echo line $i; done; exec sleep 60", expect: "never", timeout: 1);
        Assert.Equal(GuestEnd.TimedOut, o.End);
        Assert.Equal(20, o.LastLines.Count);
        Assert.Equal("line 22", o.LastLines[^1]);
    }

    [Fact]
    public void A_pattern_in_a_guests_last_words_matches_though_it_exited_at_once()
    {
        // The exit is seen first, often before the pump has read the line: the line still counts.
        for (int i = 0; i < 20; i++)
        {
            var o = Sh("echo 'probe: done'; exit 1", expect: "probe: done");
            Assert.Equal(GuestEnd.Matched, o.End);
            Assert.Equal(["probe: done"], o.LastLines);
        }
    }

    [Fact]
    public void An_exit_before_the_pattern_passes_on_the_exit_code()
    {
        var o = Sh("echo crashed >&2; exit 3", expect: "never");
        Assert.Equal(GuestEnd.Exited, o.End);
        Assert.Equal(3, o.ExitCode);
        Assert.Equal(["crashed"], o.LastLines);
    }

    [Fact]
    public void A_guest_stopped_in_the_middle_of_a_line_leaves_the_console_at_the_start_of_one()
    {
        // What follows on the terminal (a script's `echo "exit $?"`, the shell's prompt) must not join the guest's line.
        var console = new StringWriter();
        var o = Sh("printf 'eth0-rx-0 PCI-M'; exec sleep 60", expect: "eth0-rx-0", console: console);
        Assert.Equal(GuestEnd.Matched, o.End);
        Assert.Equal("eth0-rx-0 PCI-M\n", console.ToString());
        Assert.Equal(["eth0-rx-0 PCI-M"], o.LastLines);
    }

    [Fact]
    public void What_QEMU_says_on_stderr_starts_a_line_of_its_own()
    {
        // QEMU's stderr is a pipe of its own, read beside the console's: the pauses let each pump pass its part on.
        var log = Path.GetTempFileName();
        var console = new StringWriter();
        var o = Sh("printf 'PCI-M'; sleep 0.5; echo 'qemu-system-x86_64: terminating on signal 15' >&2; sleep 0.5; echo SI", log: log, console: console);
        Assert.Equal(GuestEnd.Exited, o.End);
        Assert.Equal("PCI-M\nqemu-system-x86_64: terminating on signal 15\nSI\n", console.ToString());
        Assert.Equal("PCI-Mqemu-system-x86_64: terminating on signal 15\nSI\n", File.ReadAllText(log)); // the log as it came
        File.Delete(log);
    }

    [Fact]
    public void The_console_goes_to_the_terminal_and_the_log()
    {
        var log = Path.GetTempFileName();
        var console = new StringWriter();
        var o = Sh("echo one; echo two", log: log, console: console);
        Assert.Equal(GuestEnd.Exited, o.End);
        Assert.Equal("one\ntwo\n", File.ReadAllText(log));
        Assert.Equal("one\ntwo\n", console.ToString());
        File.Delete(log);
    }

    [Fact]
    public void An_unwatched_console_is_written_by_the_guest_itself_to_Passthrus_stdout()
    {
        // Nothing watches it (no pattern, timeout, log or script): the child's stdout is this process's own, not a pipe
        // that a thread of Passthru's copies from. With a pattern, the same child writes into a pipe.
        var ours = new FileInfo("/proc/self/fd/1").LinkTarget;
        var stdout = new StreamWriter(new Passthru.Host.StandardOutput()); // this process's descriptor 1 (nothing is written to it)
        string Fd1(GuestWatch watch)
        {
            var seen = Path.Combine(Path.GetTempPath(), $"passthru-fd1-{Guid.NewGuid():n}");
            try
            {
                GuestProcess.Run(["/bin/sh", "-c", $"l=$(readlink /proc/$$/fd/1); echo \"$l\" > {seen}"], watch);
                return File.ReadAllText(seen).Trim();
            }
            finally { File.Delete(seen); }
        }
        Assert.Equal(ours, Fd1(new GuestWatch { Console = stdout }));
        var watched = Fd1(new GuestWatch { Console = stdout, Expect = new Regex("never") });
        Assert.StartsWith("pipe:", watched);
        Assert.NotEqual(ours, watched);
        Assert.StartsWith("pipe:", Fd1(new GuestWatch { Console = new StringWriter() })); // a console that is not stdout
    }

    [Fact]
    public void A_program_that_cannot_start_is_a_user_error()
    {
        var e = Assert.Throws<UserError>(() => GuestProcess.Run(["/nonexistent/qemu"], new GuestWatch()));
        Assert.StartsWith("could not start /nonexistent/qemu", e.Message);
    }

    [Fact]
    public void Watcher_matches_across_chunks()
    {
        var w = new ConsoleWatcher(new Regex("8086:10d3"));
        Assert.False(w.Feed("probe: pci 00:02.0 80"));
        Assert.True(w.Feed("86:10d3 class 0200\n"));
        Assert.False(w.Feed("8086:10d3 again\n")); // only the first match is news
    }
}
