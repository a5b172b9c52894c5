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
        var temp = NativeFiles.WriteTemporary(path, content, mode);
        try
        {
            BeforeRename.Value?.Invoke(path);
            NativeFiles.Rename(temp, path);
        }
        catch (IOException)
        {
            NativeFiles.Unlink(temp);
            throw;
        }
        NativeFiles.SyncDirectory(Path.GetDirectoryName(path)!);
    }

    /// <summary>
    /// Creates the file with its whole content in one step, only if nothing is there yet: the content written to a
    /// temporary file and fsynced, then linked under its name (link(2) fails when the name exists, as O_EXCL would,
    /// but the file appears whole: a kill mid-write leaves no empty or half record under the name). False when the
    /// name is taken. The directory must exist.
    /// </summary>
    public static bool Create(string path, ReadOnlySpan<byte> content, UnixFileMode mode)
    {
        // Its own temporary name: threads of one process may race for the same name.
        var temp = NativeFiles.WriteTemporary(path, content, mode, "-" + Guid.NewGuid().ToString("n")[..8]);
        try
        {
            BeforeRename.Value?.Invoke(path);
            if (!NativeFiles.Link(temp, path)) return false;
        }
        finally
        {
            NativeFiles.Unlink(temp);
        }
        NativeFiles.SyncDirectory(Path.GetDirectoryName(path)!);
        return true;
    }

    /// <summary>
    /// Tests' kill -9 between write and rename: called with the final path once the temporary file is written and
    /// fsynced, just before it is renamed (or linked) into place; a test throws from it to stop the save there, as
    /// a kill would (nothing after it runs, the temporary file stays). Internal and per async flow: null in
    /// production, and a test's hook sees only its own saves.
    /// </summary>
    internal static readonly AsyncLocal<Action<string>?> BeforeRename = new();

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
        BeforeRename.Value?.Invoke(path);
        NativeFiles.Rename(staged, path);
        NativeFiles.SyncDirectory(Path.GetDirectoryName(path)!);
    }

    /// <summary>Removes a staged file that will not be committed.</summary>
    public static void Discard(string staged) => NativeFiles.Unlink(staged);

    /// <summary>Removes a file (nothing when it is missing) and fsyncs the directory, so the removal survives a crash.</summary>
    public static void Delete(string path)
    {
        if (!File.Exists(path) && NativeFiles.ReadLink(path) is null) return;
        File.Delete(path);
        NativeFiles.SyncDirectory(Path.GetDirectoryName(path)!);
    }
}
