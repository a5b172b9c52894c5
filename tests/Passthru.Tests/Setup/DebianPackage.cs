using Passthru.Tests.Support;

namespace Passthru.Tests.Setup;

/// <summary>
/// Real configuration files from Debian's archive, at the versions pinned in tests/debian-packages: fetched by
/// scripts/fetch-test-packages.sh (the test command runs it first; a class run alone runs it here) and unpacked with
/// `dpkg-deb -x` into a cache shared by test runs. Fails loudly, with apt's own words, when the archive cannot be
/// reached: a test that needs a stock file never passes without it.
/// </summary>
public static class DebianPackage
{
    private static readonly string Cache = Path.Combine(Path.GetTempPath(), "passthru-test-packages");
    private static readonly object Gate = new();
    private static readonly string PinFile = Path.Combine(Repo.Root, "tests", "debian-packages");

    /// <summary>package → version, from tests/debian-packages.</summary>
    private static readonly Dictionary<string, string> Pins = System.IO.File.ReadAllLines(PinFile)
        .Select(l => l.Split('#')[0].Trim()).Where(l => l.Length > 0)
        .Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);

    private static string Version(string package) => Pins.TryGetValue(package, out var v) ? v
        : throw new InvalidOperationException($"Debian package {package} is not pinned in {PinFile}: add {package}=VERSION (apt-cache policy {package})");

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
            var tree = Path.Combine(Cache, package, Version(package), name);
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

    /// <summary>The package's .deb at its pinned version, fetched once into the cache by scripts/fetch-test-packages.sh.</summary>
    public static string Deb(string package)
    {
        lock (Gate)
        {
            var dir = Path.Combine(Cache, package, Version(package));
            var deb = Directory.Exists(dir) ? Directory.GetFiles(dir, "*.deb").FirstOrDefault() : null;
            if (deb is not null) return deb;
            var (code, stdout, stderr) = Exec(Repo.Root, "bash", Path.Combine(Repo.Root, "scripts", "fetch-test-packages.sh"), package);
            deb = Directory.Exists(dir) ? Directory.GetFiles(dir, "*.deb").FirstOrDefault() : null;
            return deb ?? throw new InvalidOperationException($"`scripts/fetch-test-packages.sh {package}` fetched no {package}={Version(package)} (exit {code}): {stdout.Trim()} {stderr.Trim()} — "
                + "these tests need Debian's archive (network, and `apt-get update` run once)");
        }
    }

    /// <summary>
    /// The package a Debian metapackage depends on (linux-image-amd64 -> linux-image-6.1.0-57-amd64), as pinned in
    /// tests/debian-packages: the one pinned package named PREFIX..., not whatever apt's lists say today.
    /// </summary>
    public static string DependencyOf(string metapackage, string prefix)
    {
        var pinned = Pins.Keys.Where(p => p.StartsWith(prefix, StringComparison.Ordinal) && p != metapackage).ToList();
        return pinned.Count == 1 ? pinned[0]
            : throw new InvalidOperationException($"{PinFile} pins {pinned.Count} packages named {prefix}*, not one: pin {metapackage}'s dependency (apt-cache depends {metapackage})");
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
