using System.Diagnostics;

namespace Passthru.Tests.Support;

/// <summary>
/// The NativeAOT binary (artifacts/bin/passthru), published by scripts/publish.sh once per test run when it is missing
/// or older than a source file, for whichever class needs it first: every class that runs it passes when run alone.
/// </summary>
public static class PublishedBinary
{
    private static readonly Lazy<string> Published = new(Publish);

    /// <summary>The binary, published first if need be; a failed publish fails the test with its output.</summary>
    public static string Path => Published.Value;

    private static string Publish()
    {
        var binary = System.IO.Path.Combine(Repo.Root, "artifacts", "bin", "passthru");
        if (File.Exists(binary) && !IsStale(binary)) return binary;
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Repo.Root };
        start.ArgumentList.Add(System.IO.Path.Combine(Repo.Root, "scripts", "publish.sh"));
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            p.Kill(entireProcessTree: true);
            throw new InvalidOperationException("publishing the NativeAOT binary took over 10 minutes");
        }
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"publishing the NativeAOT binary failed (exit {p.ExitCode}):\n{stdout.Result}{stderr.Result}");
        return binary;
    }

    /// <summary>
    /// A binary older than any source file would test yesterday's code. The build's own generated files (obj/: the
    /// AssemblyInfo.cs every Debug build of the tests writes anew) are not sources: counting them republished the
    /// binary (minutes) in every test run that built after publishing, while a virtual host could be running it.
    /// </summary>
    private static bool IsStale(string binary)
    {
        var built = File.GetLastWriteTimeUtc(binary);
        var separator = System.IO.Path.DirectorySeparatorChar;
        return Directory.EnumerateFiles(System.IO.Path.Combine(Repo.Root, "src"), "*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".cs", StringComparison.Ordinal) || f.EndsWith(".csproj", StringComparison.Ordinal)
                || f.EndsWith(".order", StringComparison.Ordinal)    // startup.order lays the binary out
                || f.EndsWith(".c", StringComparison.Ordinal))       // Host/interrupts.c is linked in
            .Where(f => !f.Contains($"{separator}obj{separator}", StringComparison.Ordinal) && !f.Contains($"{separator}bin{separator}", StringComparison.Ordinal))
            .Any(f => File.GetLastWriteTimeUtc(f) > built);
    }
}
