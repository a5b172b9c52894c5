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
    public void An_unknown_command_and_a_missing_argument_get_the_parsers_one_line()
    {
        Assert.Equal("passthru: Required command was not provided. (see passthru --help)\n", CliRunner.Run("bogus", "x").Stderr);
        var r = CliRunner.Run("bind");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("passthru: Required argument missing for command: 'bind'. (see passthru --help)\n", r.Stderr);
    }

    [Fact]
    public void Restore_without_devices_takes_them_all()
    {
        var dir = Directory.CreateTempSubdirectory("passthru-state-").FullName;
        try
        {
            var r = CliRunner.OnCapture("vhost", "restore", "--dry-run", "--state-dir", dir);
            Assert.Equal(0, r.ExitCode);
            Assert.StartsWith("nothing to give back: Passthru has no devices bound", r.Stdout);
        }
        finally { Directory.Delete(dir, true); }
    }
}
