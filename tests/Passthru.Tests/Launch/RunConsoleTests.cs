using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>
/// Where a guest's console goes: the published binary with a stand-in "QEMU" (a shell script that says what its stdout
/// is) on the virtual host's capture. Unwatched, QEMU writes to Passthru's own stdout; watched, or when Passthru's stdout
/// was closed (descriptor 1 may then be a file of Passthru's own), through a pipe Passthru reads.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed class RunConsoleTests : IDisposable
{
    private readonly string _dir = GuestFiles.Directory("passthru-console-").FullName;
    private static string Binary => PublishedBinary.Path;
    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>Runs the stand-in through a shell line (so the test can redirect); returns the result and what QEMU's descriptor 1 was.</summary>
    private ((int ExitCode, string Stdout, string Stderr) Run, string QemuStdout) Run(string redirect, string extra = "")
    {
        var qemu = Path.Combine(_dir, "qemu");
        var seen = Path.Combine(_dir, "fd1");
        File.Delete(seen);
        // (Also what its parent, Passthru, holds as 0, 1 and 2, for the test of a Passthru started without them.)
        File.WriteAllText(qemu, $"#!/bin/sh\nl=$(readlink /proc/$$/fd/1); echo \"$l\" > {seen}\n"
            + $"for n in 0 1 2; do l=$(readlink /proc/$PPID/fd/$n); echo \"$n $l\"; done > {seen}.parent\n"
            + $"l=$(readlink /proc/$$/fd/0); echo \"$l\" > {seen}.stdin\necho 'guest says hello'\n");
        File.SetUnixFileMode(qemu, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var kernel = Path.Combine(_dir, "kernel");
        File.WriteAllText(kernel, "");
        var r = Repo.Exec("sh", "-c", $"'{Binary}' run --root '{Repo.Capture("vhost")}' --qemu '{qemu}' --kernel '{kernel}' --accel tcg {extra} {redirect}");
        return (r, File.ReadAllText(seen).Trim());
    }

    [Fact]
    public void An_unwatched_console_is_written_by_QEMU_itself_into_passthrus_stdout()
    {
        var output = Path.Combine(_dir, "console.txt");
        var (r, fd1) = Run($"> '{output}'");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(output, fd1);                                   // the file itself, no pipe between
        Assert.Equal("guest says hello\n", File.ReadAllText(output));
    }

    [Fact]
    public void A_watched_console_goes_through_passthru()
    {
        var output = Path.Combine(_dir, "console.txt");
        var (r, fd1) = Run($"> '{output}'", "--expect hello --timeout 20");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.StartsWith("pipe:", fd1);
        Assert.Equal("guest says hello\n", File.ReadAllText(output));
    }

    [Fact]
    public void With_stdout_closed_QEMU_gets_a_pipe_and_passthru_says_the_output_was_lost()
    {
        // Not descriptor 1 as it is in Passthru then: a file Passthru opened (close-on-exec) could sit there, and QEMU
        // would open its own first file (a disk) as 1 and write the console into it.
        var (r, fd1) = Run(">&-");
        Assert.StartsWith("pipe:", fd1);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("passthru: cannot write", r.Stderr);
    }

    [Fact]
    public void Started_without_stdin_and_stdout_passthru_holds_dev_null_there_not_a_file_of_its_own()
    {
        // Without the cover, the files Passthru opens itself (its lock, a journal's temporary file) take the lowest free
        // descriptors, 0 and 1 here, and its prints to stdout would land in them.
        var (r, _) = Run("<&- >&-");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("passthru: cannot write", r.Stderr);
        var parent = File.ReadAllLines(Path.Combine(_dir, "fd1.parent"));
        Assert.Equal("0 /dev/null", parent[0]);
        Assert.Equal("1 /dev/null", parent[1]);
        // QEMU's stdin is /dev/null, not closed: with 0 closed, its own first open (a disk image) would be its console's input.
        Assert.Equal("/dev/null", File.ReadAllText(Path.Combine(_dir, "fd1.stdin")).Trim());
    }
}
