using System.Text;

namespace Passthru.Host;

/// <summary>
/// The one way into host state. Every path is relative to a root directory: "/" on a live host, a captured tree in
/// tests, the chroot inside the virtual host. Nothing outside this folder builds an absolute host path itself.
/// </summary>
public sealed class HostRoot
{
    public string Root { get; }

    public HostRoot(string root)
    {
        if (string.IsNullOrWhiteSpace(root))
            throw new UserError("--root is empty: give a directory such as / or a captured tree", ExitCodes.Usage);
        var full = System.IO.Path.GetFullPath(root);
        if (!Directory.Exists(full))
            throw new UserError($"host root '{root}' is not a directory: give / or a captured tree", ExitCodes.Usage);
        Root = full.Length > 1 ? full.TrimEnd('/') : full;
    }

    public static HostRoot Live { get; } = new("/");

    public bool IsLive => Root == "/";

    /// <summary>Absolute path of a root-relative path ("sys/bus/pci/devices").</summary>
    public string Path(string relative) =>
        Root == "/" ? "/" + relative.TrimStart('/') : Root + "/" + relative.TrimStart('/');

    public bool Exists(string relative) => System.IO.Path.Exists(Path(relative));

    public bool DirectoryExists(string relative) => Directory.Exists(Path(relative));

    /// <summary>A directory held open for reads relative to it (<see cref="HostDirectory"/>); null when it cannot be opened.</summary>
    public HostDirectory? OpenDirectory(string relative) => HostDirectory.Open(this, relative);

    /// <summary>Names of the entries of a directory, sorted ordinally; empty when it does not exist.</summary>
    public string[] List(string relative)
    {
        var names = NativeFiles.ListDirectory(Path(relative));
        if (names is null) return [];
        // Captured trees mark empty directories with dot files; sysfs itself has none.
        names.RemoveAll(n => n[0] == '.');
        var sorted = names.ToArray();
        Array.Sort(sorted, StringComparer.Ordinal);
        return sorted;
    }

    /// <summary>
    /// A sysfs-style attribute: its content without the trailing newline, or null when absent or unreadable.
    /// Attributes are small; one read into a stack buffer avoids the cost of a FileStream per file, which
    /// matters when listing thousands of functions.
    /// </summary>
    public string? ReadAttribute(string relative)
    {
        Span<byte> buffer = stackalloc byte[4096];
        int n = NativeFiles.ReadFile(Path(relative), buffer);
        if (n < 0) return null;
        while (n > 0 && (buffer[n - 1] == (byte)'\n' || buffer[n - 1] == 0)) n--;
        return Encoding.UTF8.GetString(buffer[..n]);
    }

    /// <summary>A whole text file (procfs, config files), or null when absent or unreadable.</summary>
    public string? ReadText(string relative) =>
        NativeFiles.ReadAll(Path(relative)) is { } bytes ? Encoding.UTF8.GetString(WithoutBom(bytes)) : null;

    /// <summary>A UTF-8 byte order mark is not text (File.ReadAllText, which this replaced, dropped it too).</summary>
    private static ReadOnlySpan<byte> WithoutBom(ReadOnlySpan<byte> bytes) => bytes.StartsWith(Encoding.UTF8.Preamble) ? bytes[3..] : bytes;

    /// <summary>Up to <paramref name="max"/> bytes of a file (a config space, a firmware table); null when absent or unreadable.</summary>
    public byte[]? ReadBytes(string relative, int max = 1 << 20) => NativeFiles.ReadAll(Path(relative), max);

    /// <summary>
    /// Up to <paramref name="max"/> bytes of a file read to its end (a sysfs binary attribute such as a ROM), throwing
    /// the IOException the kernel's errno gives (EIO for a ROM it cannot read), where <see cref="ReadBytes"/> says null.
    /// </summary>
    public byte[] ReadBinary(string relative, int max)
    {
        using var handle = File.OpenHandle(Path(relative), FileMode.Open, FileAccess.Read);
        var buffer = new byte[Math.Min(max, 1 << 20)];
        int total = 0, n;
        while (total < max)
        {
            if (total == buffer.Length) Array.Resize(ref buffer, (int)Math.Min((long)buffer.Length * 2, max));
            if ((n = RandomAccess.Read(handle, buffer.AsSpan(total), total)) <= 0) break;
            total += n;
        }
        return buffer[..total];
    }

    /// <summary>The last path component of a symlink's target (a driver's or group's name), or null.</summary>
    public string? ReadLinkName(string relative)
    {
        var target = ReadLink(relative);
        if (target is null) return null;
        var name = System.IO.Path.GetFileName(target.TrimEnd('/'));
        return name.Length == 0 ? null : name;
    }

    public string? ReadLink(string relative) => NativeFiles.ReadLink(Path(relative));

    /// <summary>
    /// Writes a sysfs attribute in one write(2), as the kernel expects (echo VALUE > FILE). Throws IOException with
    /// the kernel's errno message when it refuses.
    /// </summary>
    public void WriteAttribute(string relative, string value)
    {
        NativeFiles.WriteAttribute(Path(relative), Encoding.UTF8.GetBytes(value));
        AfterWrite?.Invoke(relative, value);
    }

    /// <summary>Owner, group and permission bits of a file (a /dev/vfio node); null when it does not exist.</summary>
    public (int Uid, int Gid, int Mode)? Owner(string relative) =>
        NativeFiles.Owner(Path(relative)) is var (u, g, m) ? ((int)u, (int)g, (int)m) : null;

    /// <summary>Hands a file (a /dev/vfio node) to an owner with a mode; IOException when the kernel refuses.</summary>
    public void SetOwner(string relative, int uid, int gid, int mode)
    {
        NativeFiles.SetOwner(Path(relative), (uint)uid, (uint)gid, (uint)mode);
        AfterWrite?.Invoke(relative, $"owner {uid}:{gid} mode {Convert.ToString(mode, 8)}");
    }

    /// <summary>
    /// Tests' kernel: called after each <see cref="WriteAttribute"/> with the root-relative path and the value, so a
    /// scratch tree can react as sysfs would (bind a driver on drivers_probe, create VFs on sriov_numvfs), refuse with
    /// an IOException as the kernel's errno would, or stop the process there. Null on real hosts.
    /// </summary>
    internal Action<string, string>? AfterWrite { get; set; }

    public override string ToString() => Root;
}
