using System.Globalization;
using System.Text;
using Passthru.Check;
using Passthru.Host;

namespace Passthru.Launch;

/// <summary>
/// What QEMU's -help says (its version, and -sandbox: built with seccomp), remembered per binary in the state
/// directory. Starting QEMU to ask took about 90 ms of every `passthru run` (bench/run-overhead.sh), and both answers
/// are fixed when the binary is built. The entry names the binary by path, device, inode, size, and modification and
/// status-change times: an upgraded, replaced or rewritten QEMU shows a new identity and is asked again. `check`
/// always asks QEMU itself.
/// </summary>
public static class QemuProbe
{
    public const string FileName = "qemu-probe";
    private const string Format = "passthru-qemu-probe 1";

    /// <summary>The probe of <paramref name="qemu"/>: remembered in <paramref name="stateDir"/> when it holds one for this very binary, else QEMU is asked (and the answer kept there when the directory can be written).</summary>
    public static (string? Version, bool Sandbox)? Of(string qemu, string? stateDir)
    {
        if (stateDir is null) return HostCheck.ProbeQemu(qemu);
        var file = Path.Combine(stateDir, FileName);
        var key = Key(qemu);
        if (key is not null && Remembered(file, key) is { } known) return known;
        var probe = HostCheck.ProbeQemu(qemu);
        if (key is not null && probe is var (version, sandbox))
        {
            var text = $"{Format}\n{key}\n{(sandbox ? "sandbox" : "no-sandbox")}\n{version ?? ""}\n";
            // Only a cache: an unwritable state directory (run as a user, say) just means QEMU is asked next time too.
            // AtomicFile: a kill mid-write leaves the old entry or the new one whole, never half of one to be misread.
            try { AtomicFile.Write(file, Encoding.UTF8.GetBytes(text), UnixFileMode.UserRead | UnixFileMode.UserWrite); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return probe;
    }

    /// <summary>The binary's identity as one line, or null when it cannot be stat'ed (then nothing is remembered).</summary>
    private static string? Key(string qemu) =>
        NativeFiles.Identity(qemu) is var (dev, ino, size, mtime, ctime) && !qemu.Contains('\n')
            ? string.Create(CultureInfo.InvariantCulture, $"{dev} {ino} {size} {mtime} {ctime} {qemu}") : null;

    /// <summary>
    /// The remembered answer for exactly this binary; null when there is none, it is for another binary, or the file is
    /// not this process's own (a file another account could have written would decide whether QEMU is sandboxed).
    /// </summary>
    private static (string? Version, bool Sandbox)? Remembered(string file, string key)
    {
        if (NativeFiles.Owner(file) is not var (uid, _, mode) || uid != Euid() || (mode & 0x12) != 0) return null; // not ours, or group/other-writable
        if (NativeFiles.ReadAll(file) is not { Length: < 4096 } bytes) return null;
        var lines = Encoding.UTF8.GetString(bytes).Split('\n');
        if (lines is not [Format, var k, var s and ("sandbox" or "no-sandbox"), var version, ""] || k != key) return null;
        return (version.Length == 0 ? null : version, s == "sandbox");
    }

    private static uint Euid() => NativeFiles.EffectiveUid();
}
