using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Passthru.Host;

/// <summary>
/// Who a child runs as, dropped to between its fork and its exec: setpriv's --reuid/--regid/--groups (or
/// --clear-groups), --inh-caps=-all, --bounding-set=-all and --no-new-privs, done by spawn.c beside this file.
/// </summary>
/// <param name="Wrapper">How many leading arguments of the argument vector are the setpriv command that does the same
/// drop (through "--"): run without them when the drop is done in-process, with them where spawn.c is not linked in.</param>
public sealed record ChildCredentials(uint Uid, uint Gid, IReadOnlyList<uint> Groups, int Wrapper);

/// <summary>
/// A program started from an argument vector (never a shell), with the standard descriptors it is asked to have piped
/// to this process. In the published binary it is started by spawn.c (linked in by src/Passthru/Passthru.csproj):
/// one vfork and one exec, the unprivileged account dropped to in the child, its end waited for on a pidfd. Where that
/// code is absent (the tests' in-process runs under the JIT), by .NET's <see cref="Process"/>, with setpriv in front
/// for the drop. .NET's Process costs QEMU's every start a SIGCHLD thread (whose handler loads the time zone as the
/// child exits), a socket engine thread for reading its pipes, and setpriv's exec: bench/README.md, "The eleventh pass".
/// </summary>
public sealed partial class ChildProcess : IDisposable
{
    private readonly Process? _process;
    private readonly int _pid;
    private SafeFileHandle? _pidfd;
    private int? _exitCode;
    private readonly object _reap = new();

    public int Id => _process?.Id ?? _pid;
    /// <summary>The child's stdin (when asked for), stdout and stderr (when piped); null when inherited.</summary>
    public Stream? StandardInput { get; }
    public Stream? StandardOutput { get; }
    public Stream? StandardError { get; }

    private ChildProcess(Process process)
    {
        _process = process;
        StandardInput = process.StartInfo.RedirectStandardInput ? process.StandardInput.BaseStream : null;
        StandardOutput = process.StartInfo.RedirectStandardOutput ? process.StandardOutput.BaseStream : null;
        StandardError = process.StartInfo.RedirectStandardError ? process.StandardError.BaseStream : null;
    }

    private ChildProcess(int pid, Stream? stdin, Stream? stdout, Stream? stderr)
    {
        _pid = pid;
        StandardInput = stdin;
        StandardOutput = stdout;
        StandardError = stderr;
        // A pidfd becomes readable when the child exits: waiting with a timeout without a thread or SIGCHLD handling.
        // (Linux 5.3; before that, WaitForExit polls waitpid.)
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd >= 0) _pidfd = new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>
    /// Starts <paramref name="argv"/>[0]. With <paramref name="runAs"/>, as that account (its wrapper's arguments
    /// skipped when the drop is done here). Throws <see cref="IOException"/> when it cannot start, naming the step.
    /// </summary>
    public static ChildProcess Start(IReadOnlyList<string> argv, ChildCredentials? runAs, bool pipeInput, bool pipeOutput, bool pipeError)
    {
        if (DropsInProcess) return StartNative(runAs is null ? argv : argv.Skip(runAs.Wrapper).ToList(), runAs, pipeInput, pipeOutput, pipeError);
        var start = new ProcessStartInfo(argv[0]) { UseShellExecute = false, RedirectStandardInput = pipeInput, RedirectStandardOutput = pipeOutput, RedirectStandardError = pipeError };
        foreach (var a in argv.Skip(1)) start.ArgumentList.Add(a);
        try { return new ChildProcess(Process.Start(start) ?? throw new IOException($"could not start {argv[0]}")); }
        catch (System.ComponentModel.Win32Exception e) { throw new IOException($"could not start {argv[0]}: {e.Message}", e); }
    }

    private static unsafe ChildProcess StartNative(IReadOnlyList<string> argv, ChildCredentials? runAs, bool pipeInput, bool pipeOutput, bool pipeError)
    {
        var strings = new nint[argv.Count + 1];
        var pipes = new List<SafeFileHandle>();
        try
        {
            for (int i = 0; i < argv.Count; i++) strings[i] = Marshal.StringToCoTaskMemUTF8(argv[i]);
            // Each pipe close-on-exec at both ends: the child gets its end as 0, 1 or 2 (dup2 makes that copy
            // inheritable), and no other child started meanwhile inherits either end.
            (SafeFileHandle Read, SafeFileHandle Write)? Pipe(bool wanted)
            {
                if (!wanted) return null;
                int* fds = stackalloc int[2];
                if (pipe2(fds, O_CLOEXEC) != 0) throw new IOException($"cannot make a pipe for {argv[0]}: {Marshal.GetLastPInvokeErrorMessage()}");
                var p = (new SafeFileHandle(fds[0], ownsHandle: true), new SafeFileHandle(fds[1], ownsHandle: true));
                pipes.Add(p.Item1);
                pipes.Add(p.Item2);
                return p;
            }
            var input = Pipe(pipeInput);
            var output = Pipe(pipeOutput);
            var error = Pipe(pipeError);
            var groups = runAs?.Groups.ToArray() ?? [];
            int pid, step, errno;
            fixed (nint* v = strings)
            fixed (uint* g = groups)
            {
                pid = passthru_spawn(strings[0], v, Fd(input?.Read), Fd(output?.Write), Fd(error?.Write), runAs is null ? 0 : 1,
                    runAs?.Uid ?? 0, runAs?.Gid ?? 0, g, groups.Length, &step, &errno);
            }
            if (pid < 0) throw new IOException($"could not start {argv[0]}: {Failure(step)}{Marshal.GetPInvokeErrorMessage(errno)}");
            // The child's ends are the child's: closed here, so that its exit is this side's end of file.
            input?.Read.Dispose();
            output?.Write.Dispose();
            error?.Write.Dispose();
            return new ChildProcess(pid,
                input is var (_, w) ? new FileStream(w, FileAccess.Write, bufferSize: 0) : null,
                output is var (r, _) ? new FileStream(r, FileAccess.Read, bufferSize: 0) : null,
                error is var (e, _) ? new FileStream(e, FileAccess.Read, bufferSize: 0) : null);
        }
        catch
        {
            foreach (var p in pipes) p.Dispose();
            throw;
        }
        finally
        {
            foreach (var s in strings) if (s != 0) Marshal.FreeCoTaskMem(s);
        }
    }

    private static int Fd(SafeFileHandle? h) => h is null ? -1 : (int)h.DangerousGetHandle();

    /// <summary>The step of spawn.c's that failed, as the words before its errno.</summary>
    private static string Failure(int step) => step switch
    {
        1 => "placing its standard descriptors: ",
        2 => "dropping the capability bounding set (setpriv --bounding-set=-all): ",
        3 => "setting its supplementary groups: ",
        4 => "setting its group id: ",
        5 => "setting its user id: ",
        6 => "clearing its capabilities: ",
        7 => "clearing its ambient capabilities: ",
        8 => "setting no_new_privs: ",
        _ => "",
    };

    public bool HasExited => WaitForExit(TimeSpan.Zero);

    /// <summary>
    /// Whether a child with <see cref="ChildCredentials"/> drops to them itself (spawn.c is linked in), so that its
    /// argument vector is run without the setpriv wrapper.
    /// </summary>
    public static bool DropsInProcess => s_native ??= Linked();
    private static bool? s_native;

    private static bool Linked()
    {
        try { return passthru_spawn_linked() == 1; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    /// <summary>The exit status, as a shell gives it: the code, or 128 + the signal that ended it.</summary>
    public int ExitCode => _process?.ExitCode ?? _exitCode ?? throw new InvalidOperationException("the child has not exited");

    /// <summary>Waits up to <paramref name="timeout"/> (infinite: -1 ms) for the child's end; true once it ended (and was reaped).</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (_process is not null) return _process.WaitForExit(timeout);
        lock (_reap)
        {
            if (_exitCode is not null) return true;
            int ms = timeout == Timeout.InfiniteTimeSpan ? -1 : (int)Math.Min(timeout.TotalMilliseconds, int.MaxValue);
            if (ms == 0) return Reap(block: false);
            if (_pidfd is not null)
            {
                // Readable once the child is a zombie; EINTR (a signal to this thread) just ends this wait early.
                var poll = new PollFd { Fd = (int)_pidfd.DangerousGetHandle(), Events = POLLIN };
                return poll_(ref poll, 1, ms) > 0 ? Reap(block: true) : Reap(block: false);
            }
            var until = Environment.TickCount64 + ms;
            while (true)
            {
                if (Reap(block: false)) return true;
                if (ms >= 0 && Environment.TickCount64 >= until) return false;
                Thread.Sleep(10);
            }
        }
    }

    /// <summary>waitpid for this child: true with the exit status kept once it has ended.</summary>
    private bool Reap(bool block)
    {
        while (true)
        {
            int r = waitpid(_pid, out int status, block ? 0 : WNOHANG);
            if (r == _pid)
            {
                int signal = status & 0x7f;
                _exitCode = signal == 0 ? (status >> 8) & 0xff : 128 + signal;
                _pidfd?.Dispose();
                return true;
            }
            if (r == 0) return false;
            if (Marshal.GetLastPInvokeError() == EINTR) continue;
            // ECHILD: reaped by someone else (a SIGCHLD handler that reaps every child); its status is lost.
            throw new IOException($"cannot wait for process {_pid}: {Marshal.GetLastPInvokeErrorMessage()}");
        }
    }

    /// <summary>Asks the child to end (SIGTERM) unless it was already reaped (its pid may be another's by then).</summary>
    public void Terminate()
    {
        lock (_reap)
        {
            if (_process is not null) { if (!_process.HasExited) kill(_process.Id, SIGTERM); return; }
            if (_exitCode is null) kill(_pid, SIGTERM);
        }
    }

    /// <summary>
    /// SIGKILL to the child and every process descended from it, as .NET's Process.Kill(entireProcessTree) does: a QEMU
    /// without its sandbox (--as-root, or a build without seccomp) may have started helpers of its own.
    /// </summary>
    public void KillTree()
    {
        lock (_reap)
        {
            if (_process is not null)
            {
                try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } // (ended meanwhile)
                return;
            }
            if (_exitCode is not null) return;
            kill(_pid, SIGSTOP); // no new children while the tree is read
            foreach (var pid in Descendants(_pid)) kill(pid, SIGKILL);
            kill(_pid, SIGKILL);
        }
    }

    /// <summary>Every process below <paramref name="root"/>, by the parent pid each /proc/PID/stat names.</summary>
    private static List<int> Descendants(int root)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var dir in System.IO.Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(System.IO.Path.GetFileName(dir), out int pid) || NativeFiles.ReadAll(dir + "/stat") is not { } stat) continue;
            // "PID (COMM) STATE PPID ...": the command may hold spaces and parentheses, so fields count from the last ')'.
            var fields = System.Text.Encoding.ASCII.GetString(stat.AsSpan(stat.AsSpan().LastIndexOf((byte)')') + 1)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length > 1 && int.TryParse(fields[1], out int parent))
                (children.TryGetValue(parent, out var list) ? list : children[parent] = []).Add(pid);
        }
        var found = new List<int>();
        for (var queue = new Queue<int>([root]); queue.TryDequeue(out int pid);)
            foreach (var child in children.GetValueOrDefault(pid) ?? [])
            {
                found.Add(child);
                queue.Enqueue(child);
            }
        return found;
    }

    public void Dispose()
    {
        StandardInput?.Dispose();
        StandardOutput?.Dispose();
        StandardError?.Dispose();
        _pidfd?.Dispose();
        _process?.Dispose();
    }

    private const int O_CLOEXEC = 0x80000, WNOHANG = 1, EINTR = 4, SIGKILL = 9, SIGTERM = 15, SIGSTOP = 19;
    private const short POLLIN = 1;
    private const nint SYS_pidfd_open = 434; // the same number on x86-64 and arm64 (new system calls share one table)

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd { public int Fd; public short Events; public short Revents; }

    [LibraryImport("passthru-native")]
    private static partial int passthru_spawn_linked();

    [LibraryImport("passthru-native", EntryPoint = "passthru_spawn")]
    private static unsafe partial int passthru_spawn(nint path, nint* argv, int stdin, int stdout, int stderr, int dropPrivileges,
        uint uid, uint gid, uint* groups, int groupCount, int* step, int* error);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int pipe2(int* fds, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint syscall(nint number, int pid, int flags);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int poll_(ref PollFd fds, nuint count, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, out int status, int options);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
