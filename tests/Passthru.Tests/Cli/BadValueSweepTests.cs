using System.CommandLine;
using Passthru.Cli;
using Passthru.Tests.Support;

namespace Passthru.Tests.Cli;

/// <summary>
/// Every option of every command, given a bad value: one line on stderr that names what was wrong, exit code 2, and
/// nothing of .NET or a library in it (no type names, no exception names). The table below must cover every option:
/// a new option without a bad value here fails the test.
/// </summary>
public sealed class BadValueSweepTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("passthru-sweep-").FullName;
    private string Kernel => Path.Combine(_dir, "kernel.elf");
    public void Dispose() => Directory.Delete(_dir, true);
    public BadValueSweepTests() => File.WriteAllText(Kernel, "");

    /// <summary>A command line that works, to which one bad option is added.</summary>
    private string[] Base(string command) => command switch
    {
        "show" => ["show", "00:02.0"],
        "bind" => ["bind", "00:02.0", "--dry-run"],
        "unbind" => ["unbind", "00:02.0", "--dry-run", "--state-dir", _dir],
        "restore" => ["restore", "--dry-run", "--state-dir", _dir],
        "vfs" => ["vfs", "03:00.0", "--dry-run", "--state-dir", _dir],
        "run" => ["run", "--dry-run", "--kernel", Kernel],
        "setup" => ["setup", "--boot-loader", "kernel-install"],
        "export libvirt" => ["export", "libvirt", "--kernel", Kernel],
        "export cloud-hypervisor" => ["export", "cloud-hypervisor", "--kernel", Kernel],
        "export proxmox" => ["export", "proxmox", "--kernel", Kernel],
        "export nova" => ["export", "nova", "--device", "00:02.0"],
        "export kubevirt" => ["export", "kubevirt", "--kernel", Kernel, "--image", "registry.example.com/guests/probe:1"],
        "completion" => ["completion", "bash"],
        _ => command.Split(' '),
    };

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
        ["--machine"] = "",
        ["--accel"] = "fast",
        ["--net"] = "tap",
        ["--qemu"] = "/nonexistent/qemu",
        ["--device"] = "zz:zz.z",
        ["--name"] = "a/b",
        ["--output"] = "/nonexistent-dir/domain.xml",
        ["--boot-loader"] = "lilo",
        ["--image"] = "Not An Image",
        ["--flavor"] = "",
        ["--vmid"] = "abc",
        ["--count"] = "two",
        ["--vfs"] = "03:00.0=two",
    };

    public static IEnumerable<object[]> EveryOption()
    {
        var commands = Passthru.Cli.Cli.FullTree().Subcommands.Where(c => !c.Hidden);
        var global = new GlobalOptions();
        foreach (var (path, command) in commands.SelectMany(c => c.Subcommands.Count > 0 ? c.Subcommands.Select(s => ($"{c.Name} {s.Name}", s)) : [(c.Name, c)]))
            foreach (var option in command.Options.Append(global.Root).Append(global.PciIds))
                yield return [path, option.Name, option is Option<bool>];
    }

    [Theory]
    [MemberData(nameof(EveryOption))]
    public void A_bad_value_is_one_plain_line_and_exit_2(string command, string option, bool flag)
    {
        string[] bad;
        if (flag) bad = [$"{option}=maybe"];
        else
        {
            Assert.True(BadValues.ContainsKey(option), $"{command} {option}: add a bad value for it to this test's table");
            if (BadValues[option] is not string value) return;
            if (option == "--name" && command is "run" or "export cloud-hypervisor") return; // QEMU's -name takes any text (commas are escaped); cloud-hypervisor has no names
            if (option == "--qemu" && command.StartsWith("export ", StringComparison.Ordinal)) return; // the emulator's path on the host that runs the VM
            bad = [option, value];
        }
        var args = Base(command).Concat(bad).ToList();
        if (command == "vfs" && option != "--count") args.AddRange(["--count", "1"]); // required: the base line works
        // vfs needs an SR-IOV physical function, which only the SR-IOV virtual host's capture has.
        if (option != "--root") args.AddRange(["--root", Repo.Capture(command == "vfs" ? "vhost-sriov" : "vhost")]);
        if (option != "--pci-ids") args.AddRange(["--pci-ids", Repo.SystemPciIds]);
        var r = CliRunner.Run([.. args]);
        var text = $"passthru {string.Join(' ', args)}\n=> exit {r.ExitCode}\n{r.Stderr}";
        Assert.True(r.ExitCode == 2, text);
        Assert.True(r.Stderr.StartsWith("passthru: ", StringComparison.Ordinal) && r.Stderr.IndexOf('\n') == r.Stderr.Length - 1, text);
        foreach (var leak in new[] { "System.", "Exception", "Tomlyn", "Nullable", "`1" })
            Assert.False(r.Stderr.Contains(leak, StringComparison.Ordinal), text);
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
