using Passthru.Launch;
using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>
/// A QEMU that dies of a signal (a crash, the OOM killer) cannot say so itself: `run` says it, with the console's last
/// lines, and keeps the status a shell would give (128 + the signal). Where the guest can set QEMU's status
/// (isa-debug-exit), a status above 128 stays a number. QEMU is a shell script standing in for it.
/// </summary>
public sealed class QemuCrashTests : IDisposable
{
    private readonly string _dir = GuestFiles.Directory("passthru-crash-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private CliResult Run(string qemuBody, params string[] more) =>
        CliRunner.OnCapture("vhost", ["run", "--qemu", GuestFiles.StandInQemu(_dir, qemuBody), "--kernel", Path.Combine(_dir, "kernel"), "--accel", "tcg", .. more]);

    [Fact]
    public void A_qemu_killed_by_a_signal_is_named_with_the_last_console_lines_and_the_run_keeps_its_status()
    {
        var r = Run("echo booting; echo still booting; kill -s SEGV $$");
        Assert.Equal(128 + 11, r.ExitCode);
        Assert.Matches(@"\npassthru: QEMU died of signal 11 \(SIGSEGV\) after \d+\.\d s; last console lines:\n  \| booting\n  \| still booting\n$", r.Stderr);
    }

    [Fact]
    public void A_qemu_killed_before_it_printed_anything_is_named_in_one_line()
    {
        var r = Run("kill -s KILL $$", "--quiet");
        Assert.Equal(128 + 9, r.ExitCode);
        Assert.Matches(@"(^|\n)passthru: QEMU died of signal 9 \(SIGKILL\) after \d+\.\d s\n$", r.Stderr);
    }

    [Fact]
    public void Waiting_for_a_line_names_the_signal_in_the_error()
    {
        var r = Run("echo SeaBIOS; kill -s ABRT $$", "--expect", "login:");
        Assert.Equal(ExitCodes.Failure, r.ExitCode);
        Assert.Contains("passthru: QEMU died of signal 6 (SIGABRT) before /login:/ showed; last console lines:\n  | SeaBIOS\n", r.Stderr);
    }

    [Theory]
    [InlineData("exit 0", 0)]
    [InlineData("exit 1", 1)]
    [InlineData("exit 139 # isa-debug-exit: the guest wrote 69", 139)]
    public void A_status_that_qemu_or_its_guest_set_stays_a_number_and_adds_no_line(string body, int status)
    {
        var r = Run(body, "--", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04");
        Assert.Equal(status, r.ExitCode);
        Assert.DoesNotContain("passthru: QEMU", r.Stderr);
    }

    [Theory]
    [InlineData(1, false, "exited (status 1)")]
    [InlineData(139, false, "died of signal 11 (SIGSEGV)")]
    [InlineData(134, false, "died of signal 6 (SIGABRT)")]
    [InlineData(128 + 40, false, "died of signal 40")]
    [InlineData(139, true, "exited (status 139)")]
    [InlineData(255, false, "exited (status 255)")]
    public void How_qemu_ended_in_words(int status, bool debugExit, string words) =>
        Assert.Equal(words, QemuFailure.Ended(status, QemuFailure.Signal(status, debugExit ? ["-device", "isa-debug-exit,iobase=0xf4"] : ["-m", "128"])));
}
