using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>
/// The published binary, run as root on this machine (the live host, no devices), drops to QEMU's account in QEMU's own
/// process before its exec (Host/spawn.c): no setpriv in between, and the same drop setpriv made. The stand-in "QEMU"
/// says what its process holds, from the real kernel's /proc. --user nobody: an account every host has, so that the
/// test creates none. The virtual host's test of a real QEMU holding a device is VirtualHostLeastPrivilegeTests.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed class RunPrivilegeDropTests : IDisposable
{
    private readonly string _dir = GuestFiles.Directory("passthru-drop-").FullName;
    private readonly string _state = Directory.CreateTempSubdirectory("passthru-drop-state-").FullName;
    private static string Binary => PublishedBinary.Path;

    public void Dispose()
    {
        Directory.Delete(_dir, true);
        Directory.Delete(_state, true);
    }

    /// <summary>A stand-in QEMU (0755, so that nobody may run it) answering the sandbox probe, then running <paramref name="body"/>.</summary>
    private string Qemu(string body)
    {
        var qemu = GuestFiles.StandInQemu(_dir, "case \"$1\" in -help|--version) echo 'QEMU emulator version 8.2.2'; exit 0;; esac\n" + body);
        File.SetUnixFileMode(qemu, (UnixFileMode)0x1ED);
        File.SetUnixFileMode(Path.Combine(_dir, "kernel"), (UnixFileMode)0x1A4); // 0644
        return qemu;
    }

    private (int ExitCode, string Stdout, string Stderr) Run(string qemu) =>
        Repo.Exec(Binary, "run", "--qemu", qemu, "--kernel", Path.Combine(_dir, "kernel"), "--accel", "tcg", "--memory", "64",
            "--user", "nobody", "--state-dir", _state, "--name", "dropped");

    [Fact]
    public void Qemu_starts_as_the_account_with_no_groups_no_capabilities_in_any_set_and_no_new_privs()
    {
        Assert.True(Environment.IsPrivilegedProcess, "this test drops from root: run the tests as root, as CI does");
        var qemu = Qemu("grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status");
        var r = Run(qemu);
        Assert.True(r.ExitCode == 0, r.ToString());
        var uid = Repo.Exec("id", "-u", "nobody").Stdout.Trim();
        var gid = Repo.Exec("id", "-g", "nobody").Stdout.Trim();
        Assert.Contains($"Uid:\t{uid}\t{uid}\t{uid}\t{uid}\n", r.Stdout);
        Assert.Contains($"Gid:\t{gid}\t{gid}\t{gid}\t{gid}\n", r.Stdout);
        Assert.Matches(@"(?m)^Groups:\s*$", r.Stdout); // root's groups are gone, none added (no KVM: no kvm group)
        foreach (var set in new[] { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" }) Assert.Contains($"{set}:\t0000000000000000\n", r.Stdout);
        Assert.Contains("NoNewPrivs:\t1\n", r.Stdout);
        // QEMU itself is what is exec'd; the line before says as whom.
        Assert.Contains($"[passthru] QEMU runs as nobody ({uid}:{gid})", r.Stderr);
        Assert.Contains($"[passthru] starting: {qemu} -machine q35,accel=tcg", r.Stderr);
        Assert.DoesNotContain("setpriv", r.Stderr);
    }

    [Fact]
    public void A_qemu_the_account_cannot_execute_is_one_line_naming_it_and_leaves_no_guest_behind()
    {
        var qemu = Qemu("echo started");
        File.SetUnixFileMode(qemu, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute); // root's alone
        var r = Run(qemu);
        Assert.NotEqual(0, r.ExitCode);
        Assert.DoesNotContain("started", r.Stdout);
        Assert.Contains($"passthru: could not start {qemu}: Permission denied", r.Stderr);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_state, "guests")));
    }
}
