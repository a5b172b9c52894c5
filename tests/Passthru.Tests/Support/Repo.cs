using System.Diagnostics;

namespace Passthru.Tests.Support;

/// <summary>Where the repository, its captures and the shared fixtures are, found from the test assembly.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Passthru.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root (Passthru.slnx) not found above " + AppContext.BaseDirectory);
    }

    public static string Capture(string name) => Path.Combine(Root, "tests", "captures", name);

    /// <summary>Others' test data beside the clone (../shared): read there, never copied in.</summary>
    public static string Shared(string relative) => Path.GetFullPath(Path.Combine(Root, "..", "shared", relative));

    /// <summary>The system's pci.ids, which lspci also uses: tests compare names against lspci on the same file.</summary>
    public static string SystemPciIds { get; } =
        new[] { "/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids" }.FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("no pci.ids on this machine: the test command installs Debian's pci.ids package");

    /// <summary>A scratch copy of a capture, for tests that damage it.</summary>
    public static string CopyCapture(string name)
    {
        var target = Path.Combine(Path.GetTempPath(), "passthru-test-" + Guid.NewGuid().ToString("n")[..8]);
        var p = Process.Start("cp", ["-a", Capture(name), target])!;
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException("cp -a failed");
        return target;
    }

    public static (int ExitCode, string Stdout, string Stderr) Exec(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
