using System.Text.RegularExpressions;
using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>
/// What a user sees on a terminal: the published binary under script(1), which gives it a pseudo-terminal, with a
/// stand-in "QEMU" (a shell script that prints slowly) on the virtual host's capture.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed class RunTerminalTests : IDisposable
{
    private readonly string _dir = GuestFiles.Directory("passthru-tty-").FullName;
    private static string Binary => PublishedBinary.Path;
    public void Dispose() => Directory.Delete(_dir, true);

    private string Run(string environment)
    {
        var qemu = Path.Combine(_dir, "qemu");
        File.WriteAllText(qemu, "#!/bin/sh\necho booting; sleep 2; printf 'prompt> '; sleep 1; echo; echo ready; sleep 30\n");
        File.SetUnixFileMode(qemu, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var kernel = Path.Combine(_dir, "kernel");
        File.WriteAllText(kernel, "");
        var command = $"{environment} {Binary} run --root {Repo.Capture("vhost")} --qemu {qemu} --kernel {kernel} --accel tcg --expect ready --timeout 20";
        var r = Repo.Exec("script", "-qec", command, "/dev/null");
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        return r.Stdout;
    }

    [Fact]
    public void A_status_line_counts_against_the_timeout_and_never_splits_the_guests_prompt()
    {
        var screen = Run("");
        // Each redraw counts whole seconds out of the 20 s timeout (how many it shows is the clock's business).
        var ticks = Regex.Matches(screen, "\r\u001b\\[K\\[passthru\\] ([0-9]+) s of 20 s: waiting for /ready/").Select(m => int.Parse(m.Groups[1].Value)).ToList();
        Assert.NotEmpty(ticks);
        Assert.Equal(ticks.Order(), ticks); // never counts back
        // Drawn only at the start of a line: while "prompt> " waits for its newline, no status line is drawn.
        Assert.DoesNotContain("prompt> \r\u001b[K[passthru]", screen);
        Assert.Contains("[passthru] /ready/ seen after", screen);
    }

    [Fact]
    public void No_color_or_a_pipe_get_no_status_line()
    {
        Assert.DoesNotContain("\u001b[K", Run("NO_COLOR=1"));
        var piped = Repo.Exec(Binary, "run", "--root", Repo.Capture("vhost"), "--qemu", Path.Combine(_dir, "qemu"), "--kernel", Path.Combine(_dir, "kernel"),
            "--accel", "tcg", "--expect", "ready", "--timeout", "20");
        Assert.Equal(0, piped.ExitCode);
        Assert.DoesNotContain("\u001b[K", piped.Stdout + piped.Stderr);
    }
}
