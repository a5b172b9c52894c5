namespace Passthru.Host;

/// <summary>
/// A file the user names for output (`export -o`, `run --junit`). It is written the way a shell's `>` would treat
/// the name, never by replacing what the name is: a symlink is written through to its target, a character device or
/// a FIFO (/dev/null, /dev/stdout, a pipe) is written in place, a regular file is replaced atomically (readers see the
/// old or the new text, never half), and a directory, a block device or a socket is refused before anything is done.
/// </summary>
public static class OutputFile
{
    /// <summary>Refuses a name that cannot be written, with one line naming the option and the fix; nothing is written.</summary>
    public static void Check(string option, string? path)
    {
        if (path is null) return;
        Resolve(option, path);
    }

    public static void Write(string option, string path, ReadOnlySpan<byte> content)
    {
        var (target, kind) = Resolve(option, path);
        try
        {
            if (kind is NativeFiles.FileKind.CharacterDevice or NativeFiles.FileKind.Fifo)
                NativeFiles.WriteInPlace(target, content);
            else
                NativeFiles.ReplaceFile(target, content, kind == NativeFiles.FileKind.Regular ? ExistingMode(target) : NewFileMode);
        }
        catch (IOException e)
        {
            throw new UserError($"{option} {Passthru.Shown.Value(path)}: {Passthru.Shown.Error(e)}");
        }
    }

    /// <summary>rw-r--r--, what a shell's `>` gives with the usual umask 022.</summary>
    private const UnixFileMode NewFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    private static UnixFileMode ExistingMode(string path)
    {
        try { return File.GetUnixFileMode(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return NewFileMode; }
    }

    /// <summary>The file that will really be written (symlinks followed) and what it is now.</summary>
    private static (string Target, NativeFiles.FileKind Kind) Resolve(string option, string path)
    {
        if (string.IsNullOrWhiteSpace(path))
            throw new UserError($"{option} is empty: name the file to write", ExitCodes.Usage);
        if (path.Contains('\0'))
            throw new UserError($"{option} {Passthru.Shown.Value(path)}: a file name cannot hold a NUL character", ExitCodes.Usage);
        var full = Path.GetFullPath(path);
        string target = full;
        try
        {
            // A symlink (or a chain) is written through: its final target is the file, created if it does not exist.
            if (NativeFiles.ReadLink(full) is not null && File.ResolveLinkTarget(full, returnFinalTarget: true) is { } final) target = final.FullName;
        }
        catch (IOException e)
        {
            throw new UserError($"{option} {Passthru.Shown.Value(path)}: {Passthru.Shown.Error(e)} (a symlink loop?)", ExitCodes.Usage);
        }
        catch (UnauthorizedAccessException)
        {
            throw new UserError($"{option} {Passthru.Shown.Value(path)}: permission denied reading the link", ExitCodes.Usage);
        }
        var kind = NativeFiles.KindOf(target);
        switch (kind)
        {
            case NativeFiles.FileKind.Missing:
                var dir = Path.GetDirectoryName(target);
                if (dir is null || NativeFiles.KindOf(dir) != NativeFiles.FileKind.Directory)
                    throw new UserError($"{option} {Passthru.Shown.Value(path)}: the directory {Passthru.Shown.Value(dir ?? target)} does not exist", ExitCodes.Usage);
                break;
            case NativeFiles.FileKind.Directory:
                throw new UserError($"{option} {Passthru.Shown.Value(path)} is a directory: name a file (e.g. {Passthru.Shown.Value(Path.Combine(path, "vm.out"))})", ExitCodes.Usage);
            case NativeFiles.FileKind.Regular or NativeFiles.FileKind.CharacterDevice or NativeFiles.FileKind.Fifo:
                break;
            default:
                throw new UserError($"{option} {Passthru.Shown.Value(path)} is {NativeFiles.Describe(kind)}, not a file: Passthru writes only regular files, character devices and FIFOs", ExitCodes.Usage);
        }
        return (target, kind);
    }

}
