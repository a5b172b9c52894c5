using System.Runtime.InteropServices;
using System.Text;

namespace Passthru.Host;

/// <summary>
/// open/read/readlink straight from libc, for the hot path of listing thousands of functions: a missing attribute is a
/// return code here, where .NET's file APIs throw (and an exception costs more than the read itself).
/// </summary>
internal static partial class NativeFiles
{
    private const int O_RDONLY = 0, O_CLOEXEC = 0x80000;

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int open(byte* path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint read(int fd, byte* buffer, nint count);

    [LibraryImport("libc")]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint readlink(byte* path, byte* buffer, nint size);

    /// <summary>Up to <paramref name="buffer"/>.Length bytes of a file; -1 when it cannot be opened or read.</summary>
    public static unsafe int ReadFile(string path, Span<byte> buffer)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        int n = Encoding.UTF8.GetBytes(path, cpath);
        cpath[n] = 0;
        fixed (byte* p = cpath)
        fixed (byte* b = buffer)
        {
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            if (fd < 0) return -1;
            try
            {
                nint got = read(fd, b, buffer.Length);
                return got < 0 ? -1 : (int)got;
            }
            finally { close(fd); }
        }
    }

    /// <summary>A symlink's target, or null when the path is not a symlink.</summary>
    public static unsafe string? ReadLink(string path)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        int n = Encoding.UTF8.GetBytes(path, cpath);
        cpath[n] = 0;
        Span<byte> target = stackalloc byte[4096];
        fixed (byte* p = cpath)
        fixed (byte* t = target)
        {
            nint len = readlink(p, t, target.Length);
            return len < 0 ? null : Encoding.UTF8.GetString(target[..(int)len]);
        }
    }
}
