using System.CommandLine;
using System.CommandLine.Completions;

namespace Passthru.Cli.Reference;

/// <summary>
/// The command line as data, read from System.CommandLine's own command tree: the completion scripts and the man page
/// are generated from it, so they list exactly what the parser accepts and --help shows.
/// </summary>
public sealed record CommandInfo(
    IReadOnlyList<string> Path, string Description, IReadOnlyList<OptionInfo> Options, IReadOnlyList<ArgumentInfo> Arguments,
    IReadOnlyList<CommandInfo> Subcommands)
{
    public string Name => Path[^1];

    /// <summary>"passthru export libvirt".</summary>
    public string FullName => string.Join(' ', Path);

    /// <summary>This command and every command below it, depth first, the root first.</summary>
    public IEnumerable<CommandInfo> SelfAndDescendants() => Subcommands.SelectMany(s => s.SelfAndDescendants()).Prepend(this);

    /// <summary>The tree below <paramref name="command"/>, hidden commands and options left out.</summary>
    public static CommandInfo From(Command command) => From(command, []);

    private static CommandInfo From(Command command, IReadOnlyList<string> parent)
    {
        IReadOnlyList<string> path = [.. parent, command.Name];
        return new CommandInfo(
            path,
            command.Description ?? "",
            command.Options.Where(o => !o.Hidden).Select(OptionInfo.From).ToList(),
            command.Arguments.Where(a => !a.Hidden).Select(ArgumentInfo.From).ToList(),
            command.Subcommands.Where(c => !c.Hidden).Select(c => From(c, path)).ToList());
    }
}

/// <param name="Names">Every spelling, short ones first: ["-v", "--verbose"].</param>
/// <param name="ValueName">What the value is called in a synopsis (as --help shows it), when the option takes one.</param>
/// <param name="Values">The fixed values it offers for completion (empty: any value).</param>
/// <param name="Repeatable">May be given more than once (collects a list).</param>
/// <param name="Global">Accepted by every command below the one that defines it.</param>
public sealed record OptionInfo(
    IReadOnlyList<string> Names, string Description, string? ValueName, IReadOnlyList<string> Values, bool Repeatable, bool Global)
{
    public bool TakesValue => ValueName is not null;

    public IEnumerable<string> ShortNames => Names.Where(n => !n.StartsWith("--", StringComparison.Ordinal));

    public IEnumerable<string> LongNames => Names.Where(n => n.StartsWith("--", StringComparison.Ordinal));

    /// <summary>
    /// -h/--help and --version: System.CommandLine adds them only when they are asked for (see Cli.Run), and their
    /// own descriptions come from its resources, which the trimmed binary does not carry.
    /// </summary>
    public static readonly OptionInfo Help = new(["-h", "--help"], "Show help and usage information", null, [], false, Global: true);

    public static readonly OptionInfo Version = new(["--version"], "Show the version", null, [], false, Global: false);

    public static OptionInfo From(Option option)
    {
        var names = option.Aliases.Prepend(option.Name).Distinct()
            .OrderBy(n => n.StartsWith("--", StringComparison.Ordinal)).ThenBy(n => n, StringComparer.Ordinal).ToList();
        // A bool option is a switch: it is given without a value, and its completion sources (true, false) are moot.
        bool isSwitch = option.ValueType == typeof(bool) || option.Arity.MaximumNumberOfValues == 0;
        var values = isSwitch ? [] : option.CompletionSources.SelectMany(source => source(CompletionContext.Empty)).Select(i => i.Label).Distinct().ToList();
        return new OptionInfo(
            names,
            option.Description ?? "",
            isSwitch ? null : option.HelpName ?? option.Name.TrimStart('-'),
            values,
            Repeatable: !isSwitch && option.Arity.MaximumNumberOfValues > 1,
            Global: option.Recursive);
    }
}

/// <param name="Name">As --help shows it: "device".</param>
public sealed record ArgumentInfo(string Name, string Description, int MinimumCount, int MaximumCount, IReadOnlyList<string> Values)
{
    public bool Repeatable => MaximumCount > 1;

    public bool Optional => MinimumCount == 0;

    /// <summary>The argument in a synopsis, as --help writes it: &lt;device&gt;..., [&lt;device&gt;...].</summary>
    public string Synopsis => (Optional ? "[" : "") + $"<{Name}>" + (Repeatable ? "..." : "") + (Optional ? "]" : "");

    public static ArgumentInfo From(Argument argument) => new(
        argument.HelpName ?? argument.Name,
        argument.Description ?? "",
        argument.Arity.MinimumNumberOfValues,
        argument.Arity.MaximumNumberOfValues,
        argument.CompletionSources.SelectMany(source => source(CompletionContext.Empty)).Select(i => i.Label).Distinct().ToList());
}
