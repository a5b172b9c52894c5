using Passthru.Tests.Support;

namespace Passthru.Tests.Cli;

/// <summary>
/// Issue #25's two data-loss findings, tried on the published binary as a user would: `export -o` onto what is not a
/// plain file, and state files whose paths or names point outside where Passthru keeps its state. Each refusal is one
/// line, a non-zero exit, and nothing outside the scratch directory changes.
/// </summary>
[Trait(Tier.Name, Tier.Slow)]
public sealed class HostileInputTests : IDisposable
{
    /// <summary>Published first when missing or older than the sources, so the class passes run alone too.</summary>
    private static string Binary => PublishedBinary.Path;
    private readonly string _dir = GuestFiles.Directory("passthru-hostile-").FullName;
    private readonly string _tree = Repo.CopyCapture("vhost");
    private string Kernel => Path.Combine(_dir, "kernel.elf");

    public HostileInputTests() => File.WriteAllText(Kernel, "");

    public void Dispose()
    {
        Directory.Delete(_dir, true);
        Directory.Delete(_tree, true);
    }

    public static TheoryData<string> Targets => new() { "libvirt", "cloud-hypervisor", "proxmox", "nova", "kubevirt" };

    private string[] Export(string target, string output) =>
    [
        "export", target, "--root", _tree, "--pci-ids", Repo.SystemPciIds,
        .. target switch
        {
            "nova" => new[] { "--device", "00:02.0" },
            "kubevirt" => ["--kernel", Kernel, "--image", "registry.example.com/guests/probe:1"],
            _ => ["--kernel", Kernel],
        },
        "-o", output,
    ];

    private static (int ExitCode, string Stdout, string Stderr) Passthru(params string[] args) => Repo.Exec(Binary, args);

    private static string FileType(string path) => Repo.Exec("stat", "-c", "%F", path).Stdout.Trim();

    /// <summary>One line on stderr, with no .NET resource key or exception name in it.</summary>
    private static void AssertOneLine(string stderr, string mustName)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, "expected one line, got:\n" + stderr);
        Assert.Contains(mustName, lines[0]);
        Assert.DoesNotMatch(@"Exception|   at |_[A-Z][a-z]+_|\bIO_|Arg_", lines[0]);
        AssertNoResourceKey(stderr);
    }

    /// <summary>
    /// The static binary is built with UseSystemResourceKeys: a runtime exception's text shown as it is reads
    /// "IO_FileNotFound_FileName, /x" or "UnauthorizedAccess_IODenied_Path, /x" (issue #25 item 6).
    /// </summary>
    private static void AssertNoResourceKey(string stderr) =>
        Assert.DoesNotMatch(@"\b[A-Z][A-Za-z0-9]+_[A-Z][A-Za-z0-9_]+\b,|\b[A-Z][a-z]+[A-Z][A-Za-z]+, [0-9A-Z{]", stderr);

    private string[] Litter() => Directory.GetFileSystemEntries(_dir, "*.tmp*", SearchOption.AllDirectories);

    [Theory]
    [MemberData(nameof(Targets))]
    public void A_character_device_is_written_in_place_never_replaced(string target)
    {
        // A null device of our own (mknod as root), so a regression cannot replace the machine's /dev/null.
        var device = Path.Combine(_dir, "null");
        Assert.Equal(0, Repo.Exec("mknod", device, "c", "1", "3").ExitCode);
        var r = Passthru(Export(target, device));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("character special file", FileType(device));
        Assert.Empty(Litter());
    }

    [Fact]
    public async Task A_fifo_is_written_in_place_and_its_reader_gets_the_text()
    {
        var fifo = Path.Combine(_dir, "pipe");
        Assert.Equal(0, Repo.Exec("mkfifo", fifo).ExitCode);
        var reader = Task.Run(() => File.ReadAllText(fifo));
        var r = Passthru(Export("libvirt", fifo));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var text = await reader.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.StartsWith("<domain", text);
        Assert.Equal("fifo", FileType(fifo));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void A_symlink_is_written_through_to_its_target(string target)
    {
        var elsewhere = Directory.CreateDirectory(Path.Combine(_dir, "elsewhere")).FullName;
        var real = Path.Combine(elsewhere, "vm.out");
        File.WriteAllText(real, "old");
        var link = Path.Combine(_dir, "link");
        File.CreateSymbolicLink(link, "elsewhere/vm.out");
        var r = Passthru(Export(target, link));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("symbolic link", FileType(link));
        Assert.Equal("elsewhere/vm.out", new FileInfo(link).LinkTarget);
        Assert.NotEqual("old", File.ReadAllText(real));
        Assert.True(File.ReadAllText(real).Length > 20);
        Assert.Empty(Litter());
    }

    [Fact]
    public void A_dangling_symlink_creates_its_target()
    {
        var link = Path.Combine(_dir, "link");
        File.CreateSymbolicLink(link, "made.xml");
        var r = Passthru(Export("libvirt", link));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("symbolic link", FileType(link));
        Assert.StartsWith("<domain", File.ReadAllText(Path.Combine(_dir, "made.xml")));
    }

    [Fact]
    public void A_regular_file_is_replaced_whole_and_keeps_its_mode()
    {
        var file = Path.Combine(_dir, "vm.xml");
        File.WriteAllText(file, "old");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var r = Passthru(Export("libvirt", file));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.StartsWith("<domain", File.ReadAllText(file));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(file));
        Assert.Empty(Litter());
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void A_directory_is_refused_and_nothing_is_left_behind(string target)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_dir, "out")).FullName;
        var r = Passthru(Export(target, dir));
        Assert.Equal(2, r.ExitCode);
        AssertOneLine(r.Stderr, dir);
        Assert.Contains("is a directory", r.Stderr);
        Assert.Empty(Directory.GetFileSystemEntries(dir));
        Assert.Equal([dir], Directory.GetFileSystemEntries(_dir).Where(e => !e.EndsWith("kernel.elf")));
    }

    [Fact]
    public void The_root_directory_and_an_empty_name_are_refused_in_one_line()
    {
        var root = Passthru(Export("libvirt", "/"));
        Assert.Equal(2, root.ExitCode);
        AssertOneLine(root.Stderr, "is a directory");
        var empty = Passthru(Export("proxmox", ""));
        Assert.Equal(2, empty.ExitCode);
        AssertOneLine(empty.Stderr, "--output is empty");
    }

    [Fact]
    public void A_block_device_is_refused_and_stays_a_block_device()
    {
        var device = Path.Combine(_dir, "disk");
        Assert.Equal(0, Repo.Exec("mknod", device, "b", "7", "200").ExitCode);
        var r = Passthru(Export("nova", device));
        Assert.Equal(2, r.ExitCode);
        AssertOneLine(r.Stderr, "block device");
        Assert.Equal("block special file", FileType(device));
    }

    [Fact]
    public void A_junit_report_onto_a_directory_is_refused_before_anything_runs()
    {
        var script = Path.Combine(_dir, "console.script");
        File.WriteAllText(script, "expect hello\n");
        var r = Passthru("run", "--root", _tree, "--dry-run", "--kernel", Kernel, "--script", script, "--junit", _dir);
        Assert.Equal(2, r.ExitCode);
        AssertOneLine(r.Stderr, "--junit");
    }

    // ---- state files that point outside the state directory ----

    private string StateDir => Directory.CreateDirectory(Path.Combine(_dir, "state")).FullName;

    /// <summary>A file outside both the tree and the state directory that a hostile state file aims at.</summary>
    private string Victim(string name)
    {
        var victim = Path.Combine(Directory.CreateDirectory(Path.Combine(_dir, "outside")).FullName, name);
        File.WriteAllText(victim, "precious");
        return victim;
    }

    private string FromTreeRoot(string path) => Path.GetRelativePath(_tree, path);

    [Fact]
    public void A_journal_parameter_path_outside_the_module_tree_is_refused_and_the_file_left_alone()
    {
        var victim = Victim("x");
        File.WriteAllText(Path.Combine(StateDir, "state.json"), $$"""
            { "version": 1, "functions": [],
              "parameters": [ { "path": "{{FromTreeRoot(victim)}}", "original": "Y", "for": [ "0000:00:02.0" ] } ] }
            """);
        var r = Passthru("restore", "--root", _tree, "--state-dir", StateDir);
        Assert.Equal(1, r.ExitCode);
        AssertOneLine(r.Stderr, "is not a module parameter");
        Assert.Equal("precious", File.ReadAllText(victim));
    }

    [Fact]
    public void A_journal_driver_name_that_is_a_path_is_refused_and_nothing_is_written()
    {
        // restore would write the address into sys/bus/pci/drivers/DRIVER/bind: a driver "../../../../x" escapes sysfs.
        var outside = Directory.CreateDirectory(Path.Combine(_dir, "outside", "bind-dir")).FullName;
        var driver = Path.GetRelativePath(Path.Combine(_tree, "sys/bus/pci/drivers"), Path.GetDirectoryName(outside)!) + "/bind-dir";
        File.WriteAllText(Path.Combine(StateDir, "state.json"), $$"""
            { "version": 1, "functions": [ { "address": "0000:00:02.0", "driver": "{{driver}}", "driver_override": null, "group": 2 } ] }
            """);
        var r = Passthru("restore", "--root", _tree, "--state-dir", StateDir);
        Assert.Equal(1, r.ExitCode);
        AssertOneLine(r.Stderr, "is not a driver name");
        Assert.Empty(Directory.GetFileSystemEntries(outside));
    }

    [Fact]
    public void A_guest_record_whose_name_leaves_the_state_directory_deletes_nothing_outside()
    {
        var victim = Victim("important.json");
        var victimSocket = Victim("important.qmp");
        var guests = Directory.CreateDirectory(Path.Combine(StateDir, "guests")).FullName;
        var name = Path.GetRelativePath(guests, Path.Combine(_dir, "outside", "important"));
        // A gone guest (no runner, no QEMU): `guests` cleans such records up, by the name inside the record.
        File.WriteAllText(Path.Combine(guests, "evil.json"), $$"""
            { "name": "{{name}}", "runner_pid": 0, "qemu_pid": 0, "qmp": "", "started": "", "machine": "q35",
              "ports": [], "devices": [], "bound": [] }
            """);
        var r = Passthru("guests", "--root", _tree, "--state-dir", StateDir);
        Assert.Equal(1, r.ExitCode);
        AssertOneLine(r.Stderr, "is not its file's name");
        Assert.Equal("precious", File.ReadAllText(victim));
        Assert.Equal("precious", File.ReadAllText(victimSocket));
    }

    [Theory]
    [InlineData("""{ "version": 1, "functions": [ { "address": "0000:00:02.0", "driver": "e1000e", "driver_override": null, "group": 2.5 } ] }""", "functions[0].group")]
    [InlineData("""{ "version": 1, "functions": [ { "address": "0000:00:02.0", "driver": "e1000e", "driver_override": null, "group": 2 """, "cut short")]
    [InlineData("""{ "version": 7, "functions": [] }""", "version 7")]
    [InlineData("""{ "version": 1, "functions": [ { "address": "nowhere", "driver": "e1000e", "driver_override": null, "group": 2 } ] }""", "is not a PCI address")]
    [InlineData("""[]""", "of the wrong type at $")]
    public void A_damaged_journal_is_one_line_naming_the_place(string json, string place)
    {
        File.WriteAllText(Path.Combine(StateDir, "state.json"), json);
        var r = Passthru("restore", "--root", _tree, "--state-dir", StateDir);
        Assert.Equal(1, r.ExitCode);
        AssertOneLine(r.Stderr, place);
        Assert.Contains("state.json is damaged", r.Stderr);
    }

    [Fact]
    public void A_guest_record_with_null_devices_is_one_line()
    {
        var guests = Directory.CreateDirectory(Path.Combine(StateDir, "guests")).FullName;
        File.WriteAllText(Path.Combine(guests, "probe-1.json"), """
            { "name": "probe-1", "runner_pid": 0, "qemu_pid": 0, "qmp": "", "ports": [], "devices": null, "bound": [] }
            """);
        var r = Passthru("guests", "--root", _tree, "--state-dir", StateDir);
        Assert.Equal(1, r.ExitCode);
        AssertOneLine(r.Stderr, "probe-1.json is damaged");
    }

    [Fact]
    public void A_directory_in_place_of_the_journal_is_not_taken_for_nothing_to_give_back()
    {
        Directory.CreateDirectory(Path.Combine(StateDir, "state.json"));
        var r = Passthru("restore", "--root", _tree, "--state-dir", StateDir);
        Assert.Equal(1, r.ExitCode);
        AssertOneLine(r.Stderr, "is a directory");
    }

    [Fact]
    public void A_setup_record_naming_a_file_outside_the_root_is_refused_by_undo()
    {
        var victim = Victim("passwd");
        // The hash of what is there, so undo's own "changed since" guard does not stop it before the path check would.
        var sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(victim)));
        Directory.CreateDirectory(Path.Combine(_tree, "var/lib/passthru"));
        File.WriteAllText(Path.Combine(_tree, "var/lib/passthru/setup.json"), $$"""
            { "schema": 1, "kind": "setup", "files": [ { "path": "{{FromTreeRoot(victim)}}", "created": true, "writtenSha256": "{{sha}}" } ],
              "createdDirectories": [], "commands": [], "undoCommands": [] }
            """);
        var r = Passthru("setup", "--root", _tree, "--undo");
        Assert.Equal(1, r.ExitCode);
        AssertOneLine(r.Stderr, "leaves the root");
        Assert.Equal("precious", File.ReadAllText(victim));
    }

    // ---- inputs that crashed with a stack trace, hung, or grew without bound ----

    [Theory]
    [InlineData("--kernel")]
    [InlineData("--menu")]
    [InlineData("--initrd")]
    [InlineData("--disk")]
    [InlineData("--cdrom")]
    [InlineData("--serial-log")]
    [InlineData("--profile")]
    [InlineData("--script")]
    [InlineData("--qemu")]
    public void An_empty_file_name_is_one_line(string option)
    {
        string[] args = option == "--kernel" ? ["run", "--dry-run", "--root", _tree, option, ""]
            : option == "--menu" ? ["run", "--dry-run", "--root", _tree, option, ""]
            : ["run", "--dry-run", "--root", _tree, "--kernel", Kernel, option, ""];
        var r = Passthru(args);
        Assert.Equal(2, r.ExitCode);
        AssertOneLine(r.Stderr, $"{option} is empty");
    }

    [Fact]
    public void A_control_character_in_the_kernel_command_line_is_refused_for_every_target()
    {
        foreach (var command in new[] { new[] { "export", "libvirt" }, ["export", "kubevirt", "--image", "r.example/x:1"], ["run", "--dry-run"] })
        {
            var r = Passthru([.. command, "--root", _tree, "--kernel", Kernel, "--append", "console=ttyS0\u0001\uFFFE"]);
            Assert.Equal(2, r.ExitCode);
            AssertOneLine(r.Stderr, "--append 'console=ttyS0\\x01\\ufffe': a kernel command line cannot hold control characters");
        }
    }

    [Fact]
    public void A_nul_in_a_menu_or_a_profile_path_is_one_line_naming_the_place()
    {
        var menu = Path.Combine(_dir, "menu.lst");
        File.WriteAllText(menu, "kernel /x86_64/sbin/elver\nmodule /x86_64/sbin/cpu\0evil\n");
        var m = Passthru("run", "--dry-run", "--root", _tree, "--menu", menu);
        Assert.Equal(2, m.ExitCode);
        AssertOneLine(m.Stderr, $"{menu}:2: a control character (\\0)");
        var profile = Path.Combine(_dir, "vm.toml");
        File.WriteAllText(profile, "kernel = \"ker\\u0000nel\"\n");
        var p = Passthru("run", "--dry-run", "--root", _tree, "--profile", profile);
        Assert.Equal(2, p.ExitCode);
        AssertOneLine(p.Stderr, "'kernel' holds a NUL character");
    }

    [Fact]
    public void Devices_and_fifos_named_as_input_files_are_refused_at_once_not_read_forever()
    {
        var fifo = Path.Combine(_dir, "fifo");
        Assert.Equal(0, Repo.Exec("mkfifo", fifo).ExitCode);
        var ids = Passthru("list", "--root", _tree, "--pci-ids", "/dev/zero");
        Assert.Equal(2, ids.ExitCode);
        AssertOneLine(ids.Stderr, "--pci-ids /dev/zero is a character device, not a regular file");
        var profile = Passthru("run", "--dry-run", "--root", _tree, "--profile", fifo);
        Assert.Equal(2, profile.ExitCode);
        AssertOneLine(profile.Stderr, "is a FIFO, not a regular file");
        var script = Passthru("run", "--dry-run", "--root", _tree, "--kernel", Kernel, "--script", "/dev/zero");
        Assert.Equal(2, script.ExitCode);
        AssertOneLine(script.Stderr, "--script /dev/zero is a character device");
    }

    [Fact]
    public void A_fifo_in_place_of_a_sysfs_attribute_does_not_hang_list()
    {
        // modalias: the file list reads the IDs from.
        var vendor = Path.Combine(_tree, "sys/bus/pci/devices/0000:00:02.0/modalias");
        File.Delete(vendor);
        Assert.Equal(0, Repo.Exec("mkfifo", vendor).ExitCode);
        var r = Repo.Exec("timeout", "60", Binary, "list", "--root", _tree, "--pci-ids", Repo.SystemPciIds);
        Assert.NotEqual(124, r.ExitCode); // timeout(1)'s code: list hung
        Assert.True(r.ExitCode is 0 or 1 or 2, r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }

    [Fact]
    public void A_driver_name_with_a_line_break_stays_on_its_line_in_list()
    {
        var devices = Path.Combine(_tree, "sys/bus/pci/devices/0000:00:02.0");
        Directory.CreateDirectory(Path.Combine(_tree, "sys/bus/pci/drivers/e1000e\nfake"));
        File.Delete(Path.Combine(devices, "driver"));
        File.CreateSymbolicLink(Path.Combine(devices, "driver"), "../../../bus/pci/drivers/e1000e\nfake");
        var r = Passthru("list", "--root", _tree, "--pci-ids", Repo.SystemPciIds);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains(r.Stdout.Split('\n'), l => l.StartsWith("0000:00:02.0 ", StringComparison.Ordinal) && l.Contains("driver=e1000e\\nfake group=2", StringComparison.Ordinal));
        Assert.DoesNotContain(r.Stdout.Split('\n'), l => l.StartsWith("fake", StringComparison.Ordinal));
    }

    [Fact]
    public void Output_to_a_full_device_is_one_line_not_a_crash()
    {
        var r = Repo.Exec("sh", "-c", $"'{Binary}' list --root '{_tree}' --pci-ids '{Repo.SystemPciIds}' > /dev/full");
        Assert.Equal(1, r.ExitCode);
        AssertOneLine(r.Stderr, "cannot write the output");
    }

    [Fact]
    public void A_closed_stdout_is_one_line_not_a_crash()
    {
        // (Console's stream threw an unhandled UnauthorizedAccessException here, exit 134; stdout is written directly now.)
        var r = Repo.Exec("sh", "-c", $"'{Binary}' list --root '{_tree}' --pci-ids '{Repo.SystemPciIds}' >&-");
        Assert.Equal(1, r.ExitCode);
        AssertOneLine(r.Stderr, "cannot write the output");
    }

    [Fact]
    public void A_reader_that_stops_early_ends_the_output_quietly()
    {
        // `passthru list | head -1`: the rest of the output has nobody to read it (EPIPE), which is no error.
        // The reader closes its end at once, so passthru's first write already finds nobody (SIGPIPE is ignored by
        // the runtime: the write fails with EPIPE).
        var r = Repo.Exec("bash", "-c", $"'{Binary}' list --root '{_tree}' --pci-ids '{Repo.SystemPciIds}' | (exec <&-; sleep 0.3); echo \"passthru exited ${{PIPESTATUS[0]}}\"");
        Assert.Equal("passthru exited 0", r.Stdout.Trim());
        Assert.Equal("", r.Stderr);
    }

    [Fact]
    public void An_unknown_command_is_named_with_the_commands_there_are()
    {
        var r = Passthru("frob", "0000:00:02.0"); // (the issue's example, `rom`, is a command now)
        Assert.Equal(2, r.ExitCode);
        AssertOneLine(r.Stderr, "unknown command 'frob': the commands are check, list, show");
    }

    [Fact]
    public void A_bad_regular_expression_is_explained_in_words_not_resource_keys()
    {
        var r = Passthru("run", "--dry-run", "--root", _tree, "--kernel", Kernel, "--expect", "a**");
        Assert.Equal(2, r.ExitCode);
        AssertOneLine(r.Stderr, "--expect 'a**' is not a regular expression: nested quantifiers not parenthesized at character 3");
    }

    [Fact]
    public void A_garbage_vendor_in_a_tree_of_thousands_of_functions_is_one_line()
    {
        var big = Path.Combine(_dir, "big");
        Assert.Equal(0, Repo.Exec("/usr/bin/python3", Path.Combine(Repo.Root, "bench/gen-sysfs-tree.py"), big).ExitCode);
        // The 301st function (sorted): past the 256 that list reads one by one, so in the parallel part.
        var function = Directory.GetFileSystemEntries(Path.Combine(big, "sys/bus/pci/devices")).Order(StringComparer.Ordinal).Skip(300).First();
        var vendor = Path.Combine(function, "modalias");
        File.WriteAllText(vendor, "pci:v0xzzzzzd0000154Csv00008086sd00000000bc02sc00i00\n");
        var r = Passthru("list", "--root", big, "--pci-ids", Repo.SystemPciIds);
        Assert.NotEqual(0, r.ExitCode);
        Assert.DoesNotContain("AggregateException", r.Stderr);
        AssertOneLine(r.Stderr, "0xzzzz");
    }

    [Fact]
    public void Temporary_files_left_by_a_kill_during_a_save_are_cleaned_up_by_the_next_change()
    {
        var state = StateDir;
        var stale = Path.Combine(state, ".state.json.passthru-999999.tmp");
        File.WriteAllText(stale, "{ half a journal");
        var r = Passthru("restore", "--root", _tree, "--state-dir", state);
        Assert.Equal(0, r.ExitCode);
        Assert.False(File.Exists(stale));
    }

    // ---- Messages in our words, not the runtime's resource keys (#25 item 6) ----

    /// <summary>vfio-pci loaded in the tree (its module directories), so a bind gets to its sysfs writes.</summary>
    private void Vfio()
    {
        foreach (var module in new[] { "vfio_pci", "vfio_iommu_type1" }) Directory.CreateDirectory(Path.Combine(_tree, "sys/module", module));
    }

    [Fact]
    public void A_sysfs_file_missing_during_a_bind_is_said_in_our_words()
    {
        // The capture has no drivers/e1000e/unbind: the bind's first write fails with the runtime's FileNotFoundException,
        // whose text the static binary carries only as "IO_FileNotFound_FileName, PATH".
        Vfio();
        var r = Passthru("bind", "0000:00:02.0", "--root", _tree, "--state-dir", StateDir);
        Assert.Equal(1, r.ExitCode);
        AssertNoResourceKey(r.Stderr);
        Assert.Contains($"{_tree}/sys/bus/pci/drivers/e1000e/unbind: no such file", r.Stderr);
    }

    [Fact]
    public void A_permission_problem_is_said_in_our_words()
    {
        // As nobody: the tree's sysfs files are root's, so the bind's first write (driver_override) is refused (EACCES,
        // which the runtime turns into an UnauthorizedAccessException worded "UnauthorizedAccess_IODenied_Path, PATH").
        Vfio();
        File.SetUnixFileMode(StateDir, (UnixFileMode)0x1ff);
        File.SetUnixFileMode(_dir, (UnixFileMode)0x1ed);
        var r = Repo.Exec("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", Binary,
            "bind", "0000:00:02.0", "--root", _tree, "--state-dir", StateDir);
        Assert.Equal(1, r.ExitCode);
        AssertNoResourceKey(r.Stderr);
        Assert.Contains($"{_tree}/sys/bus/pci/devices/0000:00:02.0/driver_override: permission denied", r.Stderr);
    }

    [Fact]
    public void A_journal_value_of_the_wrong_type_is_said_in_our_words()
    {
        File.WriteAllText(Path.Combine(StateDir, "state.json"), """{ "version": 1, "functions": [ { "address": 5, "driver": "e1000e", "driver_override": null, "group": 2 } ] }""");
        var r = Passthru("restore", "--root", _tree, "--state-dir", StateDir);
        Assert.Equal(1, r.ExitCode);
        AssertOneLine(r.Stderr, "is damaged (a field missing, unknown to this passthru (a newer one wrote it?) or of the wrong type at $.functions[0].address)");
    }

    [Fact]
    public void A_missing_serial_log_directory_is_said_in_our_words()
    {
        // run writes its serial log with the runtime's StreamWriter: a missing directory is a DirectoryNotFoundException.
        var log = Path.Combine(_dir, "no-such-dir", "serial.log");
        var r = Passthru("run", "--root", _tree, "--kernel", Kernel, "--serial-log", log, "--qemu", "/bin/true", "--timeout", "5");
        Assert.NotEqual(0, r.ExitCode);
        AssertNoResourceKey(r.Stderr);
        Assert.Contains("no-such-dir", r.Stderr);
    }
}
