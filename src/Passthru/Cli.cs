using System.CommandLine;
using System.CommandLine.Help;
using Passthru;
using Passthru.Cli.Commands;

namespace Passthru.Cli;

/// <summary>
/// The command line: parses, dispatches to one class per command, and turns every <see cref="UserError"/> into one
/// line on stderr and an exit code. Tests call <see cref="Run"/> in-process with their own writers.
/// </summary>
public static partial class Cli
{
    /// <summary>Every command, by name, built only when the command line needs it.</summary>
    private static readonly (string Name, Func<GlobalOptions, TextWriter, TextWriter, Command> Create)[] Commands =
    [
        ("check", (g, o, _) => CheckCommand.Create(g, o)),
        ("list", ListCommand.Create),
        ("show", (g, o, _) => ShowCommand.Create(g, o)),
        ("bind", (g, o, _) => BindCommand.Create(g, o)),
        ("unbind", (g, o, _) => UnbindCommand.Create(g, o)),
        ("restore", (g, o, _) => UnbindCommand.CreateRestore(g, o)),
        ("vfs", (g, o, _) => VfsCommand.Create(g, o)),
        ("rom", (g, o, _) => RomCommand.Create(g, o)),
        ("run", RunCommand.Create),
        ("guests", (g, o, _) => HotplugCommands.CreateGuests(g, o)),
        ("attach", (g, o, _) => HotplugCommands.CreateAttach(g, o)),
        ("detach", (g, o, _) => HotplugCommands.CreateDetach(g, o)),
        ("setup", (g, o, _) => SetupCommand.Create(g, o)),
        ("image", (g, o, e) => ImageCommand.Create(g, o, e)),
        ("export", ExportCommand.Create),
        ("completion", (_, o, _) => ReferenceCommands.CreateCompletion(o)),
        ("man", (_, o, _) => ReferenceCommands.CreateMan(o)),
    ];

    private static readonly string[] HelpTokens = ["-h", "--help", "-?", "/h", "/?"];

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        _outputLost = false;
        var globals = new GlobalOptions();
        // A plain Command, not RootCommand: RootCommand always builds its help and version options, whose
        // descriptions come from System.CommandLine's resources, and a first resource lookup costs tens of
        // milliseconds under emulation (reflection over the assembly's attributes). `bind` and `restore` are each
        // one process of a bind + restore cycle, so start-up is most of their cost: help and version are added
        // only when asked for, and only the command named on the line is built.
        var root = NewRoot(globals);
        if (args.Any(a => HelpTokens.Contains(a))) root.Options.Add(new HelpOption());
        if (args.Contains("--version")) root.Options.Add(new VersionOption());
        var named = CommandName(args);
        if (named is null && FirstWord(args) is string unknown)
        {
            stderr.WriteLine($"passthru: unknown command '{Shown.Value(unknown)}': the commands are {string.Join(", ", Commands.Select(c => c.Name))} (see passthru --help)");
            return ExitCodes.Usage;
        }
        foreach (var (name, create) in Commands)
            if (named is null || named == name) root.Subcommands.Add(create(globals, stdout, stderr));

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            stderr.WriteLine($"passthru: {Plain(parse.Errors[0].Message)} (see passthru --help)");
            return ExitCodes.Usage;
        }
        try
        {
            // A pci.ids named on purpose must exist, whether or not this command prints names.
            _ = globals.Host(parse); // HostRoot refuses a root that is not a directory, for every command alike
            if (parse.GetValue(globals.PciIds) is string ids)
                Passthru.Host.InputFile.Require("--pci-ids", Passthru.Host.InputFile.FullPath("--pci-ids", ids));
            int code = parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
            // Output that never arrived (a full disk) fails the command, however well the command itself went.
            return Flush(stdout, stderr) ? code : ExitCodes.Failure;
        }
        catch (UserError e)
        {
            Flush(stdout, stderr);
            stderr.WriteLine($"passthru: {Shown.Message(e.Message)}");
            return e.ExitCode;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A file the command needed could not be read or written (permissions, a full disk): say which, in one line.
            Flush(stdout, stderr);
            stderr.WriteLine($"passthru: {Shown.Error(e)}");
            return ExitCodes.Failure;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Never a stack trace: whatever escaped the commands' own checks is a bug, said in one line (the static
            // binary carries resource keys, not messages, so the exception's type is the useful part).
            Flush(stdout, stderr);
            stderr.WriteLine($"passthru: internal error ({e.GetType().Name}): this is a bug in passthru; the host was left as the journal says (passthru restore gives devices back)");
            // For a bug report: PASSTHRU_DEBUG=1 adds where it happened.
            if (Environment.GetEnvironmentVariable("PASSTHRU_DEBUG") is { Length: > 0 }) stderr.WriteLine(e.ToString());
            return ExitCodes.Failure;
        }
        finally
        {
            Flush(stdout, stderr);
        }
    }

    private static Command NewRoot(GlobalOptions globals) =>
        new("passthru", "Passthru: pass PCIe devices through to QEMU guests with vfio-pci") { globals.Root, globals.PciIds };

    /// <summary>
    /// Every command, built but never run: what the completion scripts and the man page are generated from. Its
    /// commands write nowhere, since none of their actions is invoked.
    /// </summary>
    internal static Command FullTree()
    {
        var globals = new GlobalOptions();
        var root = NewRoot(globals);
        foreach (var (_, create) in Commands) root.Subcommands.Add(create(globals, TextWriter.Null, TextWriter.Null));
        return root;
    }

    /// <summary>
    /// System.CommandLine names .NET types in a conversion error ("as expected type 'System.Boolean'"); users get the
    /// option and what it takes instead.
    /// </summary>
    internal static string Plain(string message)
    {
        var m = ConversionError().Match(message);
        if (!m.Success) return message;
        var (value, option, type) = (m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Value);
        return type == "System.Boolean"
            ? $"{option} is a switch: give it alone (or {option}=true, {option}=false), not '{value}'"
            : $"{option}: '{value}' is not a valid value";
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^Cannot parse argument '(.*)' for option '(.*)' as expected type '(.*)'\.?$")]
    private static partial System.Text.RegularExpressions.Regex ConversionError();

    /// <summary>
    /// The command the line names: its first word that is not an option or a global option's value; null when that
    /// is no known command (then every command is built, for help and for the parser's own error message).
    /// </summary>
    /// <summary>The output's last flush can fail too (stdout on a full disk, `passthru list > /dev/full`): one line, not a crash.</summary>
    private static bool Flush(TextWriter stdout, TextWriter stderr)
    {
        try
        {
            stdout.Flush();
            return true;
        }
        catch (IOException)
        {
            if (!_outputLost) stderr.WriteLine("passthru: cannot write the output (standard output is full or closed)");
            _outputLost = true;
            return false;
        }
    }

    /// <summary>Said once per process: the finally's flush meets the same full disk again.</summary>
    [ThreadStatic] private static bool _outputLost;

    /// <summary>The first word that is not an option (or a global option's value): the command the user named.</summary>
    private static string? FirstWord(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] is "--root" or "--pci-ids") { i++; continue; }
            if (args[i].StartsWith('-')) continue;
            return args[i];
        }
        return null;
    }

    /// <summary>The command named on the line, when it is one of ours.</summary>
    internal static string? CommandName(string[] args)
    {
        var word = FirstWord(args);
        foreach (var (name, _) in Commands) if (name == word) return name;
        return null;
    }
}

/// <summary>Options every command accepts.</summary>
public sealed class GlobalOptions
{
    public Option<string> Root { get; } = new("--root")
    {
        Description = "Host root to read and write through (a live host's /, or a captured tree)",
        DefaultValueFactory = _ => "/",
        Recursive = true,
    };

    public Option<string?> PciIds { get; } = new("--pci-ids")
    {
        Description = "pci.ids file for device names (default: /usr/share/misc/pci.ids or /usr/share/hwdata/pci.ids)",
        Recursive = true,
    };

    /// <summary>The host root the line names, made once per parse: making it checks that the directory exists.</summary>
    public Passthru.Host.HostRoot Host(ParseResult p)
    {
        if (_host is { } made && ReferenceEquals(made.For, p)) return made.Host;
        var host = new Passthru.Host.HostRoot(p.GetValue(Root)!);
        _host = (p, host);
        return host;
    }

    private (ParseResult For, Passthru.Host.HostRoot Host)? _host;

    public Passthru.Pci.PciIds Ids(ParseResult p, Passthru.Host.HostRoot host) => Passthru.Pci.PciIds.Load(p.GetValue(PciIds), host);
}
