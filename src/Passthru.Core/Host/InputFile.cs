namespace Passthru.Host;

/// <summary>
/// A file the user names for Passthru to read (a menu.lst, a profile, a console script, pci.ids, a kernel): it must be
/// a regular file, or a FIFO or device would hang the read or never end it (`--pci-ids /dev/zero` grew to 4 GB), and
/// its text is read up to a size no real one comes near. Every refusal is one line in our own words naming the option.
/// </summary>
public static class InputFile
{
    /// <summary>pci.ids is about 1.4 MB, a Barrelfish menu or a profile a few KB: 64 MiB is damage, not input.</summary>
    public const long MaxBytes = 64L << 20;

    /// <summary>The full path of a name the user gave, refusing what cannot be a file name at all (empty, a NUL).</summary>
    public static string FullPath(string option, string value)
    {
        if (string.IsNullOrWhiteSpace(value)) throw new UserError($"{option} is empty: name a file", ExitCodes.Usage);
        if (value.Contains('\0')) throw new UserError($"{option} {Shown.Value(value)}: a file name cannot hold a NUL character", ExitCodes.Usage);
        return Path.GetFullPath(value);
    }

    /// <summary>Whether anything is there (following symlinks).</summary>
    public static bool Exists(string path) => NativeFiles.KindOf(path) != NativeFiles.FileKind.Missing;

    /// <summary>Refuses a file that is missing or not a regular file (block devices too, unless <paramref name="blockDevice"/>: a disk may be one).</summary>
    public static void Require(string option, string path, bool blockDevice = false)
    {
        var kind = NativeFiles.KindOf(path);
        if (kind == NativeFiles.FileKind.Missing) throw new UserError($"{Shown.Value(path)}: no such file", ExitCodes.Usage);
        if (kind == NativeFiles.FileKind.Regular || (blockDevice && kind == NativeFiles.FileKind.BlockDevice)) return;
        throw new UserError($"{option} {Shown.Value(path)} is {NativeFiles.Describe(kind)}, not a regular file", ExitCodes.Usage);
    }

    public static byte[] ReadBytes(string option, string path)
    {
        Require(option, path);
        try
        {
            return NativeFiles.ReadCapped(path, MaxBytes)
                ?? throw new UserError($"{option} {Shown.Value(path)} is {new FileInfo(path).Length} bytes: far larger than any such file", ExitCodes.Usage);
        }
        catch (UnauthorizedAccessException)
        {
            throw new UserError($"{option} {Shown.Value(path)}: permission denied", ExitCodes.Usage);
        }
        catch (IOException)
        {
            throw new UserError($"{option} {Shown.Value(path)}: cannot be read (an I/O error)", ExitCodes.Usage);
        }
    }

    /// <summary>The file's text (UTF-8; a byte order mark dropped, as File.ReadAllText does).</summary>
    public static string ReadText(string option, string path)
    {
        var bytes = ReadBytes(option, path);
        var start = bytes is [0xef, 0xbb, 0xbf, ..] ? 3 : 0;
        return System.Text.Encoding.UTF8.GetString(bytes, start, bytes.Length - start);
    }

}
