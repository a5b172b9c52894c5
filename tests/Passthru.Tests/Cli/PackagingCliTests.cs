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

    /// <summary>
    /// What each command should offer, from the parser's own tree: its subcommands, and every spelling of its options,
    /// the root's global ones (below the root) and -h/--help (--version on the root only). Keyed "passthru export libvirt".
    /// </summary>
    private static Dictionary<string, (SortedSet<string> Subcommands, SortedSet<string> Options)> Expected()
    {
        var expected = new Dictionary<string, (SortedSet<string>, SortedSet<string>)>();
        void Walk(Command c, string path)
        {
            var options = new SortedSet<string>(c.Options.Where(o => !o.Hidden).SelectMany(o => o.Aliases.Prepend(o.Name)), StringComparer.Ordinal) { "-h", "--help" };
            if (c == Tree) options.Add("--version");
            else options.UnionWith(Tree.Options.Where(o => o.Recursive).SelectMany(o => o.Aliases.Prepend(o.Name)));
            var subs = c.Subcommands.Where(s => !s.Hidden).ToList();
            expected[path] = (new SortedSet<string>(subs.Select(s => s.Name), StringComparer.Ordinal), options);
            foreach (var sub in subs) Walk(sub, $"{path} {sub.Name}");
        }
        Walk(Tree, "passthru");
        return expected;
    }

    /// <summary>Shell words: bare, or in single quotes ('\'' and, for fish, \' and \\ inside them).</summary>
    private static List<string> Words(string line, bool fish)
    {
        var words = new List<string>();
        var word = new System.Text.StringBuilder();
        bool any = false;
        for (int i = 0; i < line.Length; i++)
        {
            char ch = line[i];
            if (ch == ' ') { if (any) words.Add(word.ToString()); word.Clear(); any = false; continue; }
            any = true;
            if (ch == '\\' && i + 1 < line.Length) { word.Append(line[++i]); continue; }
            if (ch != '\'') { word.Append(ch); continue; }
            for (i++; line[i] != '\''; i++)
            {
                if (fish && line[i] == '\\' && line[i + 1] is '\'' or '\\') i++;
                word.Append(line[i]);
            }
        }
        if (any) words.Add(word.ToString());
        return words;
    }

    private static SortedSet<string> Set(IEnumerable<string> words) => new(words, StringComparer.Ordinal);

    /// <summary>The bash script's lookup tables: `'passthru restore') REPLY='--all --dry-run ...' ;;`, by function.</summary>
    private static Dictionary<string, SortedSet<string>> BashTable(string script, string function)
    {
        var body = script[script.IndexOf($"\n{function}()\n", StringComparison.Ordinal)..];
        body = body[..body.IndexOf("\n    esac\n", StringComparison.Ordinal)];
        var table = new Dictionary<string, SortedSet<string>>();
        foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(body, @"^        '([^']*)'\) REPLY='([^']*)' ;;$", System.Text.RegularExpressions.RegexOptions.Multiline))
            table.Add(m.Groups[1].Value, Set(m.Groups[2].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries)));
        return table;
    }

    private static Dictionary<string, (SortedSet<string> Subcommands, SortedSet<string> Options)> ParseBash(string script)
    {
        var subcommands = BashTable(script, "_passthru_subcommands");
        return BashTable(script, "_passthru_options").ToDictionary(e => e.Key, e => (subcommands.GetValueOrDefault(e.Key) ?? Set([]), e.Value));
    }

    /// <summary>The zsh script's functions (_passthru_export_libvirt), each with its _arguments specs and its commands=( ) list.</summary>
    private static Dictionary<string, (SortedSet<string> Subcommands, SortedSet<string> Options)> ParseZsh(string script)
    {
        var parsed = new Dictionary<string, (SortedSet<string>, SortedSet<string>)>();
        var lines = script.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var header = System.Text.RegularExpressions.Regex.Match(lines[i], @"^(_passthru\w*)\(\) \{$");
            if (!header.Success) continue;
            var (subs, options) = (Set([]), Set([]));
            bool inCommands = false;
            for (i++; lines[i] != "}"; i++)
            {
                var line = lines[i];
                if (line.Trim() == "local -a commands=(") { inCommands = true; continue; }
                if (inCommands && line.Trim() == ")") { inCommands = false; continue; }
                if (inCommands) { subs.Add(Words(line.Trim(), fish: false)[0].Split(':')[0]); continue; }
                if (!line.StartsWith("    '", StringComparison.Ordinal) || !line.EndsWith(" \\", StringComparison.Ordinal)) continue;
                var spec = line.Trim();
                var grouped = System.Text.RegularExpressions.Regex.Match(spec, @"^'\([^)]*\)'\{([^}]*)\}'\[");
                if (grouped.Success) options.UnionWith(grouped.Groups[1].Value.Split(','));
                else if (System.Text.RegularExpressions.Regex.Match(spec, @"^'\*?(-[^\[']+)\[") is { Success: true } single) options.Add(single.Groups[1].Value);
                else Assert.Matches(@"^'(\*?:|: :->command'|\*:: :->argument')", spec); // arguments, or the dispatch to a subcommand
            }
            parsed.Add(header.Groups[1].Value, (subs, options));
        }
        return parsed;
    }

    /// <summary>
    /// The fish script's complete lines: -n '__fish_seen_subcommand_from export; and __fish_seen_subcommand_from libvirt'
    /// names the command; a subcommand's line adds `and not __fish_seen_subcommand_from` its siblings; a line without -n
    /// applies to every command, one with -n __fish_use_subcommand to the root only.
    /// </summary>
    private static Dictionary<string, (SortedSet<string> Subcommands, SortedSet<string> Options)> ParseFish(string script, IEnumerable<string> commands)
    {
        var parsed = commands.ToDictionary(c => c, _ => (Subcommands: Set([]), Options: Set([])));
        var everywhere = Set([]);
        foreach (var line in script.Split('\n').Where(l => l.StartsWith("complete ", StringComparison.Ordinal)))
        {
            var w = Words(line, fish: true);
            Assert.Equal(["complete", "-c", "passthru"], w.Take(3));
            if (w.Count == 4) { Assert.Equal("-f", w[3]); continue; }
            string? condition = null, arguments = null;
            var names = new List<string>();
            for (int i = 3; i < w.Count; i++)
                switch (w[i])
                {
                    case "-n": condition = w[++i]; break;
                    case "-s": names.Add("-" + w[++i]); break;
                    case "-l": names.Add("--" + w[++i]); break;
                    case "-a": arguments = w[++i]; break;
                    case "-d": i++; break;
                    case "-x" or "-r" or "-F": break;
                    default: Assert.Fail($"unexpected word {w[i]} in: {line}"); break;
                }
            var parts = (condition ?? "").Split("; and ", StringSplitOptions.RemoveEmptyEntries);
            var path = "passthru" + string.Concat(parts.Where(p => p.StartsWith("__fish_seen_subcommand_from ", StringComparison.Ordinal))
                .Select(p => " " + p["__fish_seen_subcommand_from ".Length..]));
            var not = parts.SingleOrDefault(p => p.StartsWith("not __fish_seen_subcommand_from ", StringComparison.Ordinal));
            if (names.Count == 0)
            {
                Assert.NotNull(arguments);
                if (not is null) continue; // an argument's values
                // A subcommand: one word, offered until one of its siblings was named (all of them listed).
                parsed[path].Subcommands.Add(Assert.Single(arguments.Split(' ')));
                Assert.Equal(Set(not["not __fish_seen_subcommand_from ".Length..].Split(' ')), Expected()[path].Subcommands);
            }
            else if (condition is null) everywhere.UnionWith(names);
            else if (condition == "__fish_use_subcommand") parsed["passthru"].Options.UnionWith(names);
            else parsed[path].Options.UnionWith(names);
        }
        foreach (var (_, (_, options)) in parsed) options.UnionWith(everywhere);
        return parsed;
    }

    [Theory]
    [MemberData(nameof(Shells))]
    public void Each_script_offers_each_command_exactly_its_subcommands_and_options(string shell)
    {
        var r = CliRunner.Run("completion", shell);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.Stderr);
        var expected = Expected();
        Assert.Contains("passthru export libvirt", expected.Keys);   // the walk reached the nested commands
        // zsh names a command's function from its path: "passthru export cloud-hypervisor" is _passthru_export_cloud_hypervisor.
        static string Zsh(string path) => "_" + path.Replace(' ', '_').Replace('-', '_');
        var actual = shell switch
        {
            "bash" => ParseBash(r.Stdout),
            "zsh" => ParseZsh(r.Stdout),
            _ => ParseFish(r.Stdout, expected.Keys),
        };
        var keys = shell == "zsh" ? expected.Keys.Select(Zsh) : expected.Keys;
        Assert.Equal(Set(keys), Set(actual.Keys));
        foreach (var (path, (subcommands, options)) in expected)
        {
            var (actualSubs, actualOptions) = actual[shell == "zsh" ? Zsh(path) : path];
            Assert.True(subcommands.SetEquals(actualSubs), $"{shell}, {path}: subcommands [{string.Join(' ', actualSubs)}], not [{string.Join(' ', subcommands)}]");
            Assert.True(options.SetEquals(actualOptions), $"{shell}, {path}: options [{string.Join(' ', actualOptions)}], not [{string.Join(' ', options)}]");
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
