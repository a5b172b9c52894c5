namespace Passthru.Launch;

/// <summary>
/// One kernel or module line of a menu.lst: its path as written and its arguments. NoUnzip marks a modulenounzip line
/// (QEMU never unpacks a module, so run treats both alike; GRUB's module command does unless told --nounzip).
/// </summary>
public sealed record MenuModule(string Path, string Arguments, int Line, bool NoUnzip = false);

/// <summary>
/// A Barrelfish boot menu (menu.lst), read the way Barrelfish's own tools/qemu-wrapper.sh reads it: the kernel line
/// gives QEMU's -kernel and its arguments -append; every module and modulenounzip line becomes one entry of -initrd.
/// Paths start with '/' and are relative to the build directory; a root line other than (nd) prefixes every path.
/// </summary>
public sealed record BarrelfishMenu(MenuModule Kernel, IReadOnlyList<MenuModule> Modules, string? Root)
{
    /// <summary>The first title line's text (a GRUB menu entry's name), if the menu has one.</summary>
    public string? Title { get; init; }

    private static readonly HashSet<string> Ignored = new(StringComparer.Ordinal) { "title", "timeout", "mmap", "default" };

    public static BarrelfishMenu Load(string path)
    {
        return Parse(Passthru.Host.InputFile.ReadText("--menu", path), path);
    }

    public static BarrelfishMenu Parse(string text, string name)
    {
        MenuModule? kernel = null;
        var modules = new List<MenuModule>();
        string? root = null, title = null;
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            // A file name or QEMU argument cannot carry them (QEMU's argv ends at a NUL).
            if (line.Any(c => char.IsControl(c) && c != '\t'))
                throw new UserError($"{name}:{i + 1}: a control character ({Shown.Value(line.First(c => char.IsControl(c) && c != '\t').ToString())}) in the line", ExitCodes.Usage);
            var parts = line.Split([' ', '\t'], 3, StringSplitOptions.RemoveEmptyEntries);
            var command = parts[0];
            var path = parts.Length > 1 ? parts[1] : null;
            var args = parts.Length > 2 ? Normalize(parts[2]) : "";
            switch (command)
            {
                case "kernel" or "module" or "modulenounzip":
                    if (path is null) throw new UserError($"{name}:{i + 1}: '{command}' names no file", ExitCodes.Usage);
                    if (command == "kernel")
                    {
                        if (kernel is not null) throw new UserError($"{name}:{i + 1}: a second kernel line (the first is on line {kernel.Line})", ExitCodes.Usage);
                        kernel = new MenuModule(path, args, i + 1);
                    }
                    else modules.Add(new MenuModule(path, args, i + 1, NoUnzip: command == "modulenounzip"));
                    break;
                case "title":
                    title ??= parts.Length > 1 ? Normalize(string.Join(' ', parts[1..])) : null;
                    break;
                case "root":
                    root = path is null or "(nd)" ? null : path;
                    break;
                default:
                    if (!Ignored.Contains(command))
                        throw new UserError($"{name}:{i + 1}: unknown menu command '{Shown.Value(command)}' (expected kernel, module, modulenounzip, root, title, timeout or mmap)", ExitCodes.Usage);
                    break;
            }
        }
        return new BarrelfishMenu(kernel ?? throw new UserError($"{name}: no kernel line: not a Barrelfish menu.lst", ExitCodes.Usage), modules, root) { Title = title };
    }

    /// <summary>Arguments as one space-separated string: tabs and runs of spaces collapse, as the shell's read does.</summary>
    private static string Normalize(string args) => string.Join(' ', args.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries));

    /// <summary>The file a menu path names, under the build directory (and the root prefix).</summary>
    public string Resolve(string buildDir, string menuPath) =>
        System.IO.Path.GetFullPath(buildDir.TrimEnd('/') + "/" + ((Root ?? "") + menuPath).TrimStart('/'));

    /// <summary>
    /// Where the menu's paths start: the menu's own directory, or the nearest parent holding the first path's top
    /// directory (Barrelfish keeps menu.lst in platforms/..., the binaries in x86_64/ at the build's top).
    /// </summary>
    public string DefaultBuildDir(string menuFile)
    {
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(menuFile))!;
        var top = ((Root ?? "") + Kernel.Path).TrimStart('/').Split('/')[0];
        for (var d = new DirectoryInfo(dir); d is not null; d = d.Parent)
            if (Directory.Exists(System.IO.Path.Combine(d.FullName, top)) || File.Exists(System.IO.Path.Combine(d.FullName, top)))
                return d.FullName;
        return dir;
    }

    /// <summary>QEMU's -kernel, -append and -initrd for this menu; every named file must exist (all missing ones are named).</summary>
    public (string Kernel, string Append, string Initrd) ToQemu(string buildDir)
    {
        RequireFiles(buildDir);
        var initrd = string.Join(',', Modules.Select(m =>
        {
            var entry = Resolve(buildDir, m.Path) + (m.Arguments.Length > 0 ? " " + m.Arguments : "");
            return QemuArgs.EscapeCommas(entry);
        }));
        return (Resolve(buildDir, Kernel.Path), Kernel.Arguments, initrd);
    }

    /// <summary>Every file the menu names exists under the build directory; else one error naming all missing ones.</summary>
    public void RequireFiles(string buildDir)
    {
        var missing = new[] { Kernel }.Concat(Modules).Select(m => Resolve(buildDir, m.Path)).Where(f => !File.Exists(f)).ToList();
        if (missing.Count > 0)
            throw new UserError($"the menu names {missing.Count} file{(missing.Count == 1 ? "" : "s")} missing under {buildDir}: {string.Join(", ", missing)} (is --build-dir right? has the build finished?)", ExitCodes.Usage);
    }
}
