using Passthru.Binding;
using Passthru.Host;
using Passthru.Tests.Support;

namespace Passthru.Tests.Host;

/// <summary>The libc calls behind HostRoot, the journal and the lock, against what .NET's own file APIs say.</summary>
public sealed class NativeFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("passthru-native-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_directory_lists_as_dotnet_lists_it_without_dot_entries()
    {
        foreach (var name in new[] { "b", "a", ".hidden", "ü-utf8", "0000:00:02.0" }) File.WriteAllText(Path.Combine(_dir, name), "");
        Directory.CreateDirectory(Path.Combine(_dir, "sub"));
        var expected = Directory.GetFileSystemEntries(_dir).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, NativeFiles.ListDirectory(_dir)!.Order(StringComparer.Ordinal).ToList());
        // HostRoot.List: sorted ordinally, the capture's dot files left out.
        Assert.Equal(["0000:00:02.0", "a", "b", "sub", "ü-utf8"], new HostRoot(_dir).List("."));
        Assert.Null(NativeFiles.ListDirectory(Path.Combine(_dir, "missing")));
        Assert.Empty(new HostRoot(_dir).List("missing"));
        Assert.Empty(new HostRoot(_dir).List("a"));   // a file, not a directory
    }

    [Fact]
    public void Whole_files_read_as_dotnet_reads_them_large_ones_and_procfs_ones_too()
    {
        Assert.Equal(File.ReadAllBytes(Repo.SystemPciIds), NativeFiles.ReadAll(Repo.SystemPciIds));   // megabytes: the buffer grows
        var status = NativeFiles.ReadAll("/proc/self/status");   // procfs reports size 0: read to the end regardless
        Assert.NotNull(status);
        Assert.Contains("Pid:", System.Text.Encoding.UTF8.GetString(status));
        File.WriteAllBytes(Path.Combine(_dir, "empty"), []);
        Assert.Equal([], NativeFiles.ReadAll(Path.Combine(_dir, "empty"))!);
        Assert.Null(NativeFiles.ReadAll(Path.Combine(_dir, "missing")));
        Assert.Null(new HostRoot(_dir).ReadText("missing"));
        // Around the stack page the read starts in (4 KiB) and the first heap buffer it moves to (16 KiB).
        foreach (var size in new[] { 1, 4095, 4096, 4097, 16384, 16385, 40000 })
        {
            var bytes = Enumerable.Range(0, size).Select(i => (byte)(i * 7)).ToArray();
            File.WriteAllBytes(Path.Combine(_dir, $"size-{size}"), bytes);
            Assert.Equal(bytes, NativeFiles.ReadAll(Path.Combine(_dir, $"size-{size}")));
        }
        File.WriteAllBytes(Path.Combine(_dir, "bom"), [0xef, 0xbb, 0xbf, (byte)'x']);
        Assert.Equal(File.ReadAllText(Path.Combine(_dir, "bom")), new HostRoot(_dir).ReadText("bom"));
    }

    [Fact]
    public void A_bounded_read_stops_at_its_bound_as_the_handle_read_it_replaced_did()
    {
        var bytes = Enumerable.Range(0, 10000).Select(i => (byte)(i * 13)).ToArray();
        File.WriteAllBytes(Path.Combine(_dir, "config"), bytes);
        var host = new HostRoot(_dir);
        // A config space's header, a firmware table's head, a setup file: at most the bound, all of a shorter file.
        foreach (var max in new[] { 0, 1, 64, 4095, 4096, 4097, 9999, 10000, 10001, 1 << 20 })
            Assert.Equal(bytes.AsSpan(0, Math.Min(max, bytes.Length)).ToArray(), host.ReadBytes("config", max));
        Assert.Null(host.ReadBytes("missing", 64));
        Assert.Null(host.ReadBytes(".", 64));   // a directory reads as nothing, as File.OpenHandle refused it
    }

    [Fact]
    public void A_capped_read_gives_a_regular_file_whole_null_above_the_cap_and_dotnets_exceptions()
    {
        var path = Path.Combine(_dir, "state.json");
        File.WriteAllText(path, "{\"version\": 1}");
        Assert.Equal(File.ReadAllBytes(path), NativeFiles.ReadCapped(path, 4 << 20));
        Assert.Equal(File.ReadAllBytes(path), NativeFiles.ReadCapped(path, 14));   // exactly the cap
        Assert.Null(NativeFiles.ReadCapped(path, 13));
        Assert.Equal(File.ReadAllBytes(Repo.SystemPciIds), NativeFiles.ReadCapped(Repo.SystemPciIds, 64L << 20));
        File.WriteAllBytes(Path.Combine(_dir, "empty"), []);
        Assert.Equal([], NativeFiles.ReadCapped(Path.Combine(_dir, "empty"), 10)!);
        // StateFile and InputFile word these (and UnauthorizedAccessException, which root cannot meet here).
        Assert.Throws<FileNotFoundException>(() => NativeFiles.ReadCapped(Path.Combine(_dir, "missing"), 10));
        Assert.ThrowsAny<IOException>(() => NativeFiles.ReadCapped(_dir, 1 << 20));
    }

    [Fact]
    public async Task A_state_file_that_goes_away_while_it_is_read_reads_as_none_never_as_an_io_error()
    {
        // `guests` reads every guest's record while runs that end delete theirs: a record seen by the lstat and gone
        // by the open is no record, not "a damaged file system". Another thread creates and deletes it meanwhile.
        var path = Path.Combine(_dir, "g.json");
        using var stop = new CancellationTokenSource();
        using var started = new SemaphoreSlim(0);
        var churn = Task.Run(() =>
        {
            for (bool first = true; !stop.IsCancellationRequested; first = false)
            {
                File.WriteAllText(path, "{}");
                if (first) started.Release();
                File.Delete(path);
            }
        });
        await started.WaitAsync();
        try
        {
            // Until both outcomes were seen many times (a bound only for a churn that stopped).
            int seen = 0, none = 0;
            for (int i = 0; (seen < 100 || none < 100) && i < 2_000_000 && !churn.IsCompleted; i++)
                if (StateFile.Read(path, "the guest record", "test") is { } bytes) { Assert.True(bytes is [] or [(byte)'{', (byte)'}']); seen++; }
                else none++;
            Assert.True(seen >= 100 && none >= 100, $"the race was not run: {seen} read, {none} missing");
        }
        finally { stop.Cancel(); await churn; }
    }

    [Fact]
    public void The_kind_of_a_path_itself_names_a_symlink_where_the_followed_kind_names_its_target()
    {
        File.WriteAllText(Path.Combine(_dir, "file"), "");
        File.CreateSymbolicLink(Path.Combine(_dir, "link"), Path.Combine(_dir, "file"));
        File.CreateSymbolicLink(Path.Combine(_dir, "dangling"), Path.Combine(_dir, "missing"));
        Assert.Equal(NativeFiles.FileKind.Regular, NativeFiles.LinkKindOf(Path.Combine(_dir, "file")));
        Assert.Equal(NativeFiles.FileKind.Directory, NativeFiles.LinkKindOf(_dir));
        Assert.Equal(NativeFiles.FileKind.Symlink, NativeFiles.LinkKindOf(Path.Combine(_dir, "link")));
        Assert.Equal(NativeFiles.FileKind.Symlink, NativeFiles.LinkKindOf(Path.Combine(_dir, "dangling")));
        Assert.Equal(NativeFiles.FileKind.Missing, NativeFiles.LinkKindOf(Path.Combine(_dir, "missing")));
        Assert.Equal(NativeFiles.FileKind.Regular, NativeFiles.KindOf(Path.Combine(_dir, "link")));
        Assert.Equal(NativeFiles.FileKind.Missing, NativeFiles.KindOf(Path.Combine(_dir, "dangling")));
    }

    [Fact]
    public void A_replaced_file_has_the_new_content_the_mode_asked_for_and_no_temporary_left()
    {
        var path = Path.Combine(_dir, "state.json");
        File.WriteAllText(path, "old, and longer than the new content");
        NativeFiles.ReplaceFile(path, "new"u8, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Equal("new", File.ReadAllText(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal(["state.json"], Directory.GetFiles(_dir).Select(Path.GetFileName));
        var error = Assert.Throws<IOException>(() => NativeFiles.ReplaceFile(Path.Combine(_dir, "missing", "f"), "x"u8, UnixFileMode.UserRead));
        Assert.Contains("No such file or directory", error.Message);
        // The mode asked for, not narrowed by the umask (setup's configuration files are 0644 whatever root's umask).
        var shared = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;
        NativeFiles.ReplaceFile(path, "shared"u8, shared);
        Assert.Equal(shared, File.GetUnixFileMode(path));
    }

    [Fact]
    public void A_replacement_that_fails_leaves_no_temporary_file_and_the_old_content()
    {
        // rename(2) cannot put a file over a non-empty directory: the temporary file, written and fsynced, goes again.
        Directory.CreateDirectory(Path.Combine(_dir, "taken", "inside"));
        Assert.Throws<IOException>(() => AtomicFile.Write(Path.Combine(_dir, "taken"), "new"u8, UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.Equal(["taken"], Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName));
        // Staged, then discarded: nothing left either; staged, then committed: the content, no temporary file.
        var path = Path.Combine(_dir, "config");
        File.WriteAllText(path, "old");
        AtomicFile.Discard(AtomicFile.Stage(path, "dropped"u8, UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.Equal("old", File.ReadAllText(path));
        var staged = AtomicFile.Stage(path, "new"u8, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Equal("old", File.ReadAllText(path));
        AtomicFile.Commit(staged, path);
        Assert.Equal("new", File.ReadAllText(path));
        Assert.Equal(["config", "taken"], Directory.GetFileSystemEntries(_dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_lock_is_exclusive_until_released()
    {
        var path = Path.Combine(_dir, "lock");
        using (var first = NativeFiles.TryLock(path))
        {
            Assert.NotNull(first);
            Assert.Null(NativeFiles.TryLock(path));   // flock: a second open file description is refused, same process or not
            var busy = Assert.Throws<UserError>(() => StateLock.Acquire(_dir, TimeSpan.FromMilliseconds(300)));
            Assert.StartsWith("another passthru is changing devices", busy.Message);
        }
        using var again = StateLock.Acquire(_dir, TimeSpan.Zero);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path) & ~(UnixFileMode.GroupRead | UnixFileMode.OtherRead));
    }

    [Fact]
    public void The_QMP_listening_socket_is_a_0600_socket_a_child_inherits_and_own_files_are_not()
    {
        var path = Path.Combine(_dir, "g.qmp");
        using (var listener = NativeFiles.ListenUnix(path, 0b110_000_000))
        {
            Assert.Equal(NativeFiles.FileKind.Socket, NativeFiles.KindOf(path));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            int fd = (int)listener.DangerousGetHandle();
            Assert.True(NativeFiles.IsInherited(fd));   // QEMU gets it across exec
            using var client = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            client.Connect(new System.Net.Sockets.UnixDomainSocketEndPoint(path)); // it listens (the backlog takes it)
        }
        Assert.True(File.Exists(path));                   // closing leaves the file: the guest's record takes it away
        using (var own = File.OpenHandle(Path.Combine(_dir, "own"), FileMode.Create, FileAccess.Write))
            Assert.False(NativeFiles.IsInherited((int)own.DangerousGetHandle())); // close-on-exec, as all of Passthru's
        Assert.False(NativeFiles.IsInherited(12345));      // not open at all
        Assert.Throws<IOException>(() => NativeFiles.ListenUnix(Path.Combine(_dir, new string('s', 120)), 0b110_000_000));
        Assert.Throws<IOException>(() => NativeFiles.ListenUnix(path, 0b110_000_000)); // the name is taken
    }
}
