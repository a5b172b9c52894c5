using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Passthru.Host;

namespace Passthru.Launch;

/// <summary>How a guest run ended.</summary>
/// <remarks>Completed: a --script ran to its end and the guest was stopped.</remarks>
public enum GuestEnd { Exited, Matched, TimedOut, Interrupted, Completed }

/// <param name="HeldStderr">QEMU's stderr when it ended before the guest printed anything (held back, not shown yet,
/// so that an explanation can come before it); null once the console started, when it was shown as it came.</param>
public sealed record GuestOutcome(GuestEnd End, int ExitCode, IReadOnlyList<string> LastLines, TimeSpan Elapsed, string? HeldStderr = null,
    ScriptResult? Script = null);

/// <summary>What to watch for while a guest runs.</summary>
public sealed record GuestWatch
{
    public Regex? Expect { get; init; }
    /// <summary>Called with QEMU's pid once it started.</summary>
    public Action<int>? Started { get; init; }
    public TimeSpan? Timeout { get; init; }
    public string? SerialLog { get; init; }
    /// <summary>Where the console goes (the user's terminal); null to keep it quiet.</summary>
    public TextWriter? Console { get; init; }
    /// <summary>
    /// Called about five times a second while the guest runs (under the console lock), with the time so far and whether
    /// the console is at the start of a line (a status line drawn then cannot overwrite the guest's unfinished prompt).
    /// </summary>
    public Action<TimeSpan, bool>? Progress { get; init; }
    /// <summary>
    /// Holds QEMU's stderr back until the guest's console shows its first output: when QEMU fails at start (a device it
    /// cannot set up) the caller gets the text to explain before showing it.
    /// </summary>
    public bool HoldStderrUntilConsole { get; init; }
    /// <summary>Called (under the console lock) before each console write, e.g. to clear a status line first.</summary>
    public Action? BeforeConsoleWrite { get; init; }
    /// <summary>A script to type into the console; only then is QEMU's stdin taken from the terminal (and its queries answered).</summary>
    public ConsoleScript? Script { get; init; }
    /// <summary>
    /// After the script, instead of stopping the guest: this input (Passthru's stdin) goes on to QEMU's until QEMU
    /// exits. Line endings become carriage returns, the Enter key of a serial console, as the terminal stays cooked.
    /// </summary>
    public Stream? KeepRunningInput { get; init; }
    /// <summary>
    /// The QMP socket Passthru listens on for an unprivileged QEMU: made here, inherited by QEMU under the number that
    /// replaces <see cref="QemuCommand.QmpDescriptor"/> in its arguments, and closed in Passthru once QEMU has it.
    /// </summary>
    public string? ListenOn { get; init; }
    /// <summary>RLIMIT_MEMLOCK, soft and hard, for QEMU alone: Passthru's own while it starts QEMU, then put back.</summary>
    public (ulong Soft, ulong Hard)? LockedMemory { get; init; }
    /// <summary>The unprivileged account QEMU runs as, the argument vector starting with the setpriv command that drops to it.</summary>
    public ChildCredentials? RunAs { get; init; }
    /// <summary>
    /// Whether QEMU's stdout goes straight to Passthru's: when <see cref="Console"/> is Passthru's own standard output
    /// (descriptor 1) and nothing watches, logs or holds it (no pattern, timeout, log, script, status line or held
    /// stderr), QEMU writes to it directly, as when started by hand: no pipe, and no thread woken for every character a
    /// serial console writes.
    /// </summary>
    internal bool Direct => Console is StreamWriter { BaseStream: StandardOutput } && Expect is null && Timeout is null && SerialLog is null
        && Script is null && Progress is null && BeforeConsoleWrite is null && !HoldStderrUntilConsole;
}

/// <summary>
/// Runs QEMU from an argument vector (never a shell) with its console streamed through a <see cref="ConsoleWatcher"/>.
/// QEMU is always stopped when this returns: on a match or timeout with SIGTERM (QEMU exits cleanly on it), then
/// SIGKILL if it lingers; on SIGINT/SIGTERM/SIGHUP to Passthru the same way, so callers can restore devices after.
/// </summary>
public static class GuestProcess
{
    public static GuestOutcome Run(IReadOnlyList<string> argv, GuestWatch watch, CancellationToken cancel = default)
    {
        // Straight to stdout only while descriptor 1 is the one Passthru was given: a Passthru started with its stdout
        // closed holds /dev/null there, close-on-exec (Program's cover), and QEMU, inheriting 1 closed, would open its
        // own first file as 1 and write the guest's console into it. Through the pipe, the lost output is said instead.
        bool direct = watch.Direct && NativeFiles.IsInherited(1);
        using var listener = watch.ListenOn is null ? null : Listen(watch.ListenOn);
        if (listener is not null)
        {
            var fd = listener.DangerousGetHandle().ToString(System.Globalization.CultureInfo.InvariantCulture);
            argv = argv.Select(a => a.Replace(QemuCommand.QmpDescriptor, fd, StringComparison.Ordinal)).ToList();
        }
        // (QEMU's stderr is pumped to the console even then, as before: one thread that wakes only when QEMU complains.)
        if (direct) watch.Console!.Flush();
        var watcher = new ConsoleWatcher(watch.Expect);
        var clock = Stopwatch.StartNew();
        using var log = watch.SerialLog is null ? null : new StreamWriter(watch.SerialLog, append: false) { AutoFlush = true };
        using var interrupted = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Stop);
        void Stop(PosixSignalContext context) { context.Cancel = true; interrupted.Cancel(); }

        ChildProcess process;
        // (The limit is copied into the child as it is made; Passthru's own goes back as soon as Start returns.)
        try
        {
            using var limit = watch.LockedMemory is { } memlock ? ResourceLimits.SetLockedMemoryFor(memlock) : null;
            process = ChildProcess.Start(argv, watch.RunAs, pipeInput: watch.Script is not null, pipeOutput: !direct, pipeError: true);
        }
        catch (IOException e) { throw new UserError(e.Message); }
        using var _ = process;
        // (Passthru's copy of the listening socket stays open until the guest ends; it never accepts, QEMU does. The
        // socket's file goes with the guest's record.)
        watch.Started?.Invoke(process.Id);
        // The socket appears at its name once QEMU's pid is recorded, as when QEMU makes it itself: whoever waits for
        // it (attach, scripts) finds a guest that has started.
        if (watch.ListenOn is { } socketPath) File.Move(socketPath + ".new", socketPath, overwrite: true);
        var matched = new ManualResetEventSlim();
        object gate = new();
        var held = watch.HoldStderrUntilConsole ? new System.Text.StringBuilder() : null;
        var script = watch.Script is null ? null : new ScriptRunner(watch.Script, process.StandardInput!);

        void Pump(StreamReader reader, bool isStderr)
        {
            var buffer = new char[4096];
            int n;
            while ((n = reader.Read(buffer, 0, buffer.Length)) > 0)
            {
                lock (gate)
                {
                    if (isStderr && held is not null) { held.Append(buffer, 0, n); continue; }
                    watch.BeforeConsoleWrite?.Invoke();
                    if (held is not null)
                    {
                        // The guest is running: what QEMU said before it goes out first, in order.
                        watch.Console?.Write(held.ToString());
                        held = null;
                    }
                    log?.Write(buffer, 0, n);
                    // QEMU's own words on a line of their own, not inside the guest's unfinished one ("PCI-Mqemu-system-
                    // x86_64: terminating on signal 15 ... S" when a script stopped a guest in the middle of a line).
                    if (isStderr && !watcher.AtLineStart)
                    {
                        watch.Console?.Write('\n');
                        watcher.Feed("\n");
                    }
                    // With a script, the guest's terminal queries are answered here and not shown: a terminal that saw
                    // them would answer too, into an input nobody reads.
                    var shown = script is null || isStderr ? buffer.AsSpan(0, n) : script.Filter(buffer.AsSpan(0, n)).AsSpan();
                    watch.Console?.Write(shown);
                    watch.Console?.Flush();
                    if (watcher.Feed(shown)) matched.Set();
                }
            }
        }
        // Threads of their own, not the thread pool: a pool worker blocked in Read for the guest's whole life made the
        // pool add a gate thread and another worker, which spun (sched_yield) beside QEMU on the same cores.
        Exception? pumpFailure = null;
        Thread StartPump(StreamReader reader, bool isStderr)
        {
            var thread = new Thread(() =>
            {
                try { Pump(reader, isStderr); }
                catch (Exception e) { Interlocked.CompareExchange(ref pumpFailure, e, null); }
            }) { IsBackground = true, Name = isStderr ? "QEMU stderr" : "QEMU stdout" };
            thread.Start();
            return thread;
        }
        var stdout = direct ? null : StartPump(new StreamReader(process.StandardOutput!, System.Text.Encoding.UTF8, false, 4096), isStderr: false);
        var stderr = StartPump(new StreamReader(process.StandardError!, System.Text.Encoding.UTF8, false, 4096), isStderr: true);

        GuestEnd end = GuestEnd.Exited;
        var deadline = watch.Timeout is TimeSpan t ? clock.Elapsed + t : TimeSpan.MaxValue;
        bool forwarding = false;
        while (true)
        {
            // A script's steps are checked often: each expect waits at most this long past its match.
            if (process.WaitForExit(TimeSpan.FromMilliseconds(script is null ? 200 : 50))) { end = watcher.Matched ? GuestEnd.Matched : GuestEnd.Exited; break; }
            if (script is not null && !forwarding)
            {
                bool inTime, done;
                lock (gate) { inTime = script.Advance(clock.Elapsed); done = script.Done; }
                if (!inTime) { end = GuestEnd.TimedOut; break; }
                if (done && watch.KeepRunningInput is null) { end = GuestEnd.Completed; break; }
                if (done) { forwarding = true; deadline = TimeSpan.MaxValue; Forward(watch.KeepRunningInput!, script, gate); }
            }
            if (matched.IsSet) { end = GuestEnd.Matched; break; }
            if (interrupted.IsCancellationRequested) { end = GuestEnd.Interrupted; break; }
            if (clock.Elapsed >= deadline) { end = GuestEnd.TimedOut; break; }
            if (watch.Progress is { } progress) lock (gate) progress(clock.Elapsed, watcher.AtLineStart);
        }
        if (!process.HasExited) Terminate(process);
        process.WaitForExit(Timeout.InfiniteTimeSpan);
        var drained = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        foreach (var pump in new[] { stdout, stderr }) pump?.Join(Max(drained - DateTime.UtcNow, TimeSpan.Zero));
        if (Volatile.Read(ref pumpFailure) is { } failure) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        // A guest stopped in the middle of a line (a script's last expect, a pattern, a timeout) leaves it unfinished:
        // end it, so what follows on the terminal (Passthru's exit, the user's prompt, a script's next echo) starts a line
        // of its own. Not the log, which keeps the serial output as it was; not when QEMU wrote the console itself.
        lock (gate)
            if (!direct && !watcher.AtLineStart)
            {
                watch.Console?.Write('\n');
                watch.Console?.Flush();
            }
        // The same for a pattern: a guest that printed it and exited at once (before the pump had read it) matched.
        lock (gate) if (end == GuestEnd.Exited && watcher.Matched) end = GuestEnd.Matched;
        if (script is not null && end == GuestEnd.Exited && !forwarding)
        {
            // The guest's last words may have arrived after the loop last looked: the steps they complete count.
            lock (gate) if (script.Advance(clock.Elapsed) && script.Done) end = GuestEnd.Completed;
        }
        lock (gate) return new GuestOutcome(end, process.ExitCode, watcher.LastLines, clock.Elapsed, held?.ToString(),
            script?.Result(stoppedEarly: end is not GuestEnd.Completed && !forwarding));
    }

    /// <summary>A listening Unix socket at <paramref name="path"/> (a stale one replaced), 0600, that a child process inherits.</summary>
    private static Microsoft.Win32.SafeHandles.SafeFileHandle Listen(string path)
    {
        if (NativeFiles.KindOf(path) == NativeFiles.FileKind.Socket) File.Delete(path);
        path += ".new"; // renamed to its name once QEMU runs (a listening socket stays reachable under its new name)
        if (NativeFiles.KindOf(path) == NativeFiles.FileKind.Socket) File.Delete(path);
        try { return NativeFiles.ListenUnix(path, 0b110_000_000); }
        catch (IOException e) { throw new UserError($"cannot listen on the guest's control socket {path}: {e.Message}"); }
    }

    /// <summary>--keep-running: the user's typing goes to the guest (a background reader; it ends with Passthru).</summary>
    private static void Forward(Stream from, ScriptRunner to, object gate)
    {
        var thread = new Thread(() =>
        {
            var buffer = new byte[1024];
            int n;
            try
            {
                while ((n = from.Read(buffer, 0, buffer.Length)) > 0)
                {
                    for (int i = 0; i < n; i++) if (buffer[i] == (byte)'\n') buffer[i] = (byte)'\r';
                    lock (gate) to.Forward(buffer, n);
                }
            }
            catch (IOException) { }
        }) { IsBackground = true, Name = "console input" };
        thread.Start();
    }

    private static void Terminate(ChildProcess process)
    {
        process.Terminate();
        if (!process.WaitForExit(TimeSpan.FromSeconds(5))) process.KillTree();
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;
}
