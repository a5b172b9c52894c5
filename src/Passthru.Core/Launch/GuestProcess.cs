using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace Passthru.Launch;

/// <summary>How a guest run ended.</summary>
public enum GuestEnd { Exited, Matched, TimedOut, Interrupted }

public sealed record GuestOutcome(GuestEnd End, int ExitCode, IReadOnlyList<string> LastLines, TimeSpan Elapsed);

/// <summary>What to watch for while a guest runs.</summary>
public sealed record GuestWatch
{
    public Regex? Expect { get; init; }
    public TimeSpan? Timeout { get; init; }
    public string? SerialLog { get; init; }
    /// <summary>Where the console goes (the user's terminal); null to keep it quiet.</summary>
    public TextWriter? Console { get; init; }
    /// <summary>Called about once a second while waiting for the pattern, for a progress line on a terminal.</summary>
    public Action<TimeSpan>? Progress { get; init; }
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
        var start = new ProcessStartInfo(argv[0]) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in argv.Skip(1)) start.ArgumentList.Add(a);
        var watcher = new ConsoleWatcher(watch.Expect);
        var clock = Stopwatch.StartNew();
        using var log = watch.SerialLog is null ? null : new StreamWriter(watch.SerialLog, append: false) { AutoFlush = true };
        using var interrupted = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Stop);
        void Stop(PosixSignalContext context) { context.Cancel = true; interrupted.Cancel(); }

        Process process;
        try { process = Process.Start(start) ?? throw new UserError($"could not start {argv[0]}"); }
        catch (System.ComponentModel.Win32Exception e) { throw new UserError($"could not start {argv[0]}: {e.Message}"); }
        using var _ = process;
        var matched = new ManualResetEventSlim();
        object gate = new();

        void Pump(StreamReader reader)
        {
            var buffer = new char[4096];
            int n;
            while ((n = reader.Read(buffer, 0, buffer.Length)) > 0)
            {
                lock (gate)
                {
                    watch.Console?.Write(buffer, 0, n);
                    watch.Console?.Flush();
                    log?.Write(buffer, 0, n);
                    if (watcher.Feed(buffer.AsSpan(0, n))) matched.Set();
                }
            }
        }
        var stdout = Task.Run(() => Pump(process.StandardOutput));
        var stderr = Task.Run(() => Pump(process.StandardError));

        GuestEnd end = GuestEnd.Exited;
        var deadline = watch.Timeout is TimeSpan t ? clock.Elapsed + t : TimeSpan.MaxValue;
        while (true)
        {
            if (process.WaitForExit(200)) { end = watcher.Matched ? GuestEnd.Matched : GuestEnd.Exited; break; }
            if (matched.IsSet) { end = GuestEnd.Matched; break; }
            if (interrupted.IsCancellationRequested) { end = GuestEnd.Interrupted; break; }
            if (clock.Elapsed >= deadline) { end = GuestEnd.TimedOut; break; }
            watch.Progress?.Invoke(clock.Elapsed);
        }
        if (!process.HasExited) Terminate(process);
        process.WaitForExit();
        Task.WaitAll([stdout, stderr], TimeSpan.FromSeconds(5));
        lock (gate) return new GuestOutcome(end, process.ExitCode, watcher.LastLines, clock.Elapsed);
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    private static void Terminate(Process process)
    {
        const int SIGTERM = 15;
        kill(process.Id, SIGTERM);
        if (!process.WaitForExit(TimeSpan.FromSeconds(5)))
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        }
    }
}
