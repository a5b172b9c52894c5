using System.Diagnostics;
using Passthru.Tests.Support;

namespace Passthru.Tests.Packaging;

/// <summary>
/// The .deb, built once for the packaging tests by the README's command (scripts/package.sh, which publishes the
/// binary first), and its contents unpacked with dpkg-deb -x: the tests look at the files that ship.
/// </summary>
public sealed class PackagingFixture : IDisposable
{
    public string Deb { get; }

    /// <summary>The package's files, unpacked (usr/bin/passthru, usr/share/...).</summary>
    public string Tree { get; }

    public PackagingFixture()
    {
        var build = Run("bash", [Path.Combine(Repo.Root, "scripts", "package.sh")]);
        Assert.True(build.ExitCode == 0, $"scripts/package.sh failed (exit {build.ExitCode}):\n{build.Stdout}{build.Stderr}");
        Deb = Path.Combine(Repo.Root, build.Stdout.Trim().Split('\n')[^1]);
        Assert.True(System.IO.File.Exists(Deb), $"scripts/package.sh printed no package path: {build.Stdout}");
        Tree = Directory.CreateTempSubdirectory("passthru-deb-").FullName;
        var x = Run("dpkg-deb", ["-x", Deb, Tree]);
        Assert.True(x.ExitCode == 0, x.Stderr);
    }

    public string File(string path) => Path.Combine(Tree, path);

    public void Dispose() => Directory.Delete(Tree, true);

    /// <summary>
    /// Runs a program from the repository root. A tool that is missing fails the test with the way to get it: the
    /// packaging tests are never skipped.
    /// </summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(string program, string[] args, IDictionary<string, string>? env = null)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, WorkingDirectory = Repo.Root,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) start.Environment[k] = v;
        Process p;
        try { p = Process.Start(start)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"{program} is not installed ({e.Message}): run scripts/install-deps.sh, which installs what the tests need");
        }
        using (p)
        {
            p.StandardInput.Close();
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            p.WaitForExit();
            return (p.ExitCode, stdout.Result, stderr.Result);
        }
    }
}

[CollectionDefinition("Packaging")]
public sealed class PackagingCollection : ICollectionFixture<PackagingFixture>;
