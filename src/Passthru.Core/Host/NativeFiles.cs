using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Passthru.Host;

/// <summary>
/// File system calls straight from libc. Two reasons: a missing attribute is a return code here, where .NET's file
/// APIs throw (and an exception costs more than the read itself, at thousands of SR-IOV functions); and bind and
/// restore are one short process each, where under emulation every first use of a code path costs its translation,
/// and .NET's general file machinery (FileStream strategies, the directory enumerator) was a measurable part of a
/// bind + restore cycle. Linux only (the dirent layout below is Linux's, glibc and musl alike).
/// </summary>
internal static unsafe partial class NativeFiles
{
    private const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0x40, O_TRUNC = 0x200, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    // O_DIRECTORY is one of the few flags whose value differs between x86-64 (0200000) and arm64 (040000).
    private static readonly int O_DIRECTORY = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 0x10000 : 0x4000;
    private const int LOCK_EX = 2, LOCK_NB = 4;
    private const int EPERM = 1, ENOENT = 2, EINTR = 4, EAGAIN = 11, EWOULDBLOCK = EAGAIN, EACCES = 13, EEXIST = 17, EPIPE = 32;

    // open(2) is variadic in C; its mode is an int in the next integer register on x86-64 and arm64 Linux alike, so a
    // fixed three-argument signature calls it correctly there (.NET's own System.Native wraps it only for Apple).
    [LibraryImport("libc", SetLastError = true)]
    private static partial int open(byte* path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, byte* buffer, nint count);

    [LibraryImport("libc")]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int flock(int fd, int operation);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fchmod(int fd, uint mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int rename(byte* from, byte* to);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int unlink(byte* path);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int link(byte* from, byte* to);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint readlink(byte* path, byte* buffer, nint size);

    [LibraryImport("libc")]
    private static partial uint geteuid();

    /// <summary>This process's effective user ID.</summary>
    public static uint EffectiveUid() => geteuid();

    [LibraryImport("libc", SetLastError = true)]
    private static partial int openat(int directory, byte* path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint readlinkat(int directory, byte* path, byte* buffer, nint size);

    // glibc 2.33+ exports stat(2) itself (earlier ones only __xstat); Debian 12 has 2.36.
    [LibraryImport("libc", SetLastError = true)]
    private static partial int stat(byte* path, byte* buffer);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int lstat(byte* path, byte* buffer);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fstat(int fd, byte* buffer);

    [LibraryImport("libc", SetLastError = true)]
    private static partial byte* realpath(byte* path, byte* resolved);

    [LibraryImport("libc")]
    private static partial void free(byte* pointer);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int chown(byte* path, uint owner, uint group);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int chmod(byte* path, uint mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int command, int argument);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint opendir(byte* path);

    [LibraryImport("libc", SetLastError = true)]
    private static partial byte* readdir(nint dir);

    [LibraryImport("libc")]
    private static partial int closedir(nint dir);

    /// <summary>Offset of d_name in Linux's struct dirent (d_ino 8, d_off 8, d_reclen 2, d_type 1).</summary>
    private const int DirentNameOffset = 19;

    /// <summary>Up to <paramref name="buffer"/>.Length bytes of a file; -1 when it cannot be opened or read.</summary>
    public static int ReadFile(string path, Span<byte> buffer)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        fixed (byte* p = CString(path, cpath))
        fixed (byte* b = buffer)
        {
            // Non-blocking: a FIFO where an attribute should be (a hostile tree) must not hang the read; sysfs and
            // regular files ignore the flag.
            int fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
            if (fd < 0) return -1;
            try
            {
                nint got = read(fd, b, buffer.Length);
                return got < 0 ? -1 : (int)got;
            }
            finally { close(fd); }
        }
    }

    /// <summary>
    /// Opens a directory for reads relative to it (<see cref="ReadFileAt"/>, <see cref="ReadLinkAt"/>); -1 when it
    /// cannot be opened. Reading thousands of sysfs attributes by full path makes the kernel walk the same leading
    /// components (and the device's symlink) for every one of them; relative to an open directory it walks only the rest.
    /// </summary>
    public static int OpenDirectory(string path)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        fixed (byte* p = CString(path, cpath)) return open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    }

    public static void Close(int fd) => close(fd);

    /// <summary>"entry/name" under an open directory as a C string: no string is made for the path.</summary>
    private static Span<byte> CPath(ReadOnlySpan<char> entry, ReadOnlySpan<char> name, Span<byte> buffer)
    {
        int n = Encoding.UTF8.GetBytes(entry, buffer);
        buffer[n++] = (byte)'/';
        n += Encoding.UTF8.GetBytes(name, buffer[n..]);
        buffer[n] = 0;
        return buffer;
    }

    /// <summary>As <see cref="ReadFile"/>, for <paramref name="entry"/>/<paramref name="name"/> under an open directory: one open, one read.</summary>
    public static int ReadFileAt(int directory, ReadOnlySpan<char> entry, ReadOnlySpan<char> name, Span<byte> buffer)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(entry.Length + name.Length) + 2];
        fixed (byte* p = CPath(entry, name, cpath))
        fixed (byte* b = buffer)
        {
            // Non-blocking, as ReadFile: a FIFO where an attribute should be must not hang the read.
            int fd = openat(directory, p, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
            if (fd < 0) return -1;
            nint got = read(fd, b, buffer.Length);
            close(fd);
            return got < 0 ? -1 : (int)got;
        }
    }

    /// <summary>As <see cref="ReadLink"/>, for <paramref name="entry"/>/<paramref name="name"/> under an open directory; the target's length, -1 when not a symlink.</summary>
    public static int ReadLinkAt(int directory, ReadOnlySpan<char> entry, ReadOnlySpan<char> name, Span<byte> target)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(entry.Length + name.Length) + 2];
        fixed (byte* p = CPath(entry, name, cpath))
        fixed (byte* t = target)
            return (int)readlinkat(directory, p, t, target.Length);
    }

    /// <summary>No procfs or sysfs file Passthru reads comes near this; /dev/zero in its place would never end.</summary>
    public const int MaxReadAll = 16 << 20;

    /// <summary>
    /// A whole file (procfs files report size 0, so read until the end), at most <paramref name="max"/> bytes (no more
    /// than <see cref="MaxReadAll"/>); null when it cannot be read. No read asks for more than is left of
    /// <paramref name="max"/>: a device's config space is read from the device a dword at a time for as many bytes as
    /// asked (in a VM, each dword an exit to the hypervisor).
    /// </summary>
    public static byte[]? ReadAll(string path, int max = MaxReadAll)
    {
        max = Math.Clamp(max, 0, MaxReadAll);
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        int fd;
        fixed (byte* p = CString(path, cpath)) fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
        if (fd < 0) return null;
        try
        {
            // Most files read this way (the command line, mounts, routes, modprobe.d) fit in a page: read into the
            // stack first, so each costs one exact-size array, not a fresh 16 KiB one that the GC clears and the
            // kernel faults in page by page (what a short-lived command pays for every allocation). A larger file
            // moves to a heap buffer that doubles as it fills.
            Span<byte> buffer = stackalloc byte[4096];
            int total = 0;
            while (true)
            {
                if (total >= max) return buffer[..total].ToArray();
                if (total == buffer.Length)
                {
                    var larger = new byte[Math.Min(Math.Max(buffer.Length * 2, 16384), max)];
                    buffer.CopyTo(larger);
                    buffer = larger;
                }
                nint got;
                fixed (byte* b = buffer) got = read(fd, b + total, Math.Min(buffer.Length, max) - total);
                if (got < 0 && Marshal.GetLastPInvokeError() == EINTR) continue;
                if (got < 0) return null;
                if (got == 0) return buffer[..total].ToArray();
                total += (int)got;
            }
        }
        finally { close(fd); }
    }

    /// <summary>A symlink's target, or null when the path is not a symlink.</summary>
    public static string? ReadLink(string path)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        Span<byte> target = stackalloc byte[4096];
        fixed (byte* p = CString(path, cpath))
        fixed (byte* t = target)
        {
            nint len = readlink(p, t, target.Length);
            return len < 0 ? null : Encoding.UTF8.GetString(target[..(int)len]);
        }
    }

    /// <summary>The names in a directory, "." and ".." left out, in no particular order; null when it cannot be read.</summary>
    public static List<string>? ListDirectory(string path)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        nint dir;
        fixed (byte* p = CString(path, cpath)) dir = opendir(p);
        if (dir == 0) return null;
        try
        {
            var names = new List<string>();
            byte* entry;
            while ((entry = readdir(dir)) != null)
            {
                var name = MemoryMarshal.CreateReadOnlySpanFromNullTerminated(entry + DirentNameOffset);
                if (name is [(byte)'.'] or [(byte)'.', (byte)'.']) continue;
                names.Add(Encoding.UTF8.GetString(name));
            }
            return names;
        }
        finally { closedir(dir); }
    }

    /// <summary>
    /// Opens (creating it 0600 if needed) and exclusively flock(2)s a lock file; null when another process holds it.
    /// The handle closes on exec, so a program started while it is held (modprobe) does not keep the lock.
    /// </summary>
    public static SafeFileHandle? TryLock(string path)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        int fd;
        fixed (byte* p = CString(path, cpath)) fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0x180 /* 0600 */);
        if (fd < 0) throw Error($"cannot open {path}");
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) return new SafeFileHandle(fd, ownsHandle: true);
        int errno = Marshal.GetLastPInvokeError();
        close(fd);
        if (errno == EWOULDBLOCK) return null;
        throw new IOException($"cannot lock {path}: {Marshal.GetPInvokeErrorMessage(errno)}");
    }

    /// <summary>
    /// Replaces a file atomically and durably: <see cref="WriteTemporary"/> beside it, renamed over it, the directory
    /// fsynced. On any failure the temporary file is removed and the file is as it was.
    /// </summary>
    public static void ReplaceFile(string path, ReadOnlySpan<byte> content, UnixFileMode mode)
    {
        var temp = WriteTemporary(path, content, mode);
        try { Rename(temp, path); }
        catch (IOException)
        {
            Unlink(temp);
            throw;
        }
        SyncDirectory(Path.GetDirectoryName(path)!);
    }

    /// <summary>
    /// Writes a hidden temporary file beside <paramref name="path"/> with exactly <paramref name="mode"/> (created so,
    /// so it is never readable by others with the content, then set again, as the umask may have narrowed it), and
    /// fsyncs it; returns its path. Nothing at <paramref name="path"/> changes. On failure nothing is left behind.
    /// </summary>
    public static string WriteTemporary(string path, ReadOnlySpan<byte> content, UnixFileMode mode, string tag = "")
    {
        var temp = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.passthru-{Environment.ProcessId}{tag}.tmp");
        Span<byte> ctemp = stackalloc byte[Encoding.UTF8.GetMaxByteCount(temp.Length) + 1];
        fixed (byte* t = CString(temp, ctemp))
        fixed (byte* c = content)
        {
            int fd = open(t, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (int)mode);
            if (fd < 0) throw Error($"cannot create {temp}");
            try
            {
                if (fchmod(fd, (uint)mode) != 0) throw Error($"cannot set the mode of {temp}");
                if (WriteAll(fd, c, content.Length) != 0) throw Error($"cannot write {temp}");
                // Before the rename: otherwise a crash could leave the new name pointing at a file whose content never
                // reached the disk (an empty journal, which would lose what restore must give back).
                if (fsync(fd) != 0) throw Error($"cannot fsync {temp}");
            }
            catch (IOException)
            {
                close(fd);
                unlink(t);
                throw;
            }
            close(fd);
        }
        return temp;
    }

    /// <summary>rename(2): atomic, and replaces <paramref name="to"/> if it exists.</summary>
    public static void Rename(string from, string to)
    {
        Span<byte> cfrom = stackalloc byte[Encoding.UTF8.GetMaxByteCount(from.Length) + 1];
        Span<byte> cto = stackalloc byte[Encoding.UTF8.GetMaxByteCount(to.Length) + 1];
        fixed (byte* f = CString(from, cfrom))
        fixed (byte* t = CString(to, cto))
            if (rename(f, t) != 0) throw Error($"cannot rename {from} to {to}");
    }

    /// <summary>link(2): a second name for <paramref name="from"/>; false when <paramref name="to"/> exists already (EEXIST).</summary>
    public static bool Link(string from, string to)
    {
        Span<byte> cfrom = stackalloc byte[Encoding.UTF8.GetMaxByteCount(from.Length) + 1];
        Span<byte> cto = stackalloc byte[Encoding.UTF8.GetMaxByteCount(to.Length) + 1];
        fixed (byte* f = CString(from, cfrom))
        fixed (byte* t = CString(to, cto))
        {
            if (link(f, t) == 0) return true;
            if (Marshal.GetLastPInvokeError() == EEXIST) return false;
            throw Error($"cannot create {to}");
        }
    }

    /// <summary>Removes a file; false when it could not be removed (already gone, say).</summary>
    public static bool Unlink(string path)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        fixed (byte* p = CString(path, cpath)) return unlink(p) == 0;
    }

    /// <summary>
    /// fsyncs a directory, so that a rename or removal in it survives a crash. Best effort: some file systems refuse
    /// to fsync a directory, and the rename itself is atomic either way.
    /// </summary>
    public static void SyncDirectory(string directory)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(directory.Length) + 1];
        int fd;
        fixed (byte* p = CString(directory, cpath)) fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (fd < 0) return;
        // The rename (or removal) itself is a change of the directory: without this a crash could bring back the old
        // journal (devices already given back, given back again) or lose the new one (devices bound, nothing to restore).
        fsync(fd);
        close(fd);
    }

    /// <summary>Writes into an existing file in place (a character device or a FIFO): no create, no truncate, no rename.</summary>
    public static void WriteInPlace(string path, ReadOnlySpan<byte> content)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        int fd;
        fixed (byte* p = CString(path, cpath)) fd = open(p, O_WRONLY | O_CLOEXEC, 0);
        if (fd < 0) throw Error($"cannot open {path}");
        try
        {
            fixed (byte* c = content)
                if (WriteAll(fd, c, content.Length) != 0) throw Error($"cannot write {path}");
        }
        finally { close(fd); }
    }

    /// <summary>
    /// A sysfs attribute written as the shell's `echo VALUE > FILE` does: open (truncating, which sysfs ignores and a
    /// plain file in a captured tree needs), one write(2), close. Three system calls where a FileStream made eight
    /// (fstatfs, two flocks for its sharing emulation, ftruncate, lseek): a bind and a restore write three each.
    /// Failures are the runtime's own exceptions: an open that fails is retried through File.OpenHandle, which throws
    /// what it always threw; a write the kernel refuses is an IOException carrying the errno (Shown.Error words it).
    /// </summary>
    public static void WriteAttribute(string path, ReadOnlySpan<byte> content)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        int fd;
        fixed (byte* p = CString(path, cpath)) fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC, 0);
        if (fd < 0)
        {
            using var handle = File.OpenHandle(path, FileMode.Truncate, FileAccess.Write);
            RandomAccess.Write(handle, content, 0);
            return;
        }
        try
        {
            fixed (byte* c = content)
            {
                nint n;
                do n = write(fd, c, content.Length);
                while (n < 0 && Marshal.GetLastPInvokeError() == EINTR);
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    throw errno is EACCES or EPERM
                        ? new UnauthorizedAccessException($"Access to the path '{path}' is denied.")
                        : new IOException($"{Marshal.GetPInvokeErrorMessage(errno)} : '{path}'", errno);
                }
            }
        }
        finally { close(fd); }
    }

    /// <summary>
    /// Writes all of <paramref name="content"/> to an open descriptor (the process's stdout); false when the reader is
    /// gone (EPIPE: `passthru list | head`), as Console's own stream takes it: the rest is dropped. Any other failure
    /// (a full disk, a closed descriptor) is an IOException, which the command line reports as lost output.
    /// </summary>
    public static bool WriteDescriptor(int fd, ReadOnlySpan<byte> content)
    {
        int errno;
        fixed (byte* c = content) errno = WriteAll(fd, c, content.Length);
        if (errno == EPIPE) return false;
        return errno == 0 ? true : throw new IOException($"cannot write to descriptor {fd} (errno {errno})");
    }

    /// <summary>
    /// write(2) until all <paramref name="length"/> bytes are written: 0, or the errno of the write that failed (still
    /// the last error, for <see cref="Error"/>). Interrupted writes are retried, and a descriptor someone left
    /// non-blocking (a shared terminal) is waited on, as a blocking write would wait.
    /// </summary>
    private static int WriteAll(int fd, byte* content, int length)
    {
        for (int done = 0; done < length;)
        {
            nint n = write(fd, content + done, length - done);
            if (n >= 0) { done += (int)n; continue; }
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { Thread.Sleep(1); continue; }
            return errno;
        }
        return 0;
    }

    /// <summary>What a path is (stat(2)'s S_IFMT bits); Symlink only from <see cref="LinkKindOf"/>, which does not follow links.</summary>
    public enum FileKind { Missing, Regular, Directory, CharacterDevice, BlockDevice, Fifo, Socket, Symlink, Other }

    /// <summary>A kind of file in words for a message: "a directory", "a FIFO", ...</summary>
    public static string Describe(FileKind kind) => kind switch
    {
        FileKind.Regular => "a regular file",
        FileKind.Directory => "a directory",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        FileKind.Fifo => "a FIFO",
        FileKind.Socket => "a socket",
        FileKind.Symlink => "a symlink",
        FileKind.Missing => "missing",
        _ => "a special file",
    };

    /// <summary>
    /// A regular file's bytes, at most <paramref name="max"/> of them; null when it is larger (damage, not input).
    /// Throws IOException or UnauthorizedAccessException for the caller to word.
    /// </summary>
    /// <remarks>
    /// open, fstat, read, close: a FileStream also took and dropped a shared flock and asked fstat three times, and its
    /// machinery is code restore runs once, the journal being the one file it reads (bench/README.md, "The ninth pass").
    /// </remarks>
    public static byte[]? ReadCapped(string path, long max)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        int fd;
        // Non-blocking: a FIFO put in the file's place after the caller looked must not hang the read.
        fixed (byte* p = CString(path, cpath)) fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
        if (fd < 0) throw OpenError(path);
        try
        {
            byte* st = stackalloc byte[256];
            if (fstat(fd, st) != 0) throw Error($"cannot read {path}");
            long size = *(long*)(st + StSizeOffset);
            if (size > max) return null;
            var bytes = new byte[size];
            int total = 0;
            while (total < bytes.Length)
            {
                nint got;
                fixed (byte* b = bytes) got = read(fd, b + total, bytes.Length - total);
                if (got < 0 && Marshal.GetLastPInvokeError() == EINTR) continue;
                if (got < 0) throw Error($"cannot read {path}");
                if (got == 0) return bytes[..total]; // shortened while read: what there is
                total += (int)got;
            }
            return bytes;
        }
        finally { close(fd); }
    }

    /// <summary>st_size's offset, the same in x86-64's struct stat and the generic (arm64) one.</summary>
    private const int StSizeOffset = 48;

    /// <summary>The exception .NET's own file APIs throw for open(2)'s errno, which callers word.</summary>
    private static Exception OpenError(string path) => Marshal.GetLastPInvokeError() switch
    {
        ENOENT => new FileNotFoundException($"no such file: {path}", path),
        EACCES or EPERM => new UnauthorizedAccessException($"permission denied: {path}"),
        _ => Error($"cannot open {path}"),
    };

    /// <summary>Owner, group and permission bits (with setuid/setgid/sticky) of a path after following symlinks; null when it does not exist.</summary>
    public static (uint Uid, uint Gid, uint Mode)? Owner(string path) =>
        Stat(path) is var (mode, uid, gid) ? (uid, gid, mode & 0xFFF) : null;

    /// <summary>
    /// st_mode, st_uid and st_gid of a path after following symlinks (stat(2)), or of the path itself with
    /// <paramref name="follow"/> false (lstat(2)); null when it (or its target) does not exist. struct stat: x86-64 has
    /// st_dev, st_ino, st_nlink (8 bytes each), then st_mode, st_uid, st_gid (4 each); the generic layout of arm64 and
    /// others has st_dev, st_ino (8 each), st_mode, st_nlink, st_uid, st_gid (4 each).
    /// </summary>
    private static (uint Mode, uint Uid, uint Gid)? Stat(string path, bool follow = true)
    {
        bool x64 = RuntimeInformation.ProcessArchitecture == Architecture.X64;
        int modeOffset = x64 ? 24 : 16, uidOffset = x64 ? 28 : 24;
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        byte* buffer = stackalloc byte[256];
        int rc;
        fixed (byte* p = CString(path, cpath)) rc = follow ? stat(p, buffer) : lstat(p, buffer);
        if (rc != 0) return null;
        return (*(uint*)(buffer + modeOffset), *(uint*)(buffer + uidOffset), *(uint*)(buffer + uidOffset + 4));
    }

    /// <summary>
    /// What identifies a file's content without reading it, after following symlinks: device, inode, size, and the
    /// modification and status-change times in nanoseconds; null when it does not exist. ctime cannot be set back by
    /// anyone (utimensat sets mtime only), so a replaced or rewritten file shows a new identity. st_ino at 8, st_size
    /// at 48 and st_mtim/st_ctim at 88/104 are the same in x86-64's struct stat and the generic (arm64) one.
    /// </summary>
    public static (ulong Device, ulong Inode, long Size, long Modified, long Changed)? Identity(string path)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        byte* buffer = stackalloc byte[256];
        int rc;
        fixed (byte* p = CString(path, cpath)) rc = stat(p, buffer);
        if (rc != 0) return null;
        static long Nanos(byte* at) => *(long*)at * 1_000_000_000 + *(long*)(at + 8);
        return (*(ulong*)buffer, *(ulong*)(buffer + 8), *(long*)(buffer + StSizeOffset), Nanos(buffer + 88), Nanos(buffer + 104));
    }

    /// <summary>The path with every symlink resolved (realpath(3)); null when a part of it does not exist.</summary>
    public static string? RealPath(string path)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        byte* resolved;
        fixed (byte* p = CString(path, cpath)) resolved = realpath(p, null);
        if (resolved is null) return null;
        try { return Marshal.PtrToStringUTF8((nint)resolved); }
        finally { free(resolved); }
    }

    /// <summary>chown(2) then chmod(2) of a path (following symlinks); IOException with the errno's words when refused.</summary>
    public static void SetOwner(string path, uint uid, uint gid, uint mode)
    {
        Span<byte> cpath = stackalloc byte[Encoding.UTF8.GetMaxByteCount(path.Length) + 1];
        fixed (byte* p = CString(path, cpath))
        {
            if (chown(p, uid, gid) != 0) throw Error($"cannot change the owner of {path}");
            if (chmod(p, mode) != 0) throw Error($"cannot change the mode of {path}");
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int bind(int fd, byte* address, int length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int listen(int fd, int backlog);

    /// <summary>
    /// A Unix stream socket listening at <paramref name="path"/> (one pending connection), with <paramref name="mode"/>
    /// set before it listens, that a child process inherits (no FD_CLOEXEC). Straight from libc: .NET's Socket starts
    /// its socket engine's thread and probes three more sockets (IPv6, IPv4, Unix datagrams) on first use, in every
    /// run, for a descriptor that only QEMU ever accepts on. Closing the handle leaves the file; the caller removes it.
    /// </summary>
    public static SafeFileHandle ListenUnix(string path, uint mode)
    {
        const int AF_UNIX = 1, SOCK_STREAM = 1, SunPathOffset = 2, SunPathLength = 108;
        Span<byte> address = stackalloc byte[SunPathOffset + SunPathLength];
        address.Clear();
        address[0] = AF_UNIX; // sa_family_t, little-endian on every architecture .NET runs Linux on
        int n = Encoding.UTF8.GetByteCount(path);
        if (n >= SunPathLength) throw new IOException($"{path} is longer than a Unix socket path may be ({SunPathLength - 1} bytes)");
        Encoding.UTF8.GetBytes(path, address[SunPathOffset..]);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0); // (no SOCK_CLOEXEC: QEMU inherits it)
        if (fd < 0) throw Error($"cannot make a socket for {path}");
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        fixed (byte* a = address)
        {
            // (sun_path, NUL-terminated by the cleared buffer, is the path chmod needs too.)
            if (bind(fd, a, SunPathOffset + n + 1) != 0) { var e = Error($"cannot bind a socket to {path}"); handle.Dispose(); throw e; }
            if (chmod(a + SunPathOffset, mode) != 0 || listen(fd, 1) != 0) { var e = Error($"cannot listen on {path}"); handle.Dispose(); throw e; }
        }
        return handle;
    }

    /// <summary>
    /// Whether descriptor <paramref name="fd"/> is open without FD_CLOEXEC. For 1 and 2, whether it is the one this
    /// process was given by its parent: everything Passthru and the runtime open is close-on-exec, and so is the
    /// /dev/null <see cref="CoverClosedStandardDescriptors"/> puts there when the parent gave none (only the cover under
    /// 0 is inheritable, on purpose). A child must never take such a 1 for its console.
    /// </summary>
    public static bool IsInherited(int fd)
    {
        const int F_GETFD = 1, FD_CLOEXEC = 1;
        int flags = fcntl(fd, F_GETFD, 0);
        return flags >= 0 && (flags & FD_CLOEXEC) == 0;
    }

    /// <summary>
    /// Puts /dev/null under any of descriptors 0, 1 and 2 that this process was started without, so that no file it
    /// opens later lands there: a process started with stdout closed (`passthru bind ... >&- <&-`) would otherwise get
    /// its lock file or its journal's temporary file as 1 or 2, and print into it. Read-only under 0 and 1 (a print to
    /// stdout still fails, and the command says in one line that it could not write), write-only under 2 (messages
    /// vanish, as they would into a closed stderr). 1 and 2 are close-on-exec: no child takes them for its console
    /// (run then pipes QEMU's output through itself). 0 is inherited: a child started with stdin closed would open its
    /// own first file there, and QEMU's -nographic console reads its stdin, so a disk image opened as 0 would be typed
    /// into the guest's serial line and QEMU's monitor. The runtime's start closes every file it opens before Main
    /// (strace; its /dev/urandom stays open but is opened after this). Best effort: without /dev/null (a bare chroot) the
    /// descriptors stay closed.
    /// </summary>
    public static void CoverClosedStandardDescriptors()
    {
        const int F_GETFD = 1;
        for (int fd = 0; fd <= 2; fd++)
        {
            if (fcntl(fd, F_GETFD, 0) >= 0) continue;
            // open(2) returns the lowest free descriptor: this one, since those below it are open by now.
            fixed (byte* p = "/dev/null\0"u8)
            {
                int got = open(p, fd switch { 0 => O_RDONLY, 1 => O_RDONLY | O_CLOEXEC, _ => O_WRONLY | O_CLOEXEC }, 0);
                if (got >= 0 && got != fd) { close(got); return; }
            }
        }
    }

    /// <summary>The kind of file a path names after following symlinks; Missing when it (or its target) does not exist.</summary>
    public static FileKind KindOf(string path) => Stat(path) is var (st, _, _) ? Kind(st) : FileKind.Missing;

    /// <summary>The kind of file a path names itself (lstat(2)): Symlink for a symlink; Missing when there is none.</summary>
    public static FileKind LinkKindOf(string path) => Stat(path, follow: false) is var (st, _, _) ? Kind(st) : FileKind.Missing;

    private static FileKind Kind(uint st)
    {
        uint mode = st & 0xF000;
        return mode switch
        {
            0xA000 => FileKind.Symlink,
            0x8000 => FileKind.Regular,
            0x4000 => FileKind.Directory,
            0x2000 => FileKind.CharacterDevice,
            0x6000 => FileKind.BlockDevice,
            0x1000 => FileKind.Fifo,
            0xC000 => FileKind.Socket,
            _ => FileKind.Other,
        };
    }

    private static IOException Error(string what) => new($"{what}: {Marshal.GetLastPInvokeErrorMessage()}");

    private static Span<byte> CString(string s, Span<byte> buffer)
    {
        int n = Encoding.UTF8.GetBytes(s, buffer);
        buffer[n] = 0;
        return buffer;
    }
}
