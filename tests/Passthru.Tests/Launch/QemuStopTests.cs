using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>
/// A QEMU that ignores SIGTERM when `run` stops it (a --timeout here) is killed after 5 s, and so is every process it
/// started (a QEMU without its sandbox may have helpers). Both ways `run` starts QEMU: in-process under the JIT
/// (.NET's Process) and the published binary (Host/spawn.c). QEMU is a shell script standing in for it.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed class QemuStopTests : IDisposable
{
    private readonly string _dir = GuestFiles.Directory("passthru-stop-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_qemu_that_ignores_sigterm_is_killed_with_the_processes_it_started(bool published)
    {
        var qemu = GuestFiles.StandInQemu(_dir, $"trap '' TERM\necho $$ > {_dir}/qemu.pid\nsleep 300 &\necho $! > {_dir}/helper.pid\n"
            + "echo booting\nwhile :; do sleep 1; done");
        string[] args = ["--qemu", qemu, "--kernel", Path.Combine(_dir, "kernel"), "--accel", "tcg", "--timeout", "1"];
        var (code, stderr) = published
            ? Repo.Exec(PublishedBinary.Path, ["run", "--root", Repo.Capture("vhost"), .. args]) is var r ? (r.ExitCode, r.Stderr) : default
            : CliRunner.OnCapture("vhost", ["run", .. args]) is var c ? (c.ExitCode, c.Stderr) : default;
        Assert.NotEqual(0, code);
        Assert.Contains("passthru: the guest within 1 s; last console lines:\n  | booting", stderr);
        foreach (var which in new[] { "qemu", "helper" })
        {
            var pid = File.ReadAllText(Path.Combine(_dir, which + ".pid")).Trim();
            // Gone, or a zombie its new parent has yet to reap: nothing of it runs.
            Assert.True(Gone(pid), $"the stand-in's {which} (pid {pid}) still runs after `run` returned");
        }
    }

    private static bool Gone(string pid)
    {
        for (int i = 0; i < 50; i++)
        {
            var stat = $"/proc/{pid}/stat";
            if (!File.Exists(stat)) return true;
            try
            {
                var text = File.ReadAllText(stat);
                if (text[(text.LastIndexOf(')') + 2)..].StartsWith('Z')) return true;
            }
            catch (IOException) { return true; }
            Thread.Sleep(100);
        }
        return false;
    }
}
