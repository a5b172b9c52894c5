using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Passthru.Launch;
using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>
/// The SKB device database of the real Barrelfish build in ../shared (skb/device_db.pl inside skb_ramfs.cpio.gz),
/// read by <see cref="BarrelfishDeviceDb"/>, and the matching semantics of device_db.pl's find_pci_driver as kaluga asks it.
/// </summary>
public sealed class BarrelfishDeviceDbTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("passthru-bf-db-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static string SharedRamfs => Repo.Shared("barrelfish/build/skb_ramfs.cpio.gz");
    private static BarrelfishDeviceDb Shared => BarrelfishDeviceDb.Load(SharedRamfs, "--build-dir");

    [Fact]
    public void The_shared_builds_database_gives_e1000n_the_82574L_and_no_driver_to_qemus_nvme()
    {
        var db = Shared;
        Assert.Equal("e1000n", db.Match(0x8086, 0x10d3).Driver?.Binary); // QEMU's e1000e, the virtual host's NIC
        Assert.Equal("e1000n", db.Match(0x8086, 0x100e).Driver?.Binary); // QEMU's e1000
        Assert.Null(db.Match(0x1b36, 0x0010).Driver);                     // QEMU's NVMe
        Assert.Null(db.Match(0x1af4, 0x1041).Driver);                     // virtio-net
        Assert.Equal("mlx4", db.Match(0x15b3, 0x1003).Driver?.Binary);
        Assert.Equal("ahcid", db.Match(0x8086, 0x2922).Driver?.Binary);   // q35's ICH9 AHCI
        // The e10k VF entry is commented out in device_db.pl: kaluga has no driver for 8086:10ed.
        Assert.Null(db.Match(0x8086, 0x10ed).Driver);
        Assert.Equal("e10k", db.Match(0x8086, 0x10fb).Driver?.Binary);
        Assert.Equal((1, 1), (db.CpuDrivers, db.BusDrivers));
    }

    [Fact]
    public void Every_card_id_the_database_file_writes_is_matched_to_the_driver_whose_fact_lists_it()
    {
        // An independent reading of the same member: Debian's gzip and cpio, and a plain scan of the text for
        // uncommented pci_card lines, each attributed to the last uncommented binary: "..." above it.
        var text = ExtractWithCpio(SharedRamfs, BarrelfishDeviceDb.Member);
        var expected = new List<(ushort, ushort, string)>();
        string? binary = null;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Split('%')[0];
            if (System.Text.RegularExpressions.Regex.Match(line, "binary:\\s*\"([^\"]+)\"") is { Success: true } b) binary = b.Groups[1].Value;
            foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(line, "vendor:\\s*16'([0-9a-f]+),\\s*device:\\s*16'([0-9a-f]+)"))
                expected.Add((Convert.ToUInt16(m.Groups[1].Value, 16), Convert.ToUInt16(m.Groups[2].Value, 16), binary!));
        }
        Assert.True(expected.Count > 20, $"only {expected.Count} cards found by the scan");
        var db = Shared;
        Assert.All(expected, e => Assert.Equal(e.Item3, db.Match(e.Item1, e.Item2).Driver?.Binary));
        Assert.Equal(expected.Count, db.Drivers.Sum(d => d.Cards.Count));
    }

    [Fact]
    public void The_cpio_reader_returns_the_member_byte_for_byte_as_debians_cpio_does()
    {
        var archive = CpioArchive.Gunzip(File.ReadAllBytes(SharedRamfs));
        Assert.Equal(ExtractWithCpio(SharedRamfs, BarrelfishDeviceDb.Member), Encoding.UTF8.GetString(CpioArchive.Find(archive, BarrelfishDeviceDb.Member)!));
        Assert.Equal(ExtractWithCpio(SharedRamfs, "skb/bridge.pl"), Encoding.UTF8.GetString(CpioArchive.Find(archive, "skb/bridge.pl")!));
        Assert.Null(CpioArchive.Find(archive, "skb/no-such.pl"));
    }

    private static string ExtractWithCpio(string ramfs, string member)
    {
        var psi = new ProcessStartInfo("sh", ["-c", "gzip -dc \"$0\" | cpio -i --quiet --to-stdout \"$1\"", ramfs, member]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0 && stdout.Length > 0, $"gzip | cpio failed: {p.StandardError.ReadToEnd()}");
        return stdout;
    }

    [Fact]
    public void Wildcards_priorities_positional_cards_and_other_terms_match_as_find_pci_driver_unifies_them()
    {
        var db = BarrelfishDeviceDb.Parse("""
            :- local struct(pci_card(vendor, device, function, subvendor, subdevice)).
            /* a block comment: pci_driver{ binary: "ghost", supported_cards: [ pci_card{ vendor: 16'1234, device: 16'5678 } ] }. */
            pci_driver{ binary: "anyintel", supported_cards: [ pci_card{ vendor: 16'8086, device: _, function: _ } ] }.
            pci_driver{ binary: "special", priority: 5, supported_cards: [ pci_card{ vendor: 16'1111, device: 16'beef } ] }.
            pci_driver{ binary: "beefy", supported_cards: [ pci_card{ vendor: 32902, device: 48879 } ] }.
            pci_driver{ binary: 'positional', supported_cards: [ pci_card(16'1af4, 16'1041, _, _, _) ] }.
            pci_driver{ binary: "named", supported_cards: [ pci_card{ vendor: intel, device: 16'0001 } ] }.
            pci_driver{ binary: "listsall", supported_cards: [ Card ] }.
            pci_driver{ binary: "nothing", supported_cards: [] }.
            pci_driver{ binary: "unbound" }.
            bus_driver{ binary: "ioapic", core_hint: 0, platforms: ['x86_64'] }.
            find_pci_driver(PciInfo, DriverInfo) :- PciInfo = pci_card{vendor:VId}, \+ VId = 0, sort(0,>,[a],[_|_]), X is -1 + 2*3.
            """, "test");
        Assert.DoesNotContain(db.Drivers, d => d.Binary == "ghost");
        Assert.Equal(8, db.Drivers.Count);
        // Three list 8086:beef, none with a priority: the first in the file is named, the others as tied with it.
        var beef = db.Match(0x8086, 0xbeef);
        Assert.Equal("anyintel", beef.Driver?.Binary);
        Assert.Equal(["beefy", "listsall"], beef.Tied.Select(o => o.Binary));
        Assert.Equal(["beefy", "listsall"], beef.Others.Select(o => o.Binary));
        Assert.Equal("positional", db.Match(0x1af4, 0x1041).Driver?.Binary);
        // An atom never unifies with a number: only the variable card of "listsall" takes 8087:0001.
        Assert.Equal("listsall", db.Match(0x8087, 0x0001).Driver?.Binary);
        Assert.Equal(["anyintel", "listsall"], new[] { db.Match(0x8086, 0x1234).Driver!.Binary }.Concat(db.Match(0x8086, 0x1234).Others.Select(o => o.Binary)).Order());
    }

    [Fact]
    public void A_numbered_priority_beats_an_unset_one()
    {
        var db = BarrelfishDeviceDb.Parse("""
            pci_driver{ binary: "first", supported_cards: [ pci_card{ vendor: 16'8086, device: 16'10d3 } ] }.
            pci_driver{ binary: "low", priority: 1, supported_cards: [ pci_card{ vendor: 16'8086, device: 16'10d3 } ] }.
            pci_driver{ binary: "high", priority: 7, supported_cards: [ pci_card{ vendor: 16'8086, device: 16'10d3 } ] }.
            """, "test");
        var m = db.Match(0x8086, 0x10d3);
        Assert.Equal("high", m.Driver?.Binary);
        Assert.Equal(["first", "low"], m.Others.Select(o => o.Binary).Order());
        Assert.Empty(m.Tied);
    }

    [Theory]
    [InlineData("pci_driver{ binary: \"x\", supported_cards: [ pci_card{ vendor: 16'8086 } ] }", "line 1: expected the end of a clause")]
    [InlineData("pci_driver{ binary: \"x\", supported_cards: [ pci_card{ vendor: 16'8086 ] }.", "line 1: expected '}'")]
    [InlineData("pci_driver{ binary: \"x\n, supported_cards: [] }.", "line 1: a string that never ends")]
    [InlineData("a.\n/* open", "line 2: a /* comment that never ends")]
    [InlineData("pci_driver{ supported_cards: [] }.", "line 1: a pci_driver without a binary")]
    [InlineData("pci_driver{ binary: \"x\", supported_cards: 16'10 }.", "line 1: x's supported_cards is not a list")]
    [InlineData("pci_driver(\"x\", \"m\", []).", "line 1: a pci_driver written with 3 positional arguments")]
    [InlineData("x(99999999999999999999).", "line 1: the number 99999999999999999999 does not fit in 64 bits")]
    [InlineData("x(16'fffffffffffffffff).", "does not fit in 64 bits")]
    [InlineData("x(37'1).", "ECLiPSe's bases are 2 to 36")]
    [InlineData("x(a b).", "line 1: expected ')'")]
    [InlineData("x(\u0001).", "line 1: unexpected character")]
    public void A_damaged_database_is_refused_naming_the_line(string text, string message)
    {
        var e = Assert.Throws<FormatException>(() => BarrelfishDeviceDb.Parse(text, "test"));
        Assert.Contains(message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Deep_nesting_is_refused_before_it_can_exhaust_the_stack()
    {
        var e = Assert.Throws<FormatException>(() => BarrelfishDeviceDb.Parse("x(" + new string('[', 100_000) + ").", "test"));
        Assert.Contains($"nested more than {EclipseTerms.MaxDepth} deep", e.Message);
        e = Assert.Throws<FormatException>(() => BarrelfishDeviceDb.Parse("x :- " + string.Concat(Enumerable.Repeat("\\+ ", 100_000)) + "a.", "test"));
        Assert.Contains("nested more than", e.Message);
    }

    // ---- the RAM disk: gzip and cpio newc, as input

    private static byte[] Gzip(byte[] data)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(data);
        return ms.ToArray();
    }

    /// <summary>A newc archive of the given members and its trailer, as `cpio -o -H newc` writes it.</summary>
    private static byte[] Newc(params (string Name, byte[] Data)[] members)
    {
        var ms = new MemoryStream();
        void Entry(string name, byte[] data, string? fileSize = null)
        {
            var nameBytes = Encoding.UTF8.GetBytes(name + "\0");
            var header = $"070701{1:x8}{0x81a4:x8}{0:x8}{0:x8}{1:x8}{0:x8}{fileSize ?? data.Length.ToString("x8")}{0:x8}{0:x8}{0:x8}{0:x8}{nameBytes.Length:x8}{0:x8}";
            ms.Write(Encoding.ASCII.GetBytes(header));
            ms.Write(nameBytes);
            while (ms.Length % 4 != 0) ms.WriteByte(0);
            ms.Write(data);
            while (ms.Length % 4 != 0) ms.WriteByte(0);
        }
        foreach (var (name, data) in members) Entry(name, data);
        Entry("TRAILER!!!", []);
        return ms.ToArray();
    }

    private static readonly byte[] Db = Encoding.UTF8.GetBytes("pci_driver{ binary: \"e1000n\", supported_cards: [ pci_card{ vendor: 16'8086, device: 16'10d3 } ] }.\n");

    [Fact]
    public void A_well_formed_ramfs_written_here_reads_like_the_real_one()
    {
        var gz = Gzip(Newc(("skb/other.pl", "x."u8.ToArray()), ("./skb/device_db.pl", Db)));
        Assert.Equal("e1000n", BarrelfishDeviceDb.FromRamfs(gz, "t").Match(0x8086, 0x10d3).Driver?.Binary);
    }

    public static TheoryData<string, Func<byte[]>, string> Hostile => new()
    {
        { "empty", () => [], "not gzip-compressed" },
        { "not gzip", () => Db, "not gzip-compressed" },
        { "truncated gzip", () => File.ReadAllBytes(SharedRamfs)[..5000], "gzip data cut short or damaged" },
        { "a flipped byte in the deflate data", () => { var b = File.ReadAllBytes(SharedRamfs); b[b.Length / 2] ^= 0x55; return b; }, "gzip" },
        { "a zip bomb", () => Gzip(new byte[CpioArchive.MaxUnpackedBytes + 1]), "unpacks to more than 64 MiB" },
        { "old cpio format", () => Gzip(Encoding.ASCII.GetBytes("070707" + new string('0', 200))), "old portable format (070707)" },
        { "not cpio", () => Gzip(new byte[200]), "does not start with the newc magic" },
        { "a header cut short", () => Gzip(Newc(("skb/device_db.pl", Db))[..50]), "cut short at byte 0" },
        { "no trailer", () => { var a = Newc(("a", "x"u8.ToArray())); return Gzip(a[..^124]); }, "no header and no TRAILER!!!" },
        { "a huge file size", () => Gzip(Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(Newc(("skb/device_db.pl", Db))).Remove(54, 8).Insert(54, "7fffffff"))), "claims 2147483647 bytes" },
        { "a size that is not hex", () => Gzip(Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(Newc(("skb/device_db.pl", Db))).Remove(54, 8).Insert(54, "-0000001"))), "filesize -0000001 is not 8 hex digits" },
        { "a huge name size", () => Gzip(Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(Newc(("skb/device_db.pl", Db))).Remove(94, 8).Insert(94, "ffffffff"))), "name size 4294967295" },
        { "no device_db.pl", () => Gzip(Newc(("skb/queries.pl", "x."u8.ToArray()))), "the archive holds no skb/device_db.pl" },
        { "a database that is not UTF-8", () => Gzip(Newc(("skb/device_db.pl", [0xff, 0xfe, 0x41]))), "skb/device_db.pl is not UTF-8 text" },
        { "a database that does not parse", () => Gzip(Newc(("skb/device_db.pl", "pci_driver{ binary: \"x\" "u8.ToArray()))), "skb/device_db.pl: line 1: expected" },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public void A_damaged_ramfs_is_refused_in_one_line_with_exit_2(string what, Func<byte[]> bytes, string message)
    {
        var file = Path.Combine(_dir, BarrelfishDeviceDb.RamfsName);
        File.WriteAllBytes(file, bytes());
        var e = Assert.Throws<UserError>(() => BarrelfishDeviceDb.Load(file, "--build-dir"));
        Assert.True(e.Message.Contains(message), $"{what}: {e.Message}");
        Assert.StartsWith($"--build-dir: {file}: ", e.Message);
        Assert.EndsWith("not a usable SKB RAM disk (rebuild it: `make skb_ramfs.cpio.gz` in the build directory)", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(ExitCodes.Usage, e.ExitCode);
    }

    // ---- the menu: kaluga starts only what the menu loads with `auto`

    private string Menu(string e1000nLine)
    {
        var menu = Path.Combine(_dir, "menu.lst");
        File.WriteAllText(menu, $"""
            kernel /x86_64/sbin/elver loglevel=3
            module /x86_64/sbin/cpu loglevel=3
            modulenounzip /skb_ramfs.cpio.gz nospawn
            {e1000nLine}
            """);
        return menu;
    }

    [Theory]
    [InlineData("module /x86_64/sbin/e1000n auto", "e1000n", "kaluga starts it for this device (line ")]
    [InlineData("module /x86_64/sbin/e1000n", null, "but the menu loads it without `auto` (line 4), so kaluga does not start it")]
    [InlineData("# module /x86_64/sbin/e1000n auto", null, "but the menu does not load e1000n, so kaluga leaves the device alone")]
    public void With_a_menu_the_driver_must_be_loaded_with_auto(string line, string? driver, string detail)
    {
        var verdict = BarrelfishDrivers.Load(Menu(line), Repo.Shared("barrelfish/build")).For(0x8086, 0x10d3);
        Assert.Equal(driver, verdict.Driver);
        Assert.Contains(detail, verdict.Detail);
    }

    [Fact]
    public void A_menu_without_the_skb_ramdisk_is_refused_by_show()
    {
        var menu = Path.Combine(_dir, "linux.lst");
        File.WriteAllText(menu, "kernel /vmlinuz\nmodule /initrd\n");
        var e = Assert.Throws<UserError>(() => BarrelfishDrivers.Load(menu, _dir));
        Assert.Equal($"--menu {menu} loads no skb_ramfs.cpio.gz: without the SKB's device database kaluga starts no PCI driver", e.Message);
    }
}

/// <summary>`show --build-dir` / `--menu` and `run --menu --dry-run` on the virtual host's capture, with the shared build's database.</summary>
public sealed class BarrelfishDeviceCliTests
{
    private static string Build => Repo.Shared("barrelfish/build");
    private static string Menu => Repo.Shared("barrelfish/build/platforms/x86/menu.lst.x86_64");

    [Fact]
    public void Show_names_e1000n_for_the_e1000e_and_no_driver_for_the_nvme()
    {
        var nic = CliRunner.OnCapture("vhost", "show", "00:02.0", "--build-dir", Build);
        Assert.True(nic.ExitCode == 0, nic.Stderr);
        Assert.Contains($"\n  Barrelfish:      e1000n: kaluga starts it for this device, when the boot menu loads it with `auto` (line 40 of skb/device_db.pl in {Build}/skb_ramfs.cpio.gz)\n  Passthrough:", nic.Stdout);
        var nvme = CliRunner.OnCapture("vhost", "show", "1b36:0010", "--build-dir", Build);
        Assert.True(nvme.ExitCode == 0, nvme.Stderr);
        Assert.Contains($"\n  Barrelfish:      none: no pci_driver in this build's device database lists 1b36:0010 (skb/device_db.pl in {Build}/skb_ramfs.cpio.gz), so kaluga leaves the device alone\n", nvme.Stdout);
        var withMenu = CliRunner.OnCapture("vhost", "show", "00:02.0", "--menu", Menu);
        Assert.Contains("  Barrelfish:      e1000n: kaluga starts it for this device (line 40 of skb/device_db.pl in ", withMenu.Stdout);
        Assert.Contains("; the menu loads it with `auto`, line 45)\n", withMenu.Stdout);
        Assert.DoesNotContain("Barrelfish:", CliRunner.OnCapture("vhost", "show", "00:02.0").Stdout);
    }

    [Fact]
    public void Show_json_carries_the_driver_only_when_asked()
    {
        using var nic = JsonDocument.Parse(CliRunner.OnCapture("vhost", "show", "00:02.0", "--build-dir", Build, "--json").Stdout);
        Assert.Equal("e1000n", nic.RootElement.GetProperty("barrelfish").GetProperty("driver").GetString());
        using var nvme = JsonDocument.Parse(CliRunner.OnCapture("vhost", "show", "00:04.0", "--build-dir", Build, "--json").Stdout);
        Assert.Equal(JsonValueKind.Null, nvme.RootElement.GetProperty("barrelfish").GetProperty("driver").ValueKind);
        using var plain = JsonDocument.Parse(CliRunner.OnCapture("vhost", "show", "00:02.0", "--json").Stdout);
        Assert.False(plain.RootElement.TryGetProperty("barrelfish", out _));
    }

    [Fact]
    public void Show_with_a_build_dir_without_the_ramdisk_fails_in_one_line()
    {
        var empty = Directory.CreateTempSubdirectory("passthru-bf-empty-").FullName;
        try
        {
            var r = CliRunner.OnCapture("vhost", "show", "00:02.0", "--build-dir", empty);
            Assert.Equal(2, r.ExitCode);
            Assert.Equal("", r.Stdout);
            Assert.Equal($"passthru: --build-dir: {empty}/skb_ramfs.cpio.gz: no such file (a Barrelfish build keeps the SKB's RAM disk skb_ramfs.cpio.gz at its top: `make skb_ramfs.cpio.gz` builds it)\n", r.Stderr);
            var missing = CliRunner.OnCapture("vhost", "show", "00:02.0", "--build-dir", empty + "/nope");
            Assert.Equal((2, $"passthru: --build-dir {empty}/nope: no such directory\n"), (missing.ExitCode, missing.Stderr));
        }
        finally { Directory.Delete(empty, true); }
    }

    [Fact]
    public void Run_dry_run_warns_before_the_plan_for_a_device_barrelfish_leaves_alone()
    {
        var r = CliRunner.OnCapture("vhost", "run", "--dry-run", "--menu", Menu, "--accel", "tcg", "--device", "00:04.0", "--device", "00:02.0");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var lines = r.Lines;
        var warning = Assert.Single(lines, l => l.Contains("Barrelfish driver"));
        Assert.Equal($"warning: 0000:00:04.0 [1b36:0010] gets no Barrelfish driver: no pci_driver in this build's device database lists 1b36:0010 (skb/device_db.pl in {Build}/skb_ramfs.cpio.gz), so kaluga leaves the device alone", warning);
        Assert.True(Array.IndexOf(lines, warning) < Array.IndexOf(lines, "plan:"));
        Assert.DoesNotContain(lines, l => l.Contains("0000:00:02.0 [8086:10d3] gets no"));
    }

    [Theory]
    [InlineData("module /x86_64/sbin/corectrl auto", null)]
    [InlineData("module /x86_64/sbin/corectrl", "warning: --cpus 4: the menu loads corectrl without `auto` (line 4), so kaluga does not start it to boot the other cores, so Barrelfish runs on core 0 only (add `module /x86_64/sbin/corectrl auto` to the menu)")]
    [InlineData("# no corectrl", "warning: --cpus 4: the menu loads no corectrl, which kaluga needs to boot the other cores, so Barrelfish runs on core 0 only (add `module /x86_64/sbin/corectrl auto` to the menu)")]
    public void Run_with_more_cpus_asks_for_every_core_and_warns_when_the_menu_cannot_boot_them(string corectrl, string? warning)
    {
        // The shared build's own files, under a menu that differs from Barrelfish's only in its corectrl line.
        var dir = GuestFiles.Directory("passthru-bf-cores-").FullName;
        try
        {
            var menu = Path.Combine(dir, "menu.lst");
            File.WriteAllText(menu, $"kernel /x86_64/sbin/elver loglevel=3\nmodule /x86_64/sbin/cpu loglevel=3\nmodule /x86_64/sbin/kaluga boot\n{corectrl}\n");
            var r = CliRunner.OnCapture("vhost", "run", "--dry-run", "--menu", menu, "--build-dir", Build, "--accel", "tcg", "--cpus", "4");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains(" -smp 4 ", r.Lines[^1]);
            Assert.Equal(warning, r.Lines.SingleOrDefault(l => l.StartsWith("warning: --cpus", StringComparison.Ordinal)));
        }
        finally { Directory.Delete(dir, true); }
    }
}
