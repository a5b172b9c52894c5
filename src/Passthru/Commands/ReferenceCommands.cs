using System.CommandLine;
using Passthru.Cli.Reference;

namespace Passthru.Cli.Commands;

/// <summary>
/// `passthru completion bash|zsh|fish` and the hidden `passthru man`: both generated from every command's definition,
/// so neither can drift from --help. They build the whole command tree, which no other command needs.
/// </summary>
public static class ReferenceCommands
{
    public static readonly string[] Shells = ["bash", "zsh", "fish"];

    public static Command CreateCompletion(TextWriter stdout)
    {
        var shell = new Argument<string>("shell") { Description = string.Join(", ", Shells) };
        shell.CompletionSources.Add(Shells);
        var command = new Command("completion", "Print the shell completion script for bash, zsh or fish") { shell };
        command.SetAction(p =>
        {
            var name = p.GetValue(shell)!;
            var tree = CommandInfo.From(Cli.FullTree());
            stdout.Write(name switch
            {
                "bash" => CompletionScripts.Bash(tree),
                "zsh" => CompletionScripts.Zsh(tree),
                "fish" => CompletionScripts.Fish(tree),
                _ => throw new UserError($"no completion for shell '{name}': use {string.Join(", ", Shells[..^1])} or {Shells[^1]}", ExitCodes.Usage),
            });
            return ExitCodes.Ok;
        });
        return command;
    }

    public static Command CreateMan(TextWriter stdout)
    {
        var command = new Command("man", "Print the manual page passthru(1) in roff (man -l - renders it)") { Hidden = true };
        command.SetAction(_ =>
        {
            stdout.Write(ManPage.Render(CommandInfo.From(Cli.FullTree()), Version()));
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>What --version prints, without the source revision the SDK appends ("1.0.0+9f1c...").</summary>
    public static string Version()
    {
        var info = typeof(Cli).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion;
        return (info ?? typeof(Cli).Assembly.GetName().Version?.ToString(3) ?? "0.0.0").Split('+')[0];
    }
}
