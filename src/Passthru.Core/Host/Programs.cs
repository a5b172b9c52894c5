using System.Diagnostics;

namespace Passthru.Host;

/// <summary>Finding and running the host's programs (QEMU, modprobe). Always an argument vector, never a shell.</summary>
public static class Programs
{
    private static readonly string[] StandardDirs = ["usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin"];

    /// <summary>
    /// The root-relative path of a program: on the live host along $PATH, in a captured tree in the standard
    /// directories. An explicit path (containing '/') is taken as given.
    /// </summary>
    public static string? Find(HostRoot host, string name)
    {
        if (name.Contains('/')) return File.Exists(name) ? name : null;
        IEnumerable<string> dirs = StandardDirs;
        if (host.IsLive && Environment.GetEnvironmentVariable("PATH") is string path)
            dirs = path.Split(':', StringSplitOptions.RemoveEmptyEntries).Select(d => d.TrimStart('/')).Concat(StandardDirs);
        foreach (var dir in dirs)
        {
            var candidate = dir + "/" + name;
            if (File.Exists(host.Path(candidate))) return host.Path(candidate);
        }
        return null;
    }

    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    /// <summary>Runs a program to completion with a time limit; null when it cannot be started or times out.</summary>
    public static Result? Run(string program, IEnumerable<string> args, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) start.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(start);
            if (p is null) return null;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeout)) { try { p.Kill(true); } catch (InvalidOperationException) { } return null; }
            p.WaitForExit();
            return new Result(p.ExitCode, stdout.Result, stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception) { return null; }
    }
}
