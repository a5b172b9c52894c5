using System.Text;
using System.Text.Json.Nodes;
using Passthru.Binding;
using Passthru.Host;
using Passthru.Hotplug;
using Passthru.Launch;
using Passthru.Pci;
using Passthru.Setup;

namespace Passthru.Fuzz;

/// <summary>
/// One harness per parser of bytes Passthru did not write itself (or wrote and may find damaged). AFL++ drives them
/// through SharpFuzz (Program.cs, scripts/fuzz.sh); tests/Passthru.Tests compiles this same file and replays every
/// corpus and regression input through it (FuzzCorpusTests), so CI checks what the fuzzer found.
///
/// The contract: a bad input yields a <see cref="UserError"/> of one line, or a documented null/empty result. Any
/// other exception escapes (AFL++ records a crash), as does a UserError whose message holds a control character
/// (a newline splits it, an ESC sequence drives the terminal: values are shown escaped); a hang is AFL++'s
/// timeout; unbounded memory is the GC heap limit scripts/fuzz.sh sets (an OutOfMemoryException).
/// </summary>
public static class FuzzTargets
{
    /// <summary>Target name to harness; the names are fuzz/corpus/NAME and fuzz/regressions/NAME.</summary>
    public static readonly IReadOnlyDictionary<string, Action<byte[]>> All = new SortedDictionary<string, Action<byte[]>>(StringComparer.Ordinal)
    {
        ["menu"] = Menu,
        ["profile"] = Profile,
        ["script"] = Script,
        ["pciids"] = PciIdsDatabase,
        ["journal"] = JournalFile,
        ["guest"] = GuestRecordFile,
        ["setup"] = SetupRecordFile,
        ["qmp"] = Qmp,
        ["qemu-failure"] = QemuStderr,
        ["iomem"] = Iomem,
        ["hostfacts"] = HostFactsFiles,
        ["config"] = ConfigSpace,
        ["sysfs"] = SysfsAttributes,
        ["values"] = Values,
        ["devicedb"] = DeviceDb,
        ["cpio"] = Cpio,
        ["rom"] = Rom,
    };

    /// <summary>Runs one input through a target, enforcing the contract; throws whatever breaks it.</summary>
    public static void Run(string target, byte[] input)
    {
        try { All[target](input); }
        catch (UserError e) when (IsOneLine(e.Message)) { }
        catch (UserError e) { throw new ContractBroken($"a UserError that is not one plain line: {Shown.Value(e.Message)}"); }
    }

    /// <summary>One line a terminal shows as written: no newline, carriage return, ESC or other control character (Shown.Value escapes them).</summary>
    private static bool IsOneLine(string message) => message.Length > 0 && !message.Any(char.IsControl);

    /// <summary>A UserError that breaks the contract (it is not one line): a crash to the fuzzer, a failure to the tests.</summary>
    public sealed class ContractBroken(string message) : Exception(message);

    private static string Text(byte[] input) => Encoding.UTF8.GetString(input);

    // ---- text formats a user hands to run ----

    private static void Menu(byte[] input) => BarrelfishMenu.Parse(Text(input), "menu.lst");

    /// <summary>Barrelfish's SKB device database (device_db.pl's ECLiPSe text), then kaluga's lookup for a few devices.</summary>
    private static void DeviceDb(byte[] input)
    {
        BarrelfishDeviceDb db;
        try { db = BarrelfishDeviceDb.Parse(Text(input), "device_db.pl"); }
        catch (FormatException e) { throw new UserError(e.Message, ExitCodes.Usage); }
        foreach (var (vendor, device) in new (ushort, ushort)[] { (0x8086, 0x10d3), (0x1b36, 0x0010), (0, 0), (0xffff, 0xffff) })
            _ = db.Match(vendor, device);
    }

    /// <summary>A cpio newc archive (the SKB RAM disk once gunzipped): the database member looked up.</summary>
    private static void Cpio(byte[] input)
    {
        try { _ = CpioArchive.Find(input, BarrelfishDeviceDb.Member); }
        catch (FormatException e) { throw new UserError(e.Message, ExitCodes.Usage); }
    }

    // Parsed on each use, not in a static field: this class's static fields are set up before Fuzzer.Run, and
    // instrumented code run then (PciAddress is in Passthru.Core) writes to AFL's coverage map before there is one:
    // the fork server died of it (SIGABRT, AccessViolationException in FuzzTargets' static constructor) for every target.
    private static PciAddress Vga => PciAddress.Parse("0000:03:00.0");

    /// <summary>An option ROM (a dump, a romfile=): its images, then the match against QEMU's VGA, then what the report names.</summary>
    private static void Rom(byte[] input)
    {
        var rom = OptionRom.Parse(input, "the ROM");
        foreach (var image in rom.Images)
            _ = (image.CodeTypeName, image.Efi?.MachineName, image.Efi?.SubsystemName, image.Efi?.CompressionName, image.DeviceList.Count);
        _ = rom.ImagesSize;
        rom.RequireFor(Vga, 0x1234, 0x1111, "the ROM");
    }

    private static void Profile(byte[] input) => RunProfile.Load(Scratch.Write("profile.toml", input));

    private static void Script(byte[] input) => ConsoleScript.Parse("script.txt", Text(input));

    /// <summary>The database, then lookups: the IDs of its first vendor and device lines, and a few common ones.</summary>
    private static void PciIdsDatabase(byte[] input)
    {
        var ids = PciIds.FromBytes(input, "pci.ids");
        ushort vendor = 0x8086, device = 0x10d3;
        foreach (var line in Text(input).Split('\n').Take(64))
        {
            if (line.Length >= 4 && ushort.TryParse(line.AsSpan(0, 4), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var v)) vendor = v;
            else if (line.Length >= 5 && line[0] == '\t' && ushort.TryParse(line.AsSpan(1, 4), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var d)) { device = d; break; }
        }
        foreach (var (v, d) in new[] { (vendor, device), ((ushort)0x8086, (ushort)0x10d3), ((ushort)0x1af4, (ushort)0x1041), ((ushort)0xffff, (ushort)0xffff) })
        {
            ids.FormatVendorDevice(v, d);
            ids.FormatSubsystem(v, d, v, d);
            ids.FormatSubsystem(v, d, 0x1af4, 0x1100);
        }
        foreach (var c in new[] { 0x0200, 0x0300, 0x0c03, 0xffff, vendor }) ids.FormatClass(c);
    }

    // ---- Passthru's own state files, as a crash, a full disk or a hand edit may leave them ----

    private static void JournalFile(byte[] input)
    {
        var dir = Scratch.Directory("state");
        File.WriteAllBytes(Path.Combine(dir, Journal.FileName), input);
        Journal.Load(dir);
    }

    private static void GuestRecordFile(byte[] input)
    {
        var dir = Scratch.Directory("state");
        System.IO.Directory.CreateDirectory(GuestRecords.Directory(dir));
        File.WriteAllBytes(GuestRecords.PathOf(dir, "guest-1"), input);
        GuestRecords.Load(dir, "guest-1");
    }

    private static void SetupRecordFile(byte[] input)
    {
        var root = Scratch.Directory("setup-root");
        var path = Path.Combine(root, SetupJournal.RecordFile);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, input);
        SetupJournal.Load(new HostRoot(root));
    }

    // ---- what QEMU says ----

    /// <summary>
    /// Each line is one message read from the QMP socket: the greeting's version, the answer to a command (its id
    /// "passthru-1"), an event's name, and query-pci's answer searched for a device, as attach and detach read them.
    /// An answer with "error" is QEMU refusing the command (QmpError): a documented result.
    /// </summary>
    private static void Qmp(byte[] input)
    {
        foreach (var line in Text(input).Split('\n'))
        {
            if (line.Length == 0) continue;
            var message = QmpMessages.Parse(line, "guest.qmp");
            QmpMessages.Version(message);
            QmpMessages.EventName(message);
            try { QmpMessages.Answer(message, "passthru-1", "device_add", out var result); HotplugSession.FindInGuest(result, "passthru-dev0"); }
            catch (QmpError) { }
            HotplugSession.FindInGuest(message["return"], "passthru-dev0");
        }
    }

    /// <summary>QEMU's stderr, then (after a line "--- kernel") the kernel's lines logged during the run: tests/fixtures/qemu-failures' format.</summary>
    private static void QemuStderr(byte[] input)
    {
        const string Kernel = "--- kernel\n";
        var text = Text(input);
        int split = text.IndexOf(Kernel, StringComparison.Ordinal);
        var (stderr, kernel) = split < 0 ? (text, "") : (text[..split], text[(split + Kernel.Length)..]);
        var root = Scratch.Directory("failure-root");
        QemuFailure.Explain(stderr, kernel.Split('\n'), new HostRoot(root), 2048);
    }

    /// <summary>/proc/iomem, read when the kernel could not reserve a BAR (who holds it: a boot framebuffer?).</summary>
    private static void Iomem(byte[] input)
    {
        var root = Scratch.Directory("iomem-root");
        Scratch.WriteUnder(root, "proc/iomem", input);
        QemuFailure.Explain("", ["vfio-pci 0000:01:00.0: BAR 0: can't reserve [mem 0xc0000000-0xcfffffff 64bit pref]"], new HostRoot(root), 2048);
    }

    // ---- the host's own files: procfs, ACPI tables, sysfs ----

    /// <summary>The same bytes as every file the host facts read (cpuinfo, cmdline, limits, status, DMAR, modules lists, modprobe.d, ecap).</summary>
    private static void HostFactsFiles(byte[] input)
    {
        var root = Scratch.Directory("facts-root");
        foreach (var file in new[]
        {
            "proc/cpuinfo", "proc/cmdline", "proc/self/limits", "proc/self/status", "sys/firmware/acpi/tables/DMAR",
            "proc/sys/kernel/osrelease", "etc/modprobe.d/fuzz.conf", "sys/class/iommu/dmar0/intel-iommu/ecap",
        })
            Scratch.WriteUnder(root, file, input);
        // The modules lists sit under lib/modules/RELEASE: only where that release names one directory (a harness limit, not Passthru's).
        var release = new HostRoot(root).ReadAttribute("proc/sys/kernel/osrelease") ?? "";
        if (release.Length is > 0 and < 100 && !release.Contains('/') && !release.Contains('\0') && release is not "." and not "..")
        {
            Scratch.WriteUnder(root, $"lib/modules/{release}/modules.dep", input);
            Scratch.WriteUnder(root, $"lib/modules/{release}/modules.builtin", input);
        }
        var facts = new HostFacts(new HostRoot(root));
        _ = facts.CpuVendor; _ = facts.CpuFlags; _ = facts.IommuIsAmd; _ = facts.KernelCmdline;
        facts.KernelParameter("intel_iommu"); facts.ModuleAvailable("vfio-pci"); facts.ModprobeOption("vfio_iommu_type1", "allow_unsafe_interrupts");
        facts.DmarSupportsInterruptRemapping(); facts.InterruptRemapping(); facts.LockedMemoryLimit(); facts.EffectiveUid();
        if (System.IO.Directory.Exists(Path.Combine(root, "lib"))) System.IO.Directory.Delete(Path.Combine(root, "lib"), recursive: true);
    }

    /// <summary>A function's binary config space: its PCIe port type and ACS isolation (capability lists walked).</summary>
    private static void ConfigSpace(byte[] input)
    {
        var root = Scratch.Directory("config-root");
        Scratch.WriteUnder(root, "sys/bus/pci/devices/0000:00:1c.0/config", input);
        var topology = new PciTopology(new HostRoot(root));
        var a = new PciAddress(0, 0, 0x1c, 0);
        topology.PcieType(a); topology.AcsIsolates(a); topology.Readable(a);
    }

    private static readonly string[] Attributes =
        ["vendor", "device", "class", "revision", "subsystem_vendor", "subsystem_device", "sriov_totalvfs", "sriov_numvfs", "numa_node", "boot_vga", "driver_override", "reset_method"];

    /// <summary>One function's sysfs attributes, one per line in this order (a missing line: the file is absent), read as `list` reads them.</summary>
    private static void SysfsAttributes(byte[] input)
    {
        var root = Scratch.Directory("sysfs-root");
        var dir = "sys/bus/pci/devices/0000:00:02.0/";
        var lines = Text(input).Split('\n');
        for (int i = 0; i < Attributes.Length; i++)
        {
            var path = Path.Combine(root, dir + Attributes[i]);
            if (i < lines.Length) Scratch.WriteUnder(root, dir + Attributes[i], Encoding.UTF8.GetBytes(lines[i]));
            else File.Delete(path);
        }
        PciInventory.Load(new HostRoot(root));
    }

    /// <summary>Each line as every command-line value parser takes it: addresses, selectors, --device, --net, sizes, counts, accel.</summary>
    private static void Values(byte[] input)
    {
        foreach (var line in Text(input).Split('\n'))
        {
            PciAddress.TryParse(line, out _);
            Try(() => DeviceSelector.Parse(line));
            Try(() => PassthroughDevice.Parse(line));
            Try(() => GuestNetwork.Parse(line, "--net"));
            Try(() => MemorySize.ParseMiB(line, "--memory"));
            Try(() => MemorySize.ParseCount(line, "--cpus"));
            Try(() => RunProfile.ParseAccel(line, "--accel"));
        }

        static void Try(Action parse)
        {
            try { parse(); }
            catch (UserError e) when (IsOneLine(e.Message)) { }
        }
    }

    /// <summary>This process's private scratch directory (in /dev/shm when there is one: the fuzzer writes a file per run).</summary>
    public static class Scratch
    {
        private static readonly string Base = Path.Combine(
            System.IO.Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), $"passthru-fuzz-{Environment.ProcessId}-{Guid.NewGuid():N}");

        private static string Root => System.IO.Directory.CreateDirectory(Base).FullName;

        public static string Directory(string name) => System.IO.Directory.CreateDirectory(Path.Combine(Root, name)).FullName;

        public static string Write(string name, byte[] bytes)
        {
            var path = Path.Combine(Root, name);
            File.WriteAllBytes(path, bytes);
            return path;
        }

        public static void WriteUnder(string root, string relative, byte[] bytes)
        {
            var path = Path.Combine(root, relative);
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, bytes);
        }

        public static void Remove()
        {
            if (System.IO.Directory.Exists(Base)) System.IO.Directory.Delete(Base, recursive: true);
        }
    }
}
