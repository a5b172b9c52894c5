using Passthru.Tests.Support;

namespace Passthru.Tests.Setup;

/// <summary>
/// Real configuration files from Debian's archive, fetched at test time with `apt-get download` and unpacked with
/// `dpkg-deb -x` into a cache shared by test runs. Fails loudly, with apt's own words, when the archive cannot be
/// reached: a test that needs a stock file never passes without it.
/// </summary>
public static class DebianPackage
{
    private static readonly string Cache = Path.Combine(Path.GetTempPath(), "passthru-test-packages");
    private static readonly object Gate = new();

    /// <summary>The bytes of a file the package ships (path inside the package, without the leading /).</summary>
    public static byte[] File(string package, string path)
    {
        var tree = Unpacked(package);
        var file = Path.Combine(tree, path);
        if (!System.IO.File.Exists(file))
            throw new InvalidOperationException($"package {package} does not ship /{path} (unpacked in {tree})");
        return System.IO.File.ReadAllBytes(file);
    }

    private static string Unpacked(string package)
    {
        lock (Gate)
        {
            var tree = Path.Combine(Cache, package);
            if (Directory.Exists(tree)) return tree;
            var download = Directory.CreateDirectory(Path.Combine(Cache, "download-" + Guid.NewGuid().ToString("n")[..8])).FullName;
            try
            {
                var (code, _, stderr) = Exec(download, "apt-get", "download", package);
                var deb = Directory.GetFiles(download, "*.deb").FirstOrDefault();
                if (code != 0 || deb is null)
                    throw new InvalidOperationException($"`apt-get download {package}` failed (exit {code}): {stderr.Trim()} — "
                        + "these tests need Debian's archive (network, and `apt-get update` run once)");
                var staging = download + "/tree";
                var (x, _, xerr) = Exec(download, "dpkg-deb", "-x", deb, staging);
                if (x != 0) throw new InvalidOperationException($"`dpkg-deb -x {deb}` failed (exit {x}): {xerr.Trim()}");
                Directory.Move(staging, tree);
                return tree;
            }
            finally { Directory.Delete(download, true); }
        }
    }

    private static (int, string, string) Exec(string dir, string program, params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(start) ?? throw new InvalidOperationException($"cannot start {program}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
