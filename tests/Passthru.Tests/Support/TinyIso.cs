namespace Passthru.Tests.Support;

/// <summary>A real ISO 9660 image of one small file, made by xorriso (milliseconds): what an export given --image checks for.</summary>
public static class TinyIso
{
    public static string Make(string dir, string name)
    {
        var content = Directory.CreateTempSubdirectory("passthru-iso-content-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(content, "readme.txt"), "a CD\n");
            var iso = Path.Combine(dir, name);
            var r = Repo.Exec("xorriso", "-as", "mkisofs", "-quiet", "-o", iso, content);
            if (r.ExitCode != 0) throw new InvalidOperationException("xorriso (scripts/install-deps.sh installs it) failed: " + r.Stderr);
            return iso;
        }
        finally { Directory.Delete(content, true); }
    }
}
