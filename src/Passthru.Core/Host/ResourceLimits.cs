using System.Runtime.InteropServices;

namespace Passthru.Host;

/// <summary>The locked-memory limit (RLIMIT_MEMLOCK) of this process, which QEMU inherits: vfio pins all guest RAM.</summary>
public static partial class ResourceLimits
{
    private const int RLIMIT_MEMLOCK = 8;
    public const ulong Infinity = ulong.MaxValue;

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit { public ulong Current; public ulong Maximum; }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrlimit(int resource, out RLimit limit);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setrlimit(int resource, in RLimit limit);

    public static (ulong Soft, ulong Hard) LockedMemory()
    {
        return getrlimit(RLIMIT_MEMLOCK, out var l) == 0 ? (l.Current, l.Maximum) : (0, 0);
    }

    /// <summary>Raises the soft limit to at least <paramref name="bytes"/> when the hard limit allows; true when it now covers them.</summary>
    public static bool EnsureLockedMemory(ulong bytes)
    {
        var (soft, hard) = LockedMemory();
        if (soft == Infinity || soft >= bytes) return true;
        if (hard != Infinity && hard < bytes) return false;
        var wanted = new RLimit { Current = bytes, Maximum = hard };
        return setrlimit(RLIMIT_MEMLOCK, in wanted) == 0;
    }

    /// <summary>
    /// Sets this process's locked-memory limit, soft and hard, to <paramref name="limit"/> until the returned scope is
    /// disposed, which puts the old one back: a child started inside the scope keeps the limit (fork copies it), as
    /// prlimit(1) exec'ing the child would give it, without that process. Raising the hard limit needs CAP_SYS_RESOURCE.
    /// </summary>
    public static IDisposable SetLockedMemoryFor((ulong Soft, ulong Hard) limit)
    {
        if (getrlimit(RLIMIT_MEMLOCK, out var old) != 0) throw Failed("read the locked-memory limit");
        var wanted = new RLimit { Current = limit.Soft, Maximum = limit.Hard };
        if (setrlimit(RLIMIT_MEMLOCK, in wanted) != 0) throw Failed($"set the locked-memory limit to {limit.Soft >> 20} MiB");
        return new PutBack(old);
    }

    private static UserError Failed(string what) =>
        new($"cannot {what} for QEMU ({Marshal.GetLastPInvokeErrorMessage()}): vfio pins the guest's memory; run as root with CAP_SYS_RESOURCE");

    /// <summary>The limit as it was before <see cref="SetLockedMemoryFor"/>, put back on dispose.</summary>
    private sealed class PutBack(RLimit old) : IDisposable
    {
        public void Dispose() => setrlimit(RLIMIT_MEMLOCK, in old);
    }

    /// <summary>Whether this process may raise hard limits (CAP_SYS_RESOURCE in its effective set): root on a host, often not in a container.</summary>
    public static bool MayRaiseHardLimits()
    {
        const int CapSysResource = 24;
        var line = (NativeFiles.ReadAll("/proc/self/status") is { } b ? System.Text.Encoding.ASCII.GetString(b) : "")
            .Split('\n').FirstOrDefault(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        return line is not null && ulong.TryParse(line[7..].Trim(), System.Globalization.NumberStyles.HexNumber, null, out var caps)
            && (caps >> CapSysResource & 1) == 1;
    }
}
