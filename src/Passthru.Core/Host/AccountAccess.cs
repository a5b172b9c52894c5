namespace Passthru.Host;

/// <summary>
/// Whether an account may open a file, decided from the owners and modes of the file and of every directory above it,
/// as the kernel decides for a process running as that account (POSIX ACLs, which Debian does not set by default,
/// are not read). Asked before anything is bound: QEMU running as its own user must be able to read the kernel,
/// modules, ISO and ROM files, and to write its disks, or it fails after the devices are already on vfio-pci.
/// </summary>
public static class AccountAccess
{
    /// <summary>Null when <paramref name="account"/> can open <paramref name="path"/> (for writing too with <paramref name="write"/>); otherwise why not, in words.</summary>
    public static string? Denied(string path, Account account, bool write)
    {
        if (account.Uid == 0) return null;
        var real = NativeFiles.RealPath(path);
        if (real is null) return null; // missing: the caller's own check says so, in its words
        // Every directory on the way must be searchable (x), then the file readable (r), and writable (w) for a disk.
        var dir = "/";
        foreach (var part in real.Split('/', StringSplitOptions.RemoveEmptyEntries).SkipLast(1))
        {
            if (Missing(dir, account, 1) is string why) return $"the directory {dir} {why}";
            dir = dir == "/" ? "/" + part : dir + "/" + part;
        }
        if (Missing(dir, account, 1) is string last) return $"the directory {dir} {last}";
        return Missing(real, account, write ? 6u : 4u) is string denied ? $"{real} {denied}" : null;
    }

    /// <summary>Null when the bits <paramref name="wanted"/> (4 r, 2 w, 1 x) are granted; otherwise what the owner and mode are.</summary>
    private static string? Missing(string path, Account account, uint wanted)
    {
        if (NativeFiles.Owner(path) is not var (uid, gid, mode)) return "does not exist";
        uint granted = uid == account.Uid ? mode >> 6 & 7
            : gid == account.Gid || account.Groups.Contains((int)gid) ? mode >> 3 & 7
            : mode & 7;
        if ((granted & wanted) == wanted) return null;
        var need = (wanted & 4) != 0 ? (wanted & 2) != 0 ? "readable and writable" : "readable" : "searchable";
        return $"is not {need} by {account.Name} (owner {uid}:{gid}, mode {Convert.ToString(mode, 8).PadLeft(4, '0')})";
    }
}
