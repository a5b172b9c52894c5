using System.CommandLine;
using Passthru.Cli;
using Passthru.Tests.Support;
using Xunit.Abstractions;

namespace Passthru.Tests.Cli;

/// <summary>
/// Every option of every command, given a bad value: one line on stderr that names what was wrong, exit code 2, and
/// nothing of .NET or a library in it (no type names, no exception names). The table below must cover every option:
/// a new option without a bad value here fails the test.
/// </summary>
public sealed class BadValueSweepTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = ScratchDirectory();
    private string? _tree;

    /// <summary>A scratch directory with an empty kernel.elf (a kernel the base lines can name), a menu and a console script.</summary>
    private static string ScratchDirectory()
    {
        var dir = GuestFiles.Directory("passthru-sweep-").FullName;
        File.WriteAllText(Path.Combine(dir, "kernel.elf"), "");
        // A Barrelfish build's layout: platforms/menu.lst names files from the build directory's top (the menu's parent's).
        Directory.CreateDirectory(Path.Combine(dir, "platforms"));
        File.WriteAllText(Path.Combine(dir, "platforms/menu.lst"), "title probe\nkernel /kernel.elf\n");
        File.WriteAllText(Path.Combine(dir, "console.script"), "expect probe\n");
        return dir;
    }

    private string Menu => Path.Combine(_dir, "platforms/menu.lst");
    private string Script => Path.Combine(_dir, "console.script");
    private string Kernel => Path.Combine(_dir, "kernel.elf");
    /// <summary>The base lines' state directory, and another one for --state-dir's own row.</summary>
    private string State => Path.Combine(_dir, "state");
    private string OtherState => Path.Combine(_dir, "other state");

    public void Dispose()
    {
        Directory.Delete(_dir, true);
        if (_tree is not null) Directory.Delete(_tree, true);
    }

    /// <summary>
    /// A command line that works on its own (<see cref="Each_base_line_works_on_its_own"/>), to which one bad option is
    /// added, or whose own value of that option is replaced: an option given twice would fail for that reason alone.
    /// </summary>
    private List<string> Base(string command)
    {
        List<string> line = command switch
        {
            "show" => ["show", "00:02.0"],
            "bind" => ["bind", "00:02.0", "--dry-run"],
            "unbind" => ["unbind", "02:01.0", "--dry-run", "--state-dir", State],
            "restore" => ["restore", "--dry-run", "--state-dir", State],
            "vfs" => ["vfs", "03:00.0", "--count", "1", "--dry-run", "--state-dir", State],
            "rom" => ["rom", "03:00.0", "--file", "/usr/share/seabios/vgabios-stdvga.bin"], // reading the device's needs a kernel
            "run" => ["run", "--dry-run", "--kernel", Kernel],
            "guests" => ["guests", "--state-dir", State],
            "attach" => ["attach", "g", "00:02.0", "--dry-run", "--state-dir", State],
            "detach" => ["detach", "g", "00:03.0", "--dry-run", "--state-dir", State],
            "setup" => ["setup", "--boot-loader", "kernel-install"],
            "export libvirt" => ["export", "libvirt", "--kernel", Kernel],
            "export cloud-hypervisor" => ["export", "cloud-hypervisor", "--kernel", Kernel],
            "export proxmox" => ["export", "proxmox", "--kernel", Kernel],
            "export nova" => ["export", "nova", "--device", "00:02.0"],
            "export kubevirt" => ["export", "kubevirt", "--kernel", Kernel, "--image", "registry.example.com/guests/probe:1"],
            "completion" => ["completion", "bash"],
            "image" => ["image", "--menu", Menu, "--output", Path.Combine(_dir, "probe.iso"), "--dry-run"],
            _ => [.. command.Split(' ')],
        };
        // vfs needs an SR-IOV physical function, which only the SR-IOV virtual host's capture has; unbind, attach and
        // detach need what Passthru left on the host (ScratchTree).
        var root = command switch
        {
            "vfs" => Repo.Capture("vhost-sriov"),
            "rom" => Repo.Capture("vhost-gpu"),
            "unbind" or "attach" or "detach" => ScratchTree(),
            "image" => "/", // grub-mkrescue is found on the live host, as qemu is for run
            _ => Repo.Capture("vhost"),
        };
        if (NeedsState(command)) WriteState(State);
        return [.. line, "--root", root, "--pci-ids", Repo.SystemPciIds];
    }

    /// <summary>
    /// A copy of the virtual host's capture as Passthru leaves it: 02:01.0 on vfio-pci (the journal says Passthru put
    /// it there), and the QEMU of a running guest 'g' (pid 4242, its QMP socket on its command line).
    /// </summary>
    private string ScratchTree()
    {
        if (_tree is not null) return _tree;
        _tree = Repo.CopyCapture("vhost");
        Passthru.Tests.Binding.SysfsShaper.Rebind(_tree, "0000:02:01.0", "vfio-pci");
        Directory.CreateDirectory(Path.Combine(_tree, "proc/4242"));
        File.WriteAllText(Path.Combine(_tree, "proc/4242/cmdline"), $"qemu-system-x86_64\0-qmp\0unix:{Path.Combine(State, "guests/g.qmp")},server=on,wait=off\0");
        return _tree;
    }

    private static bool NeedsState(string command) => command is "unbind" or "attach" or "detach";

    /// <summary>The journal (Passthru bound 02:01.0) and guest g's record: 00:03.0 attached on port hp0, hp1 free.</summary>
    private void WriteState(string dir)
    {
        Directory.CreateDirectory(Path.Combine(dir, "guests"));
        File.WriteAllText(Path.Combine(dir, "state.json"),
            """{"version": 1, "functions": [{"address": "0000:02:01.0", "driver": "e1000", "driver_override": null, "group": 8}]}""");
        File.WriteAllText(Path.Combine(dir, "guests/g.json"), $$"""
            {"name": "g", "runner_pid": 4241, "qemu_pid": 4242, "qmp": "{{Path.Combine(State, "guests/g.qmp")}}", "started": "2026-12-01T12:00:00Z",
             "machine": "q35", "ports": ["hp0", "hp1"], "bound": [],
             "devices": [{"address": "0000:00:03.0", "id": "hostdev-0000-00-03-0", "port": "hp0", "attached": true, "bound": ["0000:00:03.0"]}]}
            """);
    }

    /// <summary>The line with <paramref name="option"/> given <paramref name="value"/> (a switch: =maybe), in place of the base line's own (and of what it excludes).</summary>
    private List<string> With(List<string> line, string option, string? value)
    {
        // What the option needs beside it, so that its value is what is judged: a Barrelfish menu names the kernel
        // itself (the base line's --kernel would be refused beside it), --build-dir goes with a menu, --junit with a script.
        if (option is "--menu" or "--build-dir" && line.IndexOf("--kernel") is var k and >= 0)
        {
            line.RemoveRange(k, 2);
            if (option == "--build-dir") line.AddRange(["--menu", Menu]);
        }
        if (option == "--junit") line.AddRange(["--script", Script]);
        int i = line.IndexOf(option);
        if (value is null)
        {
            if (i >= 0) line[i] = option + "=maybe";
            else line.Add(option + "=maybe");
        }
        else if (i >= 0) line[i + 1] = value;
        else line.AddRange([option, value]);
        return line;
    }

    /// <summary>Bad values by option; null: every value is acceptable (the text is passed on as it is), with why.</summary>
    private static readonly Dictionary<string, string?> BadValues = new()
    {
        ["--root"] = "/nonexistent-passthru-root",
        ["--pci-ids"] = "/nonexistent/pci.ids",
        ["--class"] = "bogus",
        ["--vendor"] = null,      // a hex ID or part of a name: anything may match nothing
        ["--driver"] = null,      // a driver's name, or none
        ["--state-dir"] = null,   // created when first needed
        ["--serial-log"] = "/nonexistent-dir/console.log",
        ["--expect"] = "(unclosed",
        ["--timeout"] = "soon",
        ["--script"] = "/nonexistent/console.script",
        ["--junit"] = "/nonexistent-dir/report.xml",
        ["--profile"] = "/nonexistent/profile.toml",
        ["--menu"] = "/nonexistent/menu.lst",
        ["--build-dir"] = "/nonexistent/build",
        ["--kernel"] = "/nonexistent/kernel",
        ["--initrd"] = "/nonexistent/initrd",
        ["--append"] = null,      // the guest kernel's own command line
        ["--disk"] = "/nonexistent/disk.img",
        ["--cdrom"] = "/nonexistent/cd.iso",
        ["--memory"] = "2X",
        ["--cpus"] = "two",
        ["--hotplug-slots"] = "9",
        ["--reset-method"] = "florp",
        ["--machine"] = "",
        ["--accel"] = "fast",
        ["--display"] = "vga9000",
        ["--net"] = "tap",
        ["--qemu"] = "/nonexistent/qemu",
        ["--device"] = "zz:zz.z",
        ["--name"] = "a/b",
        ["--output"] = "/nonexistent-dir/domain.xml",
        ["--boot-loader"] = "lilo",
        ["--image"] = "Not An Image",
        ["--image-out"] = "/nonexistent-dir/bf.iso",
        ["--iso"] = "/nonexistent/bf.iso",
        ["--flavor"] = "",
        ["--vmid"] = "abc",
        ["--count"] = "two",
        ["--vfs"] = "03:00.0=two",
        ["--user"] = "Bad User",
        ["--file"] = "/nonexistent/vbios.rom",
    };

    /// <summary>Options whose value is any text for this command: the table's null ones, and two that a command passes on unread.</summary>
    private static bool TakesAnyText(string command, string option) =>
        BadValues.TryGetValue(option, out var bad) && bad is null
        || option == "--name" && command == "export cloud-hypervisor"                   // not used: a cloud-hypervisor VM has no name
        || option == "--qemu" && command.StartsWith("export ", StringComparison.Ordinal); // the emulator's path on the host that runs the VM

    /// <summary>Odd text that such an option must take.</summary>
    private string AnyText(string option) => option switch
    {
        "--vendor" => "no such vendor",
        "--driver" => "no-such-driver",
        "--state-dir" => OtherState,
        "--append" => "console=ttyS0 quiet x=\"a b\"",
        "--name" => "a/b",
        "--qemu" => "/opt/qemu 9/bin/qemu-system-x86_64",
        _ => throw new ArgumentException($"{option}: no any-text sample"),
    };

    /// <summary>An option a command refuses whatever its value, with the refusal's words (which name neither).</summary>
    private static string? RefusedWhateverTheValue(string command, string option) => (command, option) switch
    {
        ("export cloud-hypervisor", "--menu" or "--build-dir") => "cloud-hypervisor has no multiboot loader",
        ("export cloud-hypervisor", "--cdrom") => "--cdrom: cloud-hypervisor emulates no CD-ROM drive",
        ("export kubevirt", "--disk") => ": a KubeVirt VM takes its disks from volumes",
        ("export proxmox", "--disk") => ": Proxmox VMs take disks from its storages",
        ("run" or "export libvirt" or "export kubevirt" or "export proxmox", "--cdrom") => "--cdrom boots the guest from the ISO, --kernel from its own files: give one",
        _ => null,
    };

    [Fact]
    public void An_option_refused_whatever_its_value_is_refused_with_a_good_one_too()
    {
        // A menu that exists and boots elsewhere, a build directory and files that exist: the refusal is the same, so
        // those rows' errors are about the option, not its value.
        Assert.Equal(0, Run(With(Base("export libvirt"), "--menu", Menu)).ExitCode);
        Assert.Equal(0, Run(With(Base("export libvirt"), "--build-dir", _dir)).ExitCode);
        Assert.Equal(0, Run(With(Base("export libvirt"), "--disk", Kernel)).ExitCode);
        var cdrom = Base("export libvirt");
        cdrom.RemoveRange(cdrom.IndexOf("--kernel"), 2); // an ISO boots without a kernel (and is refused beside one)
        Assert.Equal(0, Run(With(cdrom, "--cdrom", Kernel)).ExitCode);
        var rows = new[] { ("export cloud-hypervisor", "--menu", Menu), ("export cloud-hypervisor", "--build-dir", _dir), ("export cloud-hypervisor", "--cdrom", Kernel),
            ("export kubevirt", "--disk", Kernel), ("export kubevirt", "--cdrom", Kernel), ("export proxmox", "--disk", Kernel), ("export proxmox", "--cdrom", Kernel),
            ("run", "--cdrom", Kernel), ("export libvirt", "--cdrom", Kernel) };
        foreach (var (command, option, value) in rows)
        {
            var r = Run(With(Base(command), option, value));
            Assert.Equal(2, r.ExitCode);
            Assert.Contains(RefusedWhateverTheValue(command, option)!, r.Stderr);
        }
    }

    public static IEnumerable<object[]> EveryOption()
    {
        var commands = Passthru.Cli.Cli.FullTree().Subcommands.Where(c => !c.Hidden);
        var global = new GlobalOptions();
        foreach (var (path, command) in commands.SelectMany(c => c.Subcommands.Count > 0 ? c.Subcommands.Select(s => ($"{c.Name} {s.Name}", s)) : [(c.Name, c)]))
            foreach (var option in command.Options.Append(global.Root).Append(global.PciIds))
                yield return [path, option.Name, option is Option<bool>];
    }

    public static IEnumerable<object[]> EveryCommand() => EveryOption().Select(r => (string)r[0]).Distinct().Select(c => new object[] { c });
    public static IEnumerable<object[]> BadValueRows() => EveryOption().Where(r => (bool)r[2] || !TakesAnyText((string)r[0], (string)r[1]));
    public static IEnumerable<object[]> AnyTextRows() => EveryOption().Where(r => !(bool)r[2] && TakesAnyText((string)r[0], (string)r[1])).Select(r => r[..2]);

    private CliResult Run(List<string> args)
    {
        var r = CliRunner.Run([.. args]);
        output.WriteLine($"passthru {string.Join(' ', args)}\n=> exit {r.ExitCode}\n{r.Stderr}");
        return r;
    }

    [Theory]
    [MemberData(nameof(EveryCommand))]
    public void Each_base_line_works_on_its_own(string command)
    {
        var r = Run(Base(command));
        Assert.True(r.ExitCode == 0, $"{command}: exit {r.ExitCode}\n{r.Stderr}");
        Assert.DoesNotContain("passthru: ", r.Stderr);
        Assert.NotEqual("", r.Stdout);
    }

    [Fact]
    public void Every_base_line_is_swept_and_the_rows_are_every_option()
    {
        Assert.Equal(20, EveryCommand().Count());
        Assert.Equal(EveryOption().Count(), BadValueRows().Count() + AnyTextRows().Count());
        Assert.Contains(BadValueRows(), r => (string)r[0] == "detach" && (string)r[1] == "--timeout");
        Assert.Contains(BadValueRows(), r => (string)r[0] == "run" && (string)r[1] == "--name");
    }

    [Theory]
    [MemberData(nameof(BadValueRows))]
    public void A_bad_value_is_one_plain_line_that_names_it_and_exit_2(string command, string option, bool flag)
    {
        string value = "maybe"; // a switch's: --dry-run=maybe
        if (!flag)
        {
            Assert.True(BadValues.ContainsKey(option), $"{command} {option}: add a bad value for it to this test's table");
            value = BadValues[option]!;
        }
        var r = Run(With(Base(command), option, flag ? null : value));
        var text = $"{command} {option} {(flag ? "=maybe" : value)}\n=> exit {r.ExitCode}\n{r.Stderr}";
        Assert.True(r.ExitCode == 2, text);
        Assert.True(r.Stderr.StartsWith("passthru: ", StringComparison.Ordinal) && r.Stderr.IndexOf('\n') == r.Stderr.Length - 1, text);
        foreach (var leak in new[] { "System.", "Exception", "Tomlyn", "Nullable", "`1" })
            Assert.False(r.Stderr.Contains(leak, StringComparison.Ordinal), text);
        // It says what was wrong: the option, or the value given (an empty one cannot be quoted in a way to find).
        Assert.True(r.Stderr.Contains(option, StringComparison.Ordinal) || value.Length > 0 && r.Stderr.Contains(value, StringComparison.Ordinal)
            || RefusedWhateverTheValue(command, option) is string refusal && r.Stderr.Contains(refusal, StringComparison.Ordinal), text);
        Assert.DoesNotContain("expects a single argument", r.Stderr);   // not the base line's own value given twice
        Assert.DoesNotContain("Required argument missing", r.Stderr);
    }

    [Theory]
    [MemberData(nameof(AnyTextRows))]
    public void An_option_that_takes_any_text_takes_odd_text(string command, string option)
    {
        if (option == "--state-dir" && NeedsState(command)) WriteState(OtherState); // the same state, somewhere else
        var r = Run(With(Base(command), option, AnyText(option)));
        Assert.True(r.ExitCode == 0, $"{command} {option} {AnyText(option)}\n=> exit {r.ExitCode}\n{r.Stderr}");
        Assert.DoesNotContain("passthru: ", r.Stderr);
    }

    [Theory]
    [InlineData("memory = 1.5\n")]
    [InlineData("memory = 1979-05-27\n")]
    [InlineData("devices = \"00:02.0\"\n")]
    [InlineData("devices = [1, 2]\n")]
    [InlineData("[menu]\nx = 1\n")]
    [InlineData("name = { a = 1 }\n")]
    [InlineData("timeout = -5\n")]
    [InlineData("net = 3\n")]
    [InlineData("= 1\n")]
    public void A_bad_profile_is_one_plain_line_and_exit_2(string toml)
    {
        var profile = Path.Combine(_dir, "bad.toml");
        File.WriteAllText(profile, toml);
        var r = CliRunner.OnCapture("vhost", "run", "--dry-run", "-f", profile, "--kernel", Kernel);
        var text = $"{toml}=> exit {r.ExitCode}\n{r.Stderr}";
        Assert.True(r.ExitCode == 2, text);
        Assert.True(r.Stderr.StartsWith($"passthru: {profile}: ", StringComparison.Ordinal) && r.Stderr.IndexOf('\n') == r.Stderr.Length - 1, text);
        foreach (var leak in new[] { "System.", "Exception", "Tomlyn", "Nullable", "`1" })
            Assert.False(r.Stderr.Contains(leak, StringComparison.Ordinal), text);
    }
}
