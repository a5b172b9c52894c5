using System.Text;

namespace Passthru.Host;

/// <summary>
/// A host directory held open, whose entries' attributes and links are read relative to it (openat, readlinkat):
/// one open and one read per attribute, and the kernel walks only "ENTRY/NAME" instead of the whole path from the
/// root (and, in sysfs, the device's symlink) for every file. `list` reads several files of each of thousands of
/// SR-IOV functions this way. Safe to share between threads.
/// </summary>
public sealed class HostDirectory : IDisposable
{
    private readonly int _fd;

    public HostRoot Host { get; }
    /// <summary>Root-relative path of the directory ("sys/bus/pci/devices").</summary>
    public string Relative { get; }

    private HostDirectory(HostRoot host, string relative, int fd) { Host = host; Relative = relative; _fd = fd; }

    /// <summary>The directory, or null when it cannot be opened.</summary>
    internal static HostDirectory? Open(HostRoot host, string relative)
    {
        int fd = NativeFiles.OpenDirectory(host.Path(relative));
        return fd < 0 ? null : new HostDirectory(host, relative, fd);
    }

    /// <summary>Absolute path of ENTRY/NAME under it, for messages.</summary>
    public string Path(string entry, string name) => Host.Path($"{Relative}/{entry}/{name}");

    /// <summary>
    /// ENTRY/NAME's content into <paramref name="buffer"/> without trailing newlines and NULs, as
    /// <see cref="HostRoot.ReadAttribute"/>: its length, or -1 when it is absent or unreadable.
    /// </summary>
    public int ReadAttribute(string entry, string name, Span<byte> buffer)
    {
        int n = NativeFiles.ReadFileAt(_fd, entry, name, buffer);
        while (n > 0 && (buffer[n - 1] == (byte)'\n' || buffer[n - 1] == 0)) n--;
        return n;
    }

    public string? ReadAttribute(string entry, string name)
    {
        Span<byte> buffer = stackalloc byte[4096];
        int n = ReadAttribute(entry, name, buffer);
        return n < 0 ? null : Encoding.UTF8.GetString(buffer[..n]);
    }

    /// <summary>The last path component of ENTRY/NAME's symlink target, as <see cref="HostRoot.ReadLinkName"/>; null when not a symlink.</summary>
    public string? ReadLinkName(string entry, string name)
    {
        Span<byte> target = stackalloc byte[4096];
        int n = NativeFiles.ReadLinkAt(_fd, entry, name, target);
        if (n < 0) return null;
        var t = target[..n];
        while (t.Length > 0 && t[^1] == (byte)'/') t = t[..^1];
        int slash = t.LastIndexOf((byte)'/');
        return t.Length - slash - 1 == 0 ? null : Encoding.UTF8.GetString(t[(slash + 1)..]);
    }

    public void Dispose() => NativeFiles.Close(_fd);
}
