using System.CommandLine;
using Passthru.Tests.Support;

namespace Passthru.Tests.Cli;

/// <summary>
/// `passthru completion` and `passthru man`, in-process: whatever the command definitions hold, every command and
/// every option spelling reaches each script and the man page.
/// </summary>
public class PackagingCliTests
{
    private static readonly Command Tree = Passthru.Cli.Cli.FullTree();

    private static IEnumerable<Command> AllCommands(Command c) => c.Subcommands.Where(s => !s.Hidden).SelectMany(AllCommands).Prepend(c);

    public static TheoryData<string> Shells => new(["bash", "zsh", "fish"]);

    [Theory]
    [MemberData(nameof(Shells))]
    public void Each_script_names_every_command_and_option(string shell)
    {
        var r = CliRunner.Run("completion", shell);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.Stderr);
        foreach (var command in AllCommands(Tree))
        {
            Assert.Contains(command.Name, r.Stdout);
            foreach (var name in command.Options.Where(o => !o.Hidden).SelectMany(o => o.Aliases.Prepend(o.Name)))
            {
                // fish spells them as -l NAME and -s N
                var spelled = shell != "fish" ? name : name.StartsWith("--") ? $"-l {name[2..]}" : $"-s {name[1..]}";
                Assert.Contains(spelled, r.Stdout);
            }
        }
    }

    [Fact]
    public void The_man_page_names_every_command_and_option()
    {
        var r = CliRunner.Run("man");
        Assert.Equal(0, r.ExitCode);
        foreach (var command in AllCommands(Tree).Skip(1))
        {
            Assert.Contains($".SS {command.Name.Replace("-", "\\-")}", System.Text.RegularExpressions.Regex.Replace(r.Stdout, @"\.SS export (\w)", ".SS $1"));
            foreach (var name in command.Options.Where(o => !o.Hidden).SelectMany(o => o.Aliases.Prepend(o.Name)))
                Assert.Contains($"\\fB{name.Replace("-", "\\-")}\\fR", r.Stdout);
        }
    }

    [Fact]
    public void Help_lists_completion_but_not_the_hidden_man_command()
    {
        var help = CliRunner.Run("--help").Stdout;
        Assert.Matches("(?m)^  completion ", help);
        Assert.DoesNotMatch("(?m)^  man ", help);
    }

    [Theory]
    [InlineData("tcsh")]
    [InlineData("BASH")]
    public void An_unknown_shell_is_a_usage_error_in_one_line(string shell)
    {
        var r = CliRunner.Run("completion", shell);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.Equal($"passthru: no completion for shell '{shell}': use bash, zsh or fish\n", r.Stderr);
    }

    [Fact]
    public void Completion_without_a_shell_is_the_parsers_usage_error() =>
        Assert.Equal(2, CliRunner.Run("completion").ExitCode);
}
