using System.Text.RegularExpressions;

namespace Passthru.Tests.Packaging;

/// <summary>The .deb scripts/package.sh builds: its files, its control fields, lintian's verdict, and a real install.</summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("Packaging")]
public class PackagingDebTests(PackagingFixture package)
{
    private static readonly Dictionary<string, string> Expected = new()
    {
        ["./usr/bin/passthru"] = "-rwxr-xr-x",
        ["./usr/share/man/man1/passthru.1.gz"] = "-rw-r--r--",
        ["./usr/share/bash-completion/completions/passthru"] = "-rw-r--r--",
        ["./usr/share/zsh/vendor-completions/_passthru"] = "-rw-r--r--",
        ["./usr/share/fish/vendor_completions.d/passthru.fish"] = "-rw-r--r--",
        ["./usr/share/doc/passthru/copyright"] = "-rw-r--r--",
        ["./usr/share/doc/passthru/changelog.Debian.gz"] = "-rw-r--r--",
        ["./usr/share/lintian/overrides/passthru"] = "-rw-r--r--",
    };

    [Fact]
    public void It_ships_the_binary_man_page_completions_and_docs_owned_by_root()
    {
        var (code, stdout, stderr) = PackagingFixture.Run("dpkg-deb", ["-c", package.Deb]);
        Assert.True(code == 0, stderr);
        // drwxr-xr-x root/root         0 2026-11-26 15:07 ./usr/bin/
        var entries = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => Regex.Match(l, @"^(\S+) (\S+) +\d+ \S+ \S+ (.+)$")).ToList();
        Assert.All(entries, m => Assert.True(m.Success, m.Value));
        Assert.All(entries, m => Assert.Equal("root/root", m.Groups[2].Value));
        var files = entries.Where(m => !m.Groups[1].Value.StartsWith('d')).ToDictionary(m => m.Groups[3].Value, m => m.Groups[1].Value);
        Assert.Equal(Expected.OrderBy(e => e.Key), files.OrderBy(e => e.Key));
        Assert.All(entries.Where(m => m.Groups[1].Value.StartsWith('d')), m => Assert.Equal("drwxr-xr-x", m.Groups[1].Value));
    }

    [Fact]
    public void Its_control_fields_name_the_version_the_binary_reports()
    {
        var version = PackagingFixture.Run(package.File("usr/bin/passthru"), ["--version"]).Stdout.Trim().Split('+')[0];
        Assert.Equal($"passthru_{version}-1_amd64.deb", Path.GetFileName(package.Deb));
        string Field(string name)
        {
            var (code, stdout, stderr) = PackagingFixture.Run("dpkg-deb", ["-f", package.Deb, name]);
            Assert.True(code == 0, stderr);
            return stdout.TrimEnd('\n');
        }
        Assert.Equal("passthru", Field("Package"));
        Assert.Equal($"{version}-1", Field("Version"));
        Assert.Equal("amd64", Field("Architecture"));
        Assert.Equal("admin", Field("Section"));
        Assert.Equal("optional", Field("Priority"));
        Assert.Equal("qemu-system-x86, pciutils", Field("Recommends"));
        // One static binary needs no library; adduser is for the postinst, which makes the QEMU user (#24).
        Assert.Equal("adduser", Field("Depends"));
        Assert.Matches(@"^.+ <[^@ ]+@[^> ]+>$", Field("Maintainer"));
        var description = Field("Description").Split('\n');
        Assert.Equal("pass PCIe devices through to QEMU guests with vfio-pci", description[0]);
        Assert.True(description.Length > 3, "the description has no long part");
        Assert.StartsWith("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
            File.ReadAllText(package.File("usr/share/doc/passthru/copyright")));
    }

    [Fact]
    public void Lintian_finds_no_errors()
    {
        var (code, stdout, stderr) = PackagingFixture.Run("lintian", ["--fail-on", "error", package.Deb]);
        Assert.DoesNotMatch("(?m)^E: ", stdout + stderr);
        Assert.True(code == 0, $"lintian exited {code}:\n{stdout}{stderr}");
    }

    [Fact]
    public void Apt_installs_it_and_removes_every_file()
    {
        Assert.False(Installed(), "passthru is already installed here: this test installs and removes the package, so it leaves an installed one alone");
        Assert.False(File.Exists("/usr/bin/passthru"), "/usr/bin/passthru exists already: this test would remove it");
        var apt = new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" };
        string[] wait = ["-o", "DPkg::Lock::Timeout=300"];   // another test run may hold dpkg's lock for a while
        try
        {
            var install = PackagingFixture.Run("apt-get", ["install", "-y", "--no-install-recommends", .. wait, package.Deb], apt);
            Assert.True(install.ExitCode == 0, install.Stdout + install.Stderr);
            var version = PackagingFixture.Run("/usr/bin/passthru", ["--version"]);
            Assert.Equal(0, version.ExitCode);
            Assert.Matches(@"^\d+\.\d+\.\d+", version.Stdout);
            Assert.Equal("/usr/share/man/man1/passthru.1.gz", PackagingFixture.Run("man", ["-w", "passthru"]).Stdout.Trim());
            // bash-completion finds the script by the command's name, on first use.
            var bash = PackagingFixture.Run("bash", ["--norc", "--noprofile", "-c",
                ". /usr/share/bash-completion/bash_completion && _completion_loader passthru; complete -p passthru"]);
            Assert.Equal("complete -F _passthru passthru", bash.Stdout.Trim());
        }
        finally
        {
            PackagingFixture.Run("apt-get", ["remove", "-y", .. wait, "passthru"], apt);
            var purge = PackagingFixture.Run("dpkg", ["-P", "passthru"]);
            Assert.True(purge.ExitCode == 0, purge.Stdout + purge.Stderr);
        }
        Assert.False(File.Exists("/usr/bin/passthru"));
        Assert.False(Directory.Exists("/usr/share/doc/passthru"));
        Assert.False(File.Exists("/usr/share/bash-completion/completions/passthru"));
        Assert.False(Installed());
    }

    /// <summary>dpkg's status says "install ok installed" (and "... not-installed" or nothing once it is purged).</summary>
    private static bool Installed() =>
        PackagingFixture.Run("dpkg-query", ["-W", "-f=${Status}", "passthru"]).Stdout.EndsWith(" installed", StringComparison.Ordinal);
}
