namespace Passthru.Host;

/// <summary>A user account as /etc/passwd and /etc/group give it: what QEMU runs as, and what it may open.</summary>
public sealed record Account(string Name, int Uid, int Gid, IReadOnlyList<int> Groups)
{
    /// <summary>uid:gid, as `ps -o uid,gid` and `ls -n` show it.</summary>
    public string Ids => $"{Uid}:{Gid}";
}

/// <summary>
/// The host's users and groups, read from its /etc/passwd and /etc/group under the root path. System accounts (which
/// Passthru's QEMU user is, like libvirt's) live there even where other users come from a directory service.
/// </summary>
public static class Accounts
{
    /// <summary>The account Passthru's QEMU runs as unless told otherwise: created by the Debian package, or on first use.</summary>
    public const string DefaultQemuUser = "passthru-qemu";

    public static Account? Find(HostRoot host, string name)
    {
        foreach (var fields in Entries(host, "etc/passwd"))
        {
            if (fields.Length < 4 || fields[0] != name) continue;
            if (!int.TryParse(fields[2], out var uid) || !int.TryParse(fields[3], out var gid)) return null;
            // Loops, not Where().Select(): see Entries.
            var groups = new List<int>();
            foreach (var g in Entries(host, "etc/group"))
                if (g.Length >= 4 && g[3].Split(',').Contains(name) && int.TryParse(g[2], System.Globalization.CultureInfo.InvariantCulture, out var id)
                    && id != gid && !groups.Contains(id))
                    groups.Add(id);
            return new Account(name, uid, gid, groups);
        }
        return null;
    }

    /// <summary>A group's id by name (e.g. kvm, which owns /dev/kvm); null when there is none.</summary>
    public static int? GroupId(HostRoot host, string name) =>
        Entries(host, "etc/group").FirstOrDefault(g => g.Length >= 3 && g[0] == name) is { } g && int.TryParse(g[2], out var id) ? id : null;

    /// <summary>The name of a group id, for messages (the number itself when it has none).</summary>
    public static string GroupName(HostRoot host, int gid) =>
        Entries(host, "etc/group").FirstOrDefault(g => g.Length >= 3 && g[2] == gid.ToString(System.Globalization.CultureInfo.InvariantCulture))?[0] ?? gid.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The name of a user id, for messages (the number itself when it has none).</summary>
    public static string UserName(HostRoot host, int uid) =>
        Entries(host, "etc/passwd").FirstOrDefault(g => g.Length >= 3 && g[2] == uid.ToString(System.Globalization.CultureInfo.InvariantCulture))?[0] ?? uid.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// How a system package makes its daemon's user (Debian's adduser --system conventions, with useradd, which every
    /// Debian has): a system uid, its own group, no home, no login shell.
    /// </summary>
    public static IReadOnlyList<string> CreateCommand(string name) =>
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
         "--comment", "Passthru QEMU guests", name];

    /// <summary>Names useradd accepts and a user can type: lower-case letters, digits, '-', '_', starting with a letter or '_'.</summary>
    public static bool IsValidName(string name) =>
        name is { Length: > 0 and <= 32 } && (char.IsAsciiLetterLower(name[0]) || name[0] == '_')
        && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_');

    // An iterator of its own, not Where().Select(): Select on LINQ's iterators is a generic virtual method, which the
    // static binary resolves through its type loader on first use (about a millisecond under emulation).
    private static IEnumerable<string[]> Entries(HostRoot host, string file)
    {
        foreach (var line in (host.ReadText(file) ?? "").Split('\n'))
            if (line.Length > 0 && line[0] != '#') yield return line.Split(':');
    }
}
