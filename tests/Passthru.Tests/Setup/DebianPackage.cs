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

    /// <summary>The whole package unpacked (for small packages).</summary>
    public static string Unpacked(string package) => Extracted(package, "tree", []);

    /// <summary>
    /// Only the members matching tar wildcards (./boot/vmlinuz-*), unpacked: a kernel package is 400 MB unpacked and
    /// a test needs a few files of it.
    /// </summary>
    public static string Extracted(string package, string name, string[] members)
    {
        lock (Gate)
        {
            var tree = Path.Combine(Cache, package, name);
            if (Directory.Exists(tree)) return tree;
            var deb = Deb(package);
            var staging = Directory.CreateDirectory(tree + ".part-" + Guid.NewGuid().ToString("n")[..8]).FullName;
            if (members.Length == 0)
            {
                var (x, _, xerr) = Exec(staging, "dpkg-deb", "-x", deb, ".");
                if (x != 0) throw new InvalidOperationException($"`dpkg-deb -x {deb}` failed (exit {x}): {xerr.Trim()}");
            }
            else
            {
                // dpkg-deb --fsys-tarfile DEB | tar -x --wildcards MEMBERS, piped here rather than through a shell.
                var tar = Start(staging, "tar", ["-x", "--wildcards", .. members]);
                var dpkg = Start(staging, "dpkg-deb", ["--fsys-tarfile", deb]);
                dpkg.StandardOutput.BaseStream.CopyTo(tar.StandardInput.BaseStream);
                tar.StandardInput.Close();
                dpkg.WaitForExit();
                tar.WaitForExit();
                if (dpkg.ExitCode != 0 || tar.ExitCode != 0)
                    throw new InvalidOperationException($"unpacking {string.Join(' ', members)} from {deb} failed: {dpkg.StandardError.ReadToEnd()}{tar.StandardError.ReadToEnd()}".Trim());
            }
            Directory.Move(staging, tree);
            return tree;
        }
    }

    /// <summary>The package's .deb, downloaded once into the cache.</summary>
    public static string Deb(string package)
    {
        lock (Gate)
        {
            var dir = Directory.CreateDirectory(Path.Combine(Cache, package)).FullName;
            var deb = Directory.GetFiles(dir, "*.deb").FirstOrDefault();
            if (deb is not null) return deb;
            var download = Directory.CreateDirectory(Path.Combine(Cache, "download-" + Guid.NewGuid().ToString("n")[..8])).FullName;
            try
            {
                var (code, _, stderr) = Exec(download, "apt-get", "download", package);
                var got = Directory.GetFiles(download, "*.deb").FirstOrDefault();
                if (code != 0 || got is null)
                    throw new InvalidOperationException($"`apt-get download {package}` failed (exit {code}): {stderr.Trim()} — "
                        + "these tests need Debian's archive (network, and `apt-get update` run once)");
                var target = Path.Combine(dir, Path.GetFileName(got));
                System.IO.File.Move(got, target);
                return target;
            }
            finally { Directory.Delete(download, true); }
        }
    }

    /// <summary>The package a Debian metapackage depends on (linux-image-amd64 -> linux-image-6.1.0-56-amd64).</summary>
    public static string DependencyOf(string metapackage, string prefix)
    {
        var (code, stdout, stderr) = Exec(Path.GetTempPath(), "apt-cache", "depends", metapackage);
        var name = stdout.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("Depends: " + prefix, StringComparison.Ordinal)).Select(l => l[9..]).FirstOrDefault();
        return name ?? throw new InvalidOperationException($"`apt-cache depends {metapackage}` names no {prefix}* (exit {code}): {stderr.Trim()} — run `apt-get update` once");
    }

    private static System.Diagnostics.Process Start(string dir, string program, string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo(program)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, WorkingDirectory = dir,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        return System.Diagnostics.Process.Start(start) ?? throw new InvalidOperationException($"cannot start {program}");
    }

    internal static (int, string, string) Exec(string dir, string program, params string[] args)
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
