using Passthru.Host;

namespace Passthru.Launch;

/// <summary>
/// How a guest's QEMU runs: as which unprivileged account (null: as whoever started Passthru), with which locked-memory
/// limit, and whether under QEMU's seccomp sandbox. Decided with the run's plan, shown by --dry-run.
/// </summary>
/// <param name="User">The account (for one still to be created: its name, with uid and gid -1).</param>
/// <param name="Create">The account does not exist yet: run creates it first, as a system package would.</param>
/// <param name="LockedMemory">RLIMIT_MEMLOCK set for QEMU alone (vfio pins guest RAM), soft and hard; null: inherited.</param>
/// <param name="Groups">Supplementary groups QEMU keeps (kvm, for /dev/kvm); by name.</param>
/// <param name="Why">For QEMU run as its caller (no <paramref name="User"/>): why, as --dry-run and run say it.</param>
public sealed record QemuPrivilege(Account? User, bool Create, (ulong Soft, ulong Hard)? LockedMemory, bool Sandbox, IReadOnlyList<string> Groups,
    string Why = "QEMU runs as root, without its sandbox (--as-root)")
{
    /// <summary>QEMU's version as the sandbox probe read it (its -help), so that run does not start QEMU again to ask.</summary>
    public string? QemuVersion { get; init; }

    /// <summary>QEMU as its caller, unsandboxed: root with --as-root (an export's QEMU is another host's).</summary>
    public static readonly QemuPrivilege Inherited = new(null, false, null, false, []);

    /// <summary>
    /// The sandbox libvirt turns on for its QEMUs: the default filter, plus no obsolete system calls, no set*uid, no
    /// fork/exec, no scheduler or resource changes. QEMU cannot take root back, nor start anything else.
    /// </summary>
    public const string SandboxOption = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

    /// <summary>What vfio needs locked beyond guest RAM: libvirt's allowance for a VM with host devices (1 GiB).</summary>
    public const ulong VfioAllowance = 1UL << 30;

    /// <summary>
    /// The wrapper that starts QEMU unprivileged, prepended to its argument vector: setpriv drops to the account (no
    /// supplementary groups but those named, no capabilities in any set, no_new_privs) and execs QEMU: one process, one
    /// pid, never a shell. Chosen over QEMU's own -runas (-run-with user= since 9.1), which opens everything as root
    /// before it drops and so cannot prove the files are the user's to read; with setpriv QEMU never holds root at all,
    /// as libvirt's forked child does not. The locked-memory limit is not the wrapper's: Passthru sets it on itself
    /// for the moment it starts setpriv (<see cref="ResourceLimits.SetLockedMemoryFor"/>), which spares a prlimit(1)
    /// process in between (an exec of a dynamically linked program, a millisecond or two of every run). The published
    /// binary does the same drop itself, in QEMU's process before its exec (<see cref="Credentials"/>, Host/spawn.c),
    /// sparing setpriv's exec too: there, this is the plan's equivalent command, which --dry-run prints.
    /// </summary>
    public IReadOnlyList<string> Wrapper(string setpriv)
    {
        if (User is null) return [];
        var argv = new List<string>();
        // By number when the account exists: the ids CheckFiles proved the guest's files readable by, not whatever a
        // name resolves to through NSS at exec time (another source may come before files). It spares no lookup:
        // setpriv tries a number as a name first (getpwnam("999"); with "files systemd" that loads libnss_systemd),
        // ~0.2 ms more than a name found in /etc/passwd (bench/README.md). Describe() names the account beside its ids.
        string uid = User.Uid >= 0 ? User.Uid.ToString(System.Globalization.CultureInfo.InvariantCulture) : User.Name;
        string gid = User.Uid >= 0 ? User.Gid.ToString(System.Globalization.CultureInfo.InvariantCulture) : User.Name;
        argv.AddRange([setpriv, $"--reuid={uid}", $"--regid={gid}",
            Groups.Count > 0 ? $"--groups={string.Join(",", Groups)}" : "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]);
        return argv;
    }

    /// <summary>
    /// The same drop as data for <see cref="ChildProcess"/>, which does it in QEMU's own process before its exec where
    /// it can (then the wrapper's arguments are skipped): the account's ids and the kept groups' ids. Null when QEMU runs
    /// as its caller, or the account has no ids yet (the wrapper, by name, still drops then).
    /// </summary>
    public ChildCredentials? Credentials(HostRoot host)
    {
        if (User is not { Uid: >= 0, Gid: >= 0 } user) return null;
        var groups = new List<uint>();
        foreach (var name in Groups)
            groups.Add((uint)(Accounts.GroupId(host, name) ?? throw new UserError($"the group {name}, which QEMU keeps, does not exist any more: run again")));
        return new ChildCredentials((uint)user.Uid, (uint)user.Gid, groups, Wrapper("setpriv").Count);
    }

    /// <summary>What --dry-run and the run itself say about it, one line.</summary>
    public string Describe() => User is null
        ? Why + (Sandbox ? $", sandboxed (-sandbox {SandboxOption})" : "")
        : $"QEMU runs as {User.Name}{(User.Uid >= 0 ? $" ({User.Ids})" : " (created first, as a system user)")}"
          + (Groups.Count > 0 ? $" with the group {string.Join(", ", Groups)}" : "")
          + (LockedMemory is var (s, _) ? $", locked memory up to {s >> 20} MiB for it alone" : "")
          + (Sandbox ? $", sandboxed (-sandbox {SandboxOption})" : ", without a sandbox (this QEMU has no seccomp support)");

    /// <summary>
    /// Refuses, before anything is bound, a file QEMU must open that the account cannot: named, with the ways to fix
    /// it. Passthru never loosens a file's mode itself.
    /// </summary>
    public void CheckFiles(IEnumerable<(string Path, string What, bool Write)> files)
    {
        if (User is null) return;
        foreach (var (path, what, write) in files)
            if (AccountAccess.Denied(path, User, write) is string why)
                throw new UserError($"QEMU runs as {User.Name}, which cannot {(write ? "write" : "read")} {what} {path}: {why}; "
                    + $"move it where {User.Name} can {(write ? "write" : "read")} it, grant access (setfacl -m u:{User.Name}:{(write ? "rw" : "r")} on it, x on its directories), or run with --as-root");
    }
}
