using System.Runtime.InteropServices;
using System.Text;
using Passthru.Host;

namespace Passthru.Setup;

/// <summary>
/// Reading and writing configuration files through the host root. Writes go to a temporary file in the same
/// directory, are fsynced, then renamed over the target (and the directory fsynced), so a file is either the old one
/// or the new one, never half-written. Candidates for Host/ once the bind journal needs the same.
/// </summary>
public static class SetupFiles
{
    /// <summary>A file's bytes as Latin-1 text (one char per byte: bytes round-trip exactly), or null.</summary>
    public static string? ReadText(HostRoot host, string relative) =>
        host.ReadBytes(relative, 4 << 20) is { } bytes ? Encoding.Latin1.GetString(bytes) : null;

    public static byte[] Bytes(string latin1) => Encoding.Latin1.GetBytes(latin1);

    /// <summary>
    /// SHA-256, computed in managed code (BouncyCastle): the published binary is static, and .NET's SHA256 would load
    /// OpenSSL with dlopen, which a static binary cannot.
    /// </summary>
    public static string Sha256(byte[] bytes)
    {
        var digest = new Org.BouncyCastle.Crypto.Digests.Sha256Digest();
        digest.BlockUpdate(bytes, 0, bytes.Length);
        var hash = new byte[digest.GetDigestSize()];
        digest.DoFinal(hash, 0);
        return Convert.ToHexStringLower(hash);
    }

    public static string? Sha256(HostRoot host, string relative) =>
        File.Exists(host.Path(relative)) ? Sha256(File.ReadAllBytes(host.Path(relative))) : null;

    /// <summary>
    /// Writes bytes to a temporary file beside the target, fsynced; returns its path. Nothing at the target changes
    /// until <see cref="Commit"/>. Creates missing parent directories (recorded by the caller for undo).
    /// </summary>
    public static string Stage(HostRoot host, string relative, byte[] bytes, UnixFileMode mode)
    {
        var target = host.Path(relative);
        var temp = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.passthru-{Environment.ProcessId}.tmp");
        using (var stream = new FileStream(temp, CreateOptions(mode)))
        {
            stream.Write(bytes);
            stream.Flush(flushToDisk: true);
        }
        SetMode(temp, mode); // the umask may have narrowed the create mode
        return temp;
    }

    /// <summary>Renames a staged file over its target and fsyncs the directory so the rename survives a crash.</summary>
    public static void Commit(string staged, HostRoot host, string relative)
    {
        File.Move(staged, host.Path(relative), overwrite: true);
        SyncDirectory(Path.GetDirectoryName(host.Path(relative))!);
    }

    public static void WriteAtomically(HostRoot host, string relative, byte[] bytes, UnixFileMode mode) =>
        Commit(Stage(host, relative, bytes, mode), host, relative);

    public static void Delete(HostRoot host, string relative)
    {
        File.Delete(host.Path(relative));
        SyncDirectory(Path.GetDirectoryName(host.Path(relative))!);
    }

    private static void SyncDirectory(string directory)
    {
        // .NET refuses to open a directory as a file, so fsync(2) it through libc; best effort (some file systems
        // refuse, and the rename itself is already atomic).
        int fd = open(directory, 0 /* O_RDONLY */);
        if (fd < 0) return;
        fsync(fd);
        close(fd);
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int fsync(int fd);

    [DllImport("libc")]
    private static extern int close(int fd);

    // Passthru runs on Linux only (vfio); these wrappers keep the platform analyzer's warning in one place.
#pragma warning disable CA1416
    public static UnixFileMode Mode(HostRoot host, string relative) => File.GetUnixFileMode(host.Path(relative));

    public static void CreateDirectory(string path, UnixFileMode mode) => Directory.CreateDirectory(path, mode);

    private static FileStreamOptions CreateOptions(UnixFileMode mode) =>
        new() { Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = mode };

    private static void SetMode(string path, UnixFileMode mode) => File.SetUnixFileMode(path, mode);
#pragma warning restore CA1416

    public const UnixFileMode ConfigMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    public const UnixFileMode PrivateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
}
