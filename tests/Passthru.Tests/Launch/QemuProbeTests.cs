using Passthru.Launch;

namespace Passthru.Tests.Launch;

/// <summary>
/// run remembers what QEMU's -help said per binary in the state directory, so a run does not start QEMU once more to
/// ask; the entry holds only for the very same binary. A shell script stands in for QEMU and counts its starts.
/// </summary>
public sealed class QemuProbeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("passthru-probe-").FullName;
    private string State => Path.Combine(_dir, "state");
    private string Qemu => Path.Combine(_dir, "qemu-system-x86_64");
    private string Starts => Path.Combine(_dir, "starts");

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>A QEMU whose -help gives a version and, if asked, -sandbox; each start adds a line to <see cref="Starts"/>.</summary>
    private void FakeQemu(string version, bool sandbox)
    {
        File.WriteAllText(Qemu, $"#!/bin/sh\necho started >> '{Starts}'\necho 'QEMU emulator version {version}'\necho 'usage: qemu-system-x86_64 [options] [disk_image]'\n"
            + (sandbox ? "echo '-sandbox on[=off] Enable seccomp mode 2 system call filter'\n" : "") + "echo '-nographic      disable graphical output'\n");
        File.SetUnixFileMode(Qemu, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private int StartCount => File.Exists(Starts) ? File.ReadAllLines(Starts).Length : 0;

    [Fact]
    public void The_same_binary_is_asked_once_and_its_answer_remembered()
    {
        FakeQemu("7.2.22", sandbox: true);
        Assert.Equal(("7.2.22", true), QemuProbe.Of(Qemu, State));
        Assert.Equal(("7.2.22", true), QemuProbe.Of(Qemu, State));
        Assert.Equal(1, StartCount);
        Assert.Equal(("7.2.22", true), QemuProbe.Of(Qemu, null)); // no state directory: asked every time
        Assert.Equal(2, StartCount);
    }

    [Fact]
    public void A_replaced_or_rewritten_binary_is_asked_again()
    {
        FakeQemu("7.2.22", sandbox: true);
        Assert.Equal(("7.2.22", true), QemuProbe.Of(Qemu, State));
        // An upgrade to a build without seccomp, with the old modification time put back: its size and ctime differ.
        var mtime = File.GetLastWriteTimeUtc(Qemu);
        File.Delete(Qemu);
        FakeQemu("8.0.0", sandbox: false);
        File.SetLastWriteTimeUtc(Qemu, mtime);
        Assert.Equal(("8.0.0", false), QemuProbe.Of(Qemu, State));
        Assert.Equal(2, StartCount);
        Assert.Equal(("8.0.0", false), QemuProbe.Of(Qemu, State));
        Assert.Equal(2, StartCount);
    }

    [Fact]
    public void A_damaged_or_foreign_entry_is_not_believed()
    {
        FakeQemu("7.2.22", sandbox: false);
        Assert.Equal(("7.2.22", false), QemuProbe.Of(Qemu, State));
        var entry = Path.Combine(State, QemuProbe.FileName);
        var lines = File.ReadAllLines(entry);
        // Cut short, or claiming a sandbox: asked again, and the entry written anew.
        File.WriteAllText(entry, string.Join('\n', lines[..2]));
        Assert.Equal(("7.2.22", false), QemuProbe.Of(Qemu, State));
        Assert.Equal(2, StartCount);
        File.WriteAllText(entry, string.Join('\n', lines).Replace("no-sandbox", "sandbox") + "\n");
        File.SetUnixFileMode(entry, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherWrite);
        Assert.Equal(("7.2.22", false), QemuProbe.Of(Qemu, State)); // writable by others: not believed
        Assert.Equal(3, StartCount);
        Assert.Equal(("7.2.22", false), QemuProbe.Of(Qemu, State));
        Assert.Equal(3, StartCount);
    }
}
