namespace Passthru.Host;

/// <summary>
/// Replaces a file so that readers see the old or the new content, never a mix, even across a crash: a temporary
/// file beside it, written with its final mode and fsynced, renamed over it, then the directory fsynced so the rename
/// is on disk too. If a step fails the temporary file is removed. The bind journal, guest records and setup's
/// configuration files and record all write through here.
/// </summary>
public static class AtomicFile
{
    /// <summary>Creates the missing parent directories, then replaces the file in one step.</summary>
    public static void Write(string path, ReadOnlySpan<byte> content, UnixFileMode mode)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        NativeFiles.ReplaceFile(path, content, mode);
    }

    /// <summary>
    /// The first half of <see cref="Write"/>, for changes of several files that must all be written before any is
    /// replaced: the new content in a temporary file beside <paramref name="path"/>, fsynced; returns its path.
    /// Nothing at <paramref name="path"/> changes until <see cref="Commit"/>; <see cref="Discard"/> drops it. The
    /// directory must exist (the caller creates it, and knows to remove it again).
    /// </summary>
    public static string Stage(string path, ReadOnlySpan<byte> content, UnixFileMode mode) =>
        NativeFiles.WriteTemporary(path, content, mode);

    /// <summary>Renames a staged file over <paramref name="path"/> and fsyncs the directory.</summary>
    public static void Commit(string staged, string path)
    {
        NativeFiles.Rename(staged, path);
        NativeFiles.SyncDirectory(Path.GetDirectoryName(path)!);
    }

    /// <summary>Removes a staged file that will not be committed.</summary>
    public static void Discard(string staged) => NativeFiles.Unlink(staged);

    /// <summary>Removes a file (nothing when it is missing) and fsyncs the directory, so the removal survives a crash.</summary>
    public static void Delete(string path)
    {
        File.Delete(path);
        NativeFiles.SyncDirectory(Path.GetDirectoryName(path)!);
    }
}
