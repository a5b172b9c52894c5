using Passthru.Tests.Support;

namespace Passthru.Tests.Cli;

/// <summary>The command line builds only the command it names; help, version and the parser's errors still work.</summary>
public class CommandLineTests
{
    private static readonly string[] Commands = ["check", "list", "show", "bind", "unbind", "restore", "run", "setup", "export"];

    [Fact]
    public void Help_lists_every_command()
    {
        var r = CliRunner.Run("--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("Usage:\n  passthru [command] [options]", r.Stdout);
        foreach (var c in Commands) Assert.Matches($"(?m)^  {c} ", r.Stdout);
    }

    [Theory]
    [InlineData("bind", "passthru bind <device>... [options]")]
    [InlineData("restore", "passthru restore [<device>...] [options]")]
    [InlineData("list", "passthru list [options]")]
    public void A_commands_help_is_its_own(string command, string usage)
    {
        var r = CliRunner.Run(command, "-h");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains(usage, r.Stdout);
        Assert.Contains("--root", r.Stdout);   // the global options stay visible
    }

    [Fact]
    public void Version_prints_the_version()
    {
        var r = CliRunner.Run("--version");
        Assert.Equal(0, r.ExitCode);
        Assert.Matches(@"^\d+\.\d+\.\d+", r.Stdout);
    }

    [Theory]
    [InlineData(new[] { "bind", "00:02.0" }, "bind")]
    [InlineData(new[] { "--root", "/", "--pci-ids", "x", "restore" }, "restore")]
    [InlineData(new[] { "--root", "list", "show", "00:02.0" }, "show")]   // a global option's value is not the command
    [InlineData(new[] { "--root=/tmp", "-v", "check" }, "check")]
    [InlineData(new[] { "bogus", "bind" }, null)]
    [InlineData(new[] { "--help" }, null)]
    public void The_command_named_is_the_first_word_that_is_no_option_or_option_value(string[] args, string? expected) =>
        Assert.Equal(expected, Passthru.Cli.Cli.CommandName(args));

    [Fact]
    public void An_unknown_command_is_named_with_the_list_and_a_missing_argument_gets_the_parsers_one_line()
    {
        var unknown = CliRunner.Run("bogus", "x");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Equal("passthru: unknown command 'bogus': the commands are check, list, show, bind, unbind, restore, vfs, rom, run, guests, attach, detach, setup, image, export, completion, man (see passthru --help)\n", unknown.Stderr);
        var r = CliRunner.Run("bind");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("passthru: Required argument missing for command: 'bind'. (see passthru --help)\n", r.Stderr);
    }

    [Fact]
    public void Restore_without_devices_takes_them_all()
    {
        // Four functions bound by Passthru (the journal in a scratch state directory says so), one more on vfio-pci that
        // it did not bind: restore without devices plans all four, and only them.
        var dir = Directory.CreateTempSubdirectory("passthru-state-").FullName;
        var tree = Repo.CopyCapture("vhost");
        try
        {
            foreach (var a in new[] { "0000:00:02.0", "0000:00:03.0", "0000:02:01.0", "0000:02:02.0", "0000:00:04.0" })
                Passthru.Tests.Binding.SysfsShaper.Rebind(tree, a, "vfio-pci");
            File.WriteAllText(Path.Combine(dir, "state.json"), """
                {"version": 1, "functions": [
                  {"address": "0000:00:02.0", "driver": "e1000e", "driver_override": null, "group": 2},
                  {"address": "0000:00:03.0", "driver": "e1000e", "driver_override": null, "group": 3},
                  {"address": "0000:02:01.0", "driver": "e1000", "driver_override": null, "group": 8},
                  {"address": "0000:02:02.0", "driver": "e1000", "driver_override": null, "group": 8}]}
                """);
            var r = CliRunner.Run("restore", "--dry-run", "--root", tree, "--pci-ids", Repo.SystemPciIds, "--state-dir", dir);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Equal("""
                plan (give back):
                   1. clear /sys/bus/pci/devices/0000:00:02.0/driver_override
                   2. write 0000:00:02.0 > /sys/bus/pci/drivers/vfio-pci/unbind
                   3. write 0000:00:02.0 > /sys/bus/pci/drivers_probe
                   4. check 0000:00:02.0 is bound to e1000e
                   5. clear /sys/bus/pci/devices/0000:00:03.0/driver_override
                   6. write 0000:00:03.0 > /sys/bus/pci/drivers/vfio-pci/unbind
                   7. write 0000:00:03.0 > /sys/bus/pci/drivers_probe
                   8. check 0000:00:03.0 is bound to e1000e
                   9. clear /sys/bus/pci/devices/0000:02:01.0/driver_override
                  10. write 0000:02:01.0 > /sys/bus/pci/drivers/vfio-pci/unbind
                  11. write 0000:02:01.0 > /sys/bus/pci/drivers_probe
                  12. check 0000:02:01.0 is bound to e1000
                  13. clear /sys/bus/pci/devices/0000:02:02.0/driver_override
                  14. write 0000:02:02.0 > /sys/bus/pci/drivers/vfio-pci/unbind
                  15. write 0000:02:02.0 > /sys/bus/pci/drivers_probe
                  16. check 0000:02:02.0 is bound to e1000

                """, r.Stdout);
            // Named, the same four give the same plan; one named gives that one alone.
            Assert.Equal(r.Stdout, CliRunner.Run("restore", "00:02.0", "00:03.0", "02:01.0", "02:02.0", "--dry-run", "--root", tree, "--state-dir", dir).Stdout);
            Assert.Equal("""
                plan (give back):
                   1. clear /sys/bus/pci/devices/0000:00:03.0/driver_override
                   2. write 0000:00:03.0 > /sys/bus/pci/drivers/vfio-pci/unbind
                   3. write 0000:00:03.0 > /sys/bus/pci/drivers_probe
                   4. check 0000:00:03.0 is bound to e1000e

                """, CliRunner.Run("restore", "00:03.0", "--dry-run", "--root", tree, "--state-dir", dir).Stdout);

            // Applied (a stand-in kernel probes each function as the real one would): all four back, the fifth left alone.
            using (new Passthru.Tests.Binding.SysfsShaper.Kernel(tree, new Dictionary<string, string>
                { ["0000:00:02.0"] = "e1000e", ["0000:00:03.0"] = "e1000e", ["0000:02:01.0"] = "e1000", ["0000:02:02.0"] = "e1000" }))
            {
                var applied = CliRunner.Run("restore", "--root", tree, "--state-dir", dir);
                Assert.True(applied.ExitCode == 0, applied.Stderr);
            }
            string Driver(string a) => Path.GetFileName(new FileInfo(Path.Combine(tree, "sys/bus/pci/devices", a, "driver")).LinkTarget)!;
            Assert.Equal(["e1000e", "e1000e", "e1000", "e1000", "vfio-pci"], new[] { "0000:00:02.0", "0000:00:03.0", "0000:02:01.0", "0000:02:02.0", "0000:00:04.0" }.Select(Driver));
            Assert.False(File.Exists(Path.Combine(dir, "state.json")));
        }
        finally
        {
            Directory.Delete(dir, true);
            Directory.Delete(tree, true);
        }
    }
}
