using System.Text.Json;
using Passthru.Host;

namespace Passthru.Binding;

/// <summary>A device a running guest holds: on which of its ports, under which QEMU id, since its start or attached later.</summary>
public sealed class GuestDevice
{
    public string Address { get; set; } = "";
    /// <summary>QEMU's id for the vfio-pci device (device_del names it).</summary>
    public string Id { get; set; } = "";
    /// <summary>The id of the pcie-root-port it sits behind ("pci.0" on a machine without PCIe ports).</summary>
    public string Port { get; set; } = "";
    public bool Attached { get; set; }
    /// <summary>The functions the attach moved to vfio-pci for it (its IOMMU group's, with --group): given back on detach.</summary>
    public List<string> Bound { get; set; } = [];

    /// <summary>The functions that go back with this device: those its attach bound, or itself when it came with the guest's start (its run gives those back).</summary>
    public IEnumerable<string> Returns => Attached ? Bound : [Address];
}

/// <summary>
/// A guest `passthru run` started, kept under the state directory (guests/NAME.json beside the binding journal)
/// while it runs: attach and detach find its control socket and free ports here, `guests` lists it, and when it ends
/// every device it holds (from the start or attached later) is given back.
/// </summary>
public sealed class GuestRecord
{
    /// <summary>The record's format: 1 (records written before it was named have none, and are 1 too).</summary>
    public int Version { get; set; } = 1;
    public string Name { get; set; } = "";
    /// <summary>The `passthru run` that watches the guest and gives its devices back when it ends.</summary>
    public int RunnerPid { get; set; }
    /// <summary>QEMU's pid once it started (0 before).</summary>
    public int QemuPid { get; set; }
    /// <summary>QEMU's QMP socket.</summary>
    public string Qmp { get; set; } = "";
    public string Started { get; set; } = "";
    public string Machine { get; set; } = "";
    /// <summary>The guest's hot-plug-capable root ports, in slot order: those of its start devices, then the spare ones.</summary>
    public List<string> Ports { get; set; } = [];
    public List<GuestDevice> Devices { get; set; } = [];
    /// <summary>The functions `run` itself moved to vfio-pci before QEMU started: given back when the guest ends.</summary>
    public List<string> Bound { get; set; } = [];
    /// <summary>The unprivileged account QEMU runs as (null: as root, with --as-root): attach hands new group nodes to it.</summary>
    public string? User { get; set; }
    public int? Uid { get; set; }
    public int? Gid { get; set; }

    public IEnumerable<string> FreePorts => Ports.Where(p => Devices.All(d => d.Port != p));
}

/// <summary>The running guests' records: one file each, written atomically; changes happen under the state lock.</summary>
public static class GuestRecords
{
    public const string Folder = "guests";

    public static string Directory(string stateDir) => System.IO.Path.Combine(stateDir, Folder);
    public static string PathOf(string stateDir, string name) => System.IO.Path.Combine(Directory(stateDir), name + ".json");
    public static string SocketOf(string stateDir, string name) => System.IO.Path.Combine(Directory(stateDir), name + ".qmp");

    /// <summary>Names a user can type and QEMU accepts as -name: letters, digits, '-', '_', '.', starting with a letter or digit.</summary>
    public static void ValidateName(string name)
    {
        if (!IsValidName(name))
            throw new UserError($"--name '{Shown.Value(name)}': use up to 64 letters, digits, '-', '_' or '.', starting with a letter or digit", ExitCodes.Usage);
    }

    private static bool IsValidName(string? name) =>
        name is { Length: > 0 and <= 64 } && char.IsAsciiLetterOrDigit(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    public static GuestRecord? Load(string stateDir, string name)
    {
        var path = PathOf(stateDir, name);
        const string why = "passthru restore gives its devices back";
        var bytes = StateFile.Read(path, "the guest record", why);
        if (bytes is null) return null;
        try
        {
            using var document = StateFile.Document(bytes);
            var record = Read(document);
            Check(record, name);
            return record;
        }
        catch (StateDamage e)
        {
            throw new UserError($"the guest record {path} is damaged ({e.Message}): remove it ({why})");
        }
    }

    /// <summary>
    /// A record's names become file names that `guests` deletes and addresses that restore acts on: its name must be
    /// the file's own (a record naming "../../x" would delete files outside the state directory), and every list is
    /// there and well formed.
    /// </summary>
    private static void Check(GuestRecord r, string fileName)
    {
        if (r.Version != 1) throw new StateDamage($"version {r.Version}, which this passthru does not know (a newer one wrote it?)");
        if (r.Name != fileName || !IsValidName(r.Name))
            throw new StateDamage($"its name '{Shown.Value(r.Name ?? "null")}' is not its file's name '{Shown.Value(fileName)}'");
        if (r.RunnerPid < 0 || r.QemuPid < 0) throw new StateDamage("a negative pid");
        if (r.Qmp is null || (r.Qmp.Length > 0 && Path.GetFileName(r.Qmp) != r.Name + ".qmp"))
            throw new StateDamage($"its control socket '{Shown.Value(r.Qmp ?? "null")}' is not {r.Name}.qmp");
        r.Started ??= ""; r.Machine ??= "";
        if (r.Ports is null || r.Devices is null || r.Bound is null || r.Ports.Any(p => p is null) || r.Devices.Any(d => d is null))
            throw new StateDamage("a list (ports, devices or bound) is missing or holds null");
        foreach (var a in r.Bound.Concat(r.Devices.SelectMany(d => d.Bound ?? throw new StateDamage("a device's bound list is missing")).Concat(r.Devices.Select(d => d.Address))))
            if (a is null || !Passthru.Pci.PciAddress.TryParse(a, out _)) throw new StateDamage($"'{Shown.Value(a ?? "null")}' is not a PCI address");
        foreach (var d in r.Devices)
            if (d.Id is null || d.Port is null) throw new StateDamage($"device {d.Address} has no QEMU id or port");
        if ((r.User is null) != (r.Uid is null) || (r.Uid is null) != (r.Gid is null) || r.Uid is <= 0 || r.Gid is < 0 || (r.User is not null && !Accounts.IsValidName(r.User)))
            throw new StateDamage("its QEMU user (user, uid, gid) is incomplete or not an unprivileged account");
    }

    public static IReadOnlyList<GuestRecord> All(string stateDir)
    {
        var dir = Directory(stateDir);
        if (!System.IO.Directory.Exists(dir)) return [];
        // Every entry, not only files: a directory (or anything else) in a record's place is refused by Load, not
        // passed over as if that guest held nothing.
        // A loop, not Order().Select(): Select on LINQ's own iterators is a generic virtual method, which the static
        // binary resolves through its type loader on first use (~1 ms under emulation, in every command that looks).
        // Array.Sort, not List.Sort: this was the one List<T>.Sort of a reference type in the program, and the static
        // binary compiles it shared for all of them, so every List<T> of a class carried a sort helper and a comparer,
        // ~220 static bases each command allocated at start (bench/README.md, the thirteenth pass).
        var files = System.IO.Directory.EnumerateFileSystemEntries(dir, "*.json").ToArray();
        Array.Sort(files, StringComparer.Ordinal);
        var records = new List<GuestRecord>(files.Length);
        foreach (var f in files)
            if (Load(stateDir, System.IO.Path.GetFileNameWithoutExtension(f)) is { } record) records.Add(record);
        return records;
    }

    // The fields every record has are required (one missing is damage, not an empty list: "bound" missing would give
    // nothing back when the guest ends), and unknown ones refused (see StateObject). Records written before this
    // release also hold "free_ports", a copy of what FreePorts works out, which is read past: the ports and devices say it.
    private static GuestRecord Read(JsonDocument document)
    {
        var r = StateObject.Root(document, "version", "name", "runner_pid", "qemu_pid", "qmp", "started", "machine", "ports", "devices", "bound",
            "user", "uid", "gid", "free_ports");
        var record = new GuestRecord
        {
            Version = r.Int("version", nullable: false) ?? 1,
            Name = r.String("name", required: true)!,
            RunnerPid = r.Int("runner_pid", required: true, nullable: false)!.Value,
            QemuPid = r.Int("qemu_pid", required: true, nullable: false)!.Value,
            Qmp = r.String("qmp", required: true)!,
            Started = r.String("started")!,
            Machine = r.String("machine")!,
            Ports = r.Strings("ports", required: true)!,
            Devices = r.Objects("devices", true, "address", "id", "port", "attached", "bound")?.Select(d => d is not { } device ? null! : new GuestDevice
            {
                Address = device.String("address", required: true)!,
                Id = device.String("id", required: true)!,
                Port = device.String("port", required: true)!,
                Attached = device.Bool("attached", nullable: false) ?? false,
                Bound = device.Strings("bound", required: true)!,
            }).ToList()!,
            Bound = r.Strings("bound", required: true)!,
            User = r.String("user"),
            Uid = r.Int("uid"),
            Gid = r.Int("gid"),
        };
        r.Strings("free_ports");
        return record;
    }

    private static byte[] Write(GuestRecord record) => StateJsonWriter.Write(json =>
    {
        json.WriteStartObject();
        json.WriteNumber("version", record.Version);
        json.WriteString("name", record.Name);
        json.WriteNumber("runner_pid", record.RunnerPid);
        json.WriteNumber("qemu_pid", record.QemuPid);
        json.WriteString("qmp", record.Qmp);
        json.WriteString("started", record.Started);
        json.WriteString("machine", record.Machine);
        json.Strings("ports", record.Ports);
        json.WriteStartArray("devices");
        foreach (var d in record.Devices)
        {
            json.WriteStartObject();
            json.WriteString("address", d.Address);
            json.WriteString("id", d.Id);
            json.WriteString("port", d.Port);
            json.WriteBoolean("attached", d.Attached);
            json.Strings("bound", d.Bound);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.Strings("bound", record.Bound);
        if (record.User is not null) json.WriteString("user", record.User);
        if (record.Uid is int uid) json.WriteNumber("uid", uid);
        if (record.Gid is int gid) json.WriteNumber("gid", gid);
        json.WriteEndObject();
    });

    public static void Save(string stateDir, GuestRecord record) =>
        AtomicFile.Write(PathOf(stateDir, record.Name), Write(record), UnixFileMode.UserRead | UnixFileMode.UserWrite);

    /// <summary>Takes a name for a new guest: fails when one by that name runs; a record left by a guest that is gone is the caller's to clean first.</summary>
    public static bool TryReserve(string stateDir, GuestRecord record)
    {
        System.IO.Directory.CreateDirectory(Directory(stateDir));
        // Whole or not at all: a run killed while reserving must not leave an empty record that every restore refuses.
        return AtomicFile.Create(PathOf(stateDir, record.Name), Write(record), UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    /// <summary>A guest's name, its control socket (null: it runs without one) and why not, when not.</summary>
    public sealed record Naming(string Name, string? Socket, string? Note);

    /// <summary>
    /// Names a guest about to start: the name given, or the first free "STEM-N". With <paramref name="reserve"/> a
    /// chosen name is taken at once (runs started together must not pick the same one; the run's record replaces the
    /// reservation), and a given one is checked for a writable place. Without a writable state directory (not root)
    /// the guest runs without a control socket, and the note says so.
    /// </summary>
    public static Naming Name(string stateDir, string? given, string stem, bool reserve)
    {
        if (given is not null) ValidateName(given);
        var name = given ?? FreeName(stateDir, stem, reserve: false);
        var socket = SocketOf(stateDir, name);
        // sun_path holds 108 bytes with its terminating NUL.
        if (System.Text.Encoding.UTF8.GetByteCount(socket) > 107)
            throw new UserError($"the guest's control socket {socket} is longer than a Unix socket path may be (107 bytes): give a shorter --state-dir or --name", ExitCodes.Usage);
        if (!reserve) return new Naming(name, socket, null);
        try
        {
            System.IO.Directory.CreateDirectory(Directory(stateDir));
            if (given is null) name = FreeName(stateDir, stem, reserve: true);
            else
            {
                var probe = PathOf(stateDir, name) + $".probe-{Environment.ProcessId}";
                File.WriteAllText(probe, "");
                File.Delete(probe);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // (Not the exception's text: a static binary carries resource keys, not messages.)
            return new Naming(name, null, $"no control socket for attach/detach: {Directory(stateDir)} is not writable here (run as root for hot-plug)");
        }
        return new Naming(name, SocketOf(stateDir, name), null);
    }

    private static string FreeName(string stateDir, string stem, bool reserve)
    {
        for (int n = 1; ; n++)
        {
            var name = $"{stem}-{n}";
            if (reserve ? TryReserve(stateDir, Reservation(name)) : !File.Exists(PathOf(stateDir, name))) return name;
        }
    }

    /// <summary>A name taken by this process before its guest is planned (its run replaces it with the real record).</summary>
    public static GuestRecord Reservation(string name) => new() { Name = name, RunnerPid = Environment.ProcessId };

    public static bool IsOwnReservation(GuestRecord r) => r.RunnerPid == Environment.ProcessId && r.QemuPid == 0 && r.Qmp.Length == 0;

    /// <summary>Drops this process's reservation of a name (a run that failed before it started).</summary>
    public static void ForgetReservation(string stateDir, string name)
    {
        try
        {
            if (Load(stateDir, name) is { } r && IsOwnReservation(r)) Remove(stateDir, name);
        }
        catch (UserError) { }
    }

    public static void Remove(string stateDir, string name)
    {
        if (!IsValidName(name)) throw new ArgumentException($"not a guest name: {name}", nameof(name));
        File.Delete(SocketOf(stateDir, name));
        File.Delete(SocketOf(stateDir, name) + ".new"); // made for an unprivileged QEMU that never started
        AtomicFile.Delete(PathOf(stateDir, name));
    }

    /// <summary>Whether a pid is alive and still the process the record means (pids are reused): its command line names the socket.</summary>
    /// <summary>
    /// Whether the record's QEMU runs: its pid's command line names the guest's control socket (as root, QEMU creates it
    /// from -qmp unix:PATH) or the guest's <see cref="Uuid"/> (unprivileged, QEMU is given the socket Passthru listens on).
    /// </summary>
    public static bool IsQemuAlive(HostRoot host, GuestRecord r) =>
        r.QemuPid > 0 && (CmdlineContains(host, r.QemuPid, r.Qmp) || CmdlineContains(host, r.QemuPid, Uuid(r.Qmp)));

    /// <summary>
    /// The guest's SMBIOS UUID (QEMU's -uuid), made from its control socket's path: unique among running guests, and
    /// how a record knows its QEMU when the command line holds only the socket's descriptor number.
    /// </summary>
    public static string Uuid(string qmp)
    {
        // FNV-1a, twice with different offsets, for 16 bytes: not System.Security.Cryptography, whose OpenSSL a static
        // binary would have to dlopen (a second libc in the process: it corrupted memory). Uniqueness among this
        // host's guest sockets is all it needs.
        var bytes = System.Text.Encoding.UTF8.GetBytes("passthru-guest:" + qmp);
        var hash = new byte[16];
        ulong a = 14695981039346656037UL, b = 0x6c62272e07bb0142UL;
        foreach (var x in bytes) { a = (a ^ x) * 1099511628211UL; b = (b ^ x) * 1099511628211UL; }
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(hash, a);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(hash.AsSpan(8), b);
        hash[6] = (byte)(hash[6] & 0x0F | 0x80); // version 8 (vendor-specific), RFC 9562
        hash[8] = (byte)(hash[8] & 0x3F | 0x80); // variant 10
        return new Guid(hash.AsSpan(0, 16), bigEndian: true).ToString();
    }

    public static bool IsRunnerAlive(HostRoot host, GuestRecord r) => r.RunnerPid > 0 && CmdlineContains(host, r.RunnerPid, "run");

    /// <summary>Whether a record is stale: neither its QEMU nor the run that watched it is alive.</summary>
    public static bool IsGone(HostRoot host, GuestRecord g) => !IsQemuAlive(host, g) && !IsRunnerAlive(host, g);

    private static bool CmdlineContains(HostRoot host, int pid, string text)
    {
        try { return File.ReadAllText(host.Path($"proc/{pid}/cmdline")).Split('\0').Any(a => a.Contains(text, StringComparison.Ordinal)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }
}
