using System.Runtime.InteropServices;
using System.Text;

namespace Passthru.Host;

/// <summary>
/// The kernel's log lines from a moment on: /dev/kmsg opened non-blocking and moved to its end, so reading later gives
/// exactly what the kernel said in between (what vfio said while QEMU set a device up). Empty where it cannot be read
/// (not root, dmesg_restrict, a captured tree): explanations then rest on QEMU's own words.
/// </summary>
public sealed unsafe partial class KernelLog : IDisposable
{
    private const int O_RDONLY = 0, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000, SEEK_END = 2, EPIPE = 32;
    private int _fd = -1;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int open(byte* path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint read(int fd, byte* buffer, nint count);

    [LibraryImport("libc")]
    private static partial int close(int fd);

    /// <summary>Starts listening: lines the kernel logs after this are what <see cref="ReadNew"/> returns.</summary>
    public static KernelLog From(HostRoot host)
    {
        var log = new KernelLog();
        if (!host.IsLive) return log;
        var path = Encoding.UTF8.GetBytes(host.Path("dev/kmsg") + "\0");
        fixed (byte* p = path) log._fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
        if (log._fd >= 0 && lseek(log._fd, 0, SEEK_END) < 0) log.Dispose();
        return log;
    }

    /// <summary>The messages logged since <see cref="From"/> (or the last call), one per record, without their prefix.</summary>
    public IReadOnlyList<string> ReadNew()
    {
        var lines = new List<string>();
        if (_fd < 0) return lines;
        var buffer = new byte[8192];
        fixed (byte* b = buffer)
        {
            while (true)
            {
                // One record per read: "priority,sequence,microseconds,flags;message\n" and continuation lines.
                nint n = read(_fd, b, buffer.Length);
                if (n < 0 && Marshal.GetLastPInvokeError() == EPIPE) continue; // records were overwritten: go on
                if (n <= 0) break;                                              // EAGAIN: nothing more
                var record = Encoding.UTF8.GetString(buffer, 0, (int)n);
                int semicolon = record.IndexOf(';');
                var message = (semicolon >= 0 ? record[(semicolon + 1)..] : record).Split('\n')[0];
                lines.Add(message);
            }
        }
        return lines;
    }

    public void Dispose()
    {
        if (_fd >= 0) close(_fd);
        _fd = -1;
    }
}
