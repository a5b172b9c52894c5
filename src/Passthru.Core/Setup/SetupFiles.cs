using System.Text;
using Passthru.Host;

namespace Passthru.Setup;

/// <summary>
/// Reading and writing configuration files by root-relative path. Writes go through <see cref="AtomicFile"/>, as the
/// bind journal's do: a temporary file in the same directory, fsynced, renamed over the target, the directory
/// fsynced, so a file is either the old one or the new one, never half-written.
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
    /// Writes bytes to a temporary file beside the target, fsynced, with its final mode; returns its path. Nothing at
    /// the target changes until <see cref="Commit"/>. The parent directory must exist (the caller creates it and
    /// records it for undo).
    /// </summary>
    public static string Stage(HostRoot host, string relative, byte[] bytes, UnixFileMode mode) =>
        AtomicFile.Stage(host.Path(relative), bytes, mode);

    /// <summary>Renames a staged file over its target and fsyncs the directory so the rename survives a crash.</summary>
    public static void Commit(string staged, HostRoot host, string relative) => AtomicFile.Commit(staged, host.Path(relative));

    /// <summary>Removes a staged file that will not be committed.</summary>
    public static void Discard(string staged) => AtomicFile.Discard(staged);

    public static void WriteAtomically(HostRoot host, string relative, byte[] bytes, UnixFileMode mode) =>
        AtomicFile.Write(host.Path(relative), bytes, mode);

    public static void Delete(HostRoot host, string relative) => AtomicFile.Delete(host.Path(relative));

    // Passthru runs on Linux only (vfio); these wrappers keep the platform analyzer's warning in one place.
#pragma warning disable CA1416
    public static UnixFileMode Mode(HostRoot host, string relative) => File.GetUnixFileMode(host.Path(relative));

    public static void CreateDirectory(string path, UnixFileMode mode) => Directory.CreateDirectory(path, mode);
#pragma warning restore CA1416

    public const UnixFileMode ConfigMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    public const UnixFileMode PrivateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
}
