using Passthru.Tests.Support;

namespace Passthru.Tests.Export;

/// <summary>
/// Real libvirt from Debian's packages: virt-xml-validate for the schema, and a libvirt daemon on its local unix
/// socket for `virsh domxml-to-native`. The daemon is started here when none answers, with an idle timeout so it
/// goes away by itself; it never listens on the network.
/// </summary>
public sealed class LibvirtFixture
{
    public const string Uri = "qemu:///system";

    /// <summary>Null when a daemon answers; otherwise why none could be started (reported, never silently skipped).</summary>
    public string? DaemonUnavailable { get; }

    public LibvirtFixture()
    {
        if (Repo.Exec("which", "virt-xml-validate").ExitCode != 0)
            throw new InvalidOperationException("virt-xml-validate is missing: scripts/install-deps.sh installs libvirt-clients and libxml2-utils");
        DaemonUnavailable = EnsureDaemon();
    }

    private static string? EnsureDaemon()
    {
        if (Answers()) return null;
        if (!File.Exists("/usr/sbin/libvirtd")) return "libvirtd is not installed (libvirt-daemon, libvirt-daemon-driver-qemu)";
        if (Environment.UserName != "root") return "starting libvirtd needs root";
        // libvirt's QEMU driver resolves its default user at start; Debian's libvirt-daemon-system package would create it.
        if (Repo.Exec("id", "libvirt-qemu").ExitCode != 0)
        {
            Repo.Exec("groupadd", "-r", "-f", "kvm");
            Repo.Exec("groupadd", "-r", "-f", "libvirt-qemu");
            Repo.Exec("useradd", "-r", "-g", "libvirt-qemu", "-G", "kvm", "-d", "/var/lib/libvirt", "-s", "/usr/sbin/nologin", "libvirt-qemu");
        }
        Directory.CreateDirectory("/var/log/libvirt");
        Directory.CreateDirectory("/run/libvirt");
        // Our machines' /dev/kvm belongs to a nested PVM hypervisor; libvirt's capability probe trips on it and re-probes
        // QEMU on every call (about a minute each). The tests use TCG domains only, so the test daemon gets a private
        // mount namespace in which /dev/kvm is masked.
        var start = Repo.Exec("unshare", "-m", "sh", "-c",
            "if [ -e /dev/kvm ]; then mount --bind /dev/null /dev/kvm; fi; exec /usr/sbin/libvirtd --daemon --timeout 600");
        if (start.ExitCode != 0) return "libvirtd did not start: " + start.Stderr.Trim();
        for (int i = 0; i < 40; i++)
        {
            if (Answers()) return null;
            Thread.Sleep(250);
        }
        return "libvirtd started but its socket did not answer within 10 s (see /var/log/libvirt/libvirtd.log)";
    }

    private static bool Answers() => Repo.Exec("virsh", "-c", Uri, "version").ExitCode == 0;

    public (int ExitCode, string Output) Validate(string xmlFile)
    {
        var r = Repo.Exec("virt-xml-validate", xmlFile, "domain");
        return (r.ExitCode, r.Stdout + r.Stderr);
    }

    /// <summary>The QEMU argv libvirt would run for a domain file, split as virsh prints it (one shell-quoted line).</summary>
    public IReadOnlyList<string> QemuArgv(string xmlFile)
    {
        var r = Repo.Exec("virsh", "-c", Uri, "domxml-to-native", "qemu-argv", xmlFile);
        if (r.ExitCode != 0) throw new InvalidOperationException("domxml-to-native failed: " + r.Stderr.Trim());
        var split = Repo.Exec("bash", "-c", "eval \"set -- $1\"; for a; do printf '%s\\0' \"$a\"; done", "split", r.Stdout.Trim());
        return split.Stdout.Split('\0', StringSplitOptions.RemoveEmptyEntries);
    }
}

[CollectionDefinition("libvirt")]
public sealed class LibvirtCollection : ICollectionFixture<LibvirtFixture>;
