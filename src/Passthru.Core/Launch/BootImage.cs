using System.Text;
using Passthru.Host;

namespace Passthru.Launch;

/// <summary>A file of a boot image: where the menu (and so grub.cfg) names it on the ISO, the host file, its size.</summary>
public sealed record ImageFile(string IsoPath, string Source, long Bytes);

/// <summary>
/// What `passthru image` does, as data: the files that go on the ISO, the grub.cfg made from the menu, and the
/// grub-mkrescue command that builds it in a work directory (removed after), whose ISO is then written to Output.
/// </summary>
public sealed record ImagePlan(string Menu, string BuildDir, string Output, IReadOnlyList<ImageFile> Files, string GrubConfig, string WorkDir, IReadOnlyList<string> Argv)
{
    public string StagedIso => Path.Combine(WorkDir, "image.iso");
    public string StagedConfig => Path.Combine(WorkDir, "tree", "boot", "grub", "grub.cfg");

    public IEnumerable<string> Describe()
    {
        yield return $"image of {Menu} (paths from {BuildDir}), {Files.Count} files, {Files.Sum(f => f.Bytes)} bytes:";
        foreach (var f in Files) yield return $"  {f.IsoPath}  {f.Bytes}  from {f.Source}";
        yield return "/boot/grub/grub.cfg:";
        foreach (var line in GrubConfig.TrimEnd('\n').Split('\n')) yield return "  " + line;
        yield return "build: " + QemuArgs.ShellJoin(Argv);
        yield return $"then write {StagedIso} to {Output} and remove {WorkDir}";
    }
}

/// <summary>
/// A bootable ISO for any multiboot menu (Barrelfish's menu.lst): GRUB 2 from the distribution's grub-mkrescue
/// (grub-pc-bin, xorriso), a grub.cfg translated from the menu with the semantics run gives it, and every file the menu
/// names at the path it names. Nothing of the ISO or of GRUB is written here: grub-mkrescue and xorriso do that.
/// </summary>
public static class BootImage
{
    public const string Tool = "grub-mkrescue";
    public const string Packages = "grub-pc-bin grub-common xorriso mtools";

    /// <summary>
    /// The grub.cfg for a menu. GRUB's multiboot passes the kernel its file name and arguments as one command line,
    /// as QEMU's -kernel does; its module command passes only the words after the file name, while Barrelfish (like
    /// QEMU's -initrd entries) expects the module's path as the first word: so each module's path is said twice.
    /// modulenounzip becomes module --nounzip (GRUB would otherwise unpack a gzip file). Every word is quoted where
    /// GRUB's script syntax would read it otherwise ($, quotes, braces, ;), so it arrives as the menu wrote it.
    /// </summary>
    public static string GrubConfig(BarrelfishMenu menu, string buildDir)
    {
        var text = new StringBuilder();
        text.Append("# made by passthru image from a multiboot menu.lst\n");
        text.Append("set timeout=0\nset default=0\n");
        text.Append("menuentry ").Append(Quote(menu.Title ?? "multiboot")).Append(" {\n");
        var kernel = IsoPath(menu, buildDir, menu.Kernel);
        text.Append("\tmultiboot ").Append(Words([kernel], menu.Kernel.Arguments)).Append('\n');
        foreach (var m in menu.Modules)
        {
            var path = IsoPath(menu, buildDir, m);
            text.Append("\tmodule ").Append(m.NoUnzip ? "--nounzip " : "").Append(Words([path, path], m.Arguments)).Append('\n');
        }
        text.Append("}\n");
        return text.ToString();
    }

    /// <summary>Where a menu line's file goes on the ISO: its path under the build directory (with the root prefix).</summary>
    public static string IsoPath(BarrelfishMenu menu, string buildDir, MenuModule line)
    {
        var full = Path.GetFullPath(buildDir);
        var relative = Path.GetRelativePath(full, menu.Resolve(full, line.Path));
        if (relative == "." || relative.StartsWith("../", StringComparison.Ordinal) || relative == ".." || Path.IsPathRooted(relative))
            throw new UserError($"menu line {line.Line}: '{Shown.Value(line.Path)}' is outside the build directory {full}: an image holds only files under it (give --build-dir a directory above it)", ExitCodes.Usage);
        return "/" + relative;
    }

    public static ImagePlan Plan(HostRoot host, string menuFile, string? buildDir, string output, string workDir)
    {
        OutputFile.Check("--output", output);
        if (buildDir is not null && !Directory.Exists(buildDir))
            throw new UserError($"--build-dir {Shown.Value(buildDir)}: no such directory (give the build directory the menu's paths start from)", ExitCodes.Usage);
        var menu = BarrelfishMenu.Load(menuFile);
        var dir = Path.GetFullPath(buildDir ?? menu.DefaultBuildDir(menuFile));
        menu.RequireFiles(dir);
        var config = GrubConfig(menu, dir);
        var files = new List<ImageFile>();
        foreach (var line in menu.Modules.Prepend(menu.Kernel))
        {
            var iso = IsoPath(menu, dir, line);
            var source = menu.Resolve(dir, line.Path);
            // A file two lines name goes on the ISO once.
            if (files.Any(f => f.IsoPath == iso)) continue;
            if (iso.StartsWith("/boot/grub/", StringComparison.Ordinal))
                throw new UserError($"menu line {line.Line}: '{Shown.Value(line.Path)}' would sit in /boot/grub/, which GRUB's own files fill on the image: move the file elsewhere in the build", ExitCodes.Usage);
            files.Add(new ImageFile(iso, source, new FileInfo(source).Length));
        }
        var tool = Programs.Find(host, Tool)
            ?? throw new UserError($"{Tool} is not installed: it builds the image (apt-get install {Packages})", ExitCodes.Usage);
        if (Programs.Find(host, "xorriso") is null)
            throw new UserError($"xorriso is not installed: {Tool} writes the ISO with it (apt-get install {Packages})", ExitCodes.Usage);
        // The tree holds only grub.cfg; every menu file is grafted onto the ISO from where it is (xorriso's
        // ISO-path=host-path graft points, with '=' and '\' escaped), so nothing is copied.
        var argv = new List<string> { tool, "-o", Path.Combine(workDir, "image.iso"), Path.Combine(workDir, "tree") };
        argv.AddRange(files.Select(f => Graft(f.IsoPath) + "=" + Graft(f.Source)));
        return new ImagePlan(Path.GetFullPath(menuFile), dir, output, files, config, workDir, argv);
    }

    /// <summary>Builds the ISO as planned and writes it to the output; the work directory goes in any case.</summary>
    public static long Apply(ImagePlan plan, TimeSpan? limit = null)
    {
        if (Directory.Exists(plan.WorkDir) || File.Exists(plan.WorkDir))
            throw new UserError($"the work directory {plan.WorkDir} exists already: remove it or plan again", ExitCodes.Failure);
        Directory.CreateDirectory(plan.WorkDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(plan.StagedConfig)!);
            File.WriteAllText(plan.StagedConfig, plan.GrubConfig);
            var r = Programs.Run(plan.Argv[0], plan.Argv.Skip(1), limit ?? TimeSpan.FromMinutes(20))
                ?? throw new UserError($"{Tool} did not finish (could not start, or ran past its time limit)", ExitCodes.Failure);
            if (r.ExitCode != 0 || !File.Exists(plan.StagedIso))
            {
                var why = (r.Stderr + r.Stdout).Split('\n').Select(l => l.Trim()).LastOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase) || l.StartsWith("xorriso : FAILURE", StringComparison.Ordinal))
                    ?? $"exit {r.ExitCode}";
                throw new UserError($"{Tool} failed: {why}", ExitCodes.Failure);
            }
            var iso = File.ReadAllBytes(plan.StagedIso);
            OutputFile.Write("--output", plan.Output, iso);
            return iso.Length;
        }
        finally
        {
            try { Directory.Delete(plan.WorkDir, recursive: true); }
            catch (IOException) { }
        }
    }

    /// <summary>The grub.cfg an ISO holds (read by xorriso), or null when it holds none or cannot be read.</summary>
    public static string? ReadGrubConfig(string xorriso, string iso)
    {
        var dir = NewWorkDir();
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        try
        {
            var target = Path.Combine(dir, "grub.cfg");
            var r = Programs.Run(xorriso, ["-osirrox", "on", "-indev", iso, "-extract", "/boot/grub/grub.cfg", target], TimeSpan.FromMinutes(2));
            return r is { ExitCode: 0 } && File.Exists(target) ? File.ReadAllText(target) : null;
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>A work directory name under the temporary directory, not created until the plan is applied.</summary>
    public static string NewWorkDir() => Path.Combine(Path.GetTempPath(), "passthru-image-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6)));

    private static string Graft(string path) => path.Replace("\\", "\\\\").Replace("=", "\\=");

    /// <summary>Words of a GRUB command: the given ones, then the menu's arguments split as the menu split them.</summary>
    private static string Words(IEnumerable<string> first, string arguments) =>
        string.Join(' ', first.Concat(arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(Quote));

    /// <summary>A word as GRUB's script reads it back: bare when only plain characters, else in single quotes.</summary>
    public static string Quote(string word) =>
        word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "_-./,:=+@%^".Contains(c)) ? word : "'" + word.Replace("'", "'\\''") + "'";
}
