namespace Passthru.Host;

/// <summary>
/// Replaces a file so that readers see the old or the new content, never a mix, even across a crash: a temporary
/// file beside it, fsynced, then renamed over it.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, ReadOnlySpan<byte> content, UnixFileMode mode)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        NativeFiles.ReplaceFile(path, content, mode);
    }
}
