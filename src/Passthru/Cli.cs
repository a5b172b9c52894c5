using System.CommandLine;
using Passthru;
using Passthru.Cli.Commands;

namespace Passthru.Cli;

/// <summary>
/// The command line: parses, dispatches to one class per command, and turns every <see cref="UserError"/> into one
/// line on stderr and an exit code. Tests call <see cref="Run"/> in-process with their own writers.
/// </summary>
public static class Cli
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var globals = new GlobalOptions();
        var root = new RootCommand("Passthru: pass PCIe devices through to QEMU guests with vfio-pci")
        {
            globals.Root, globals.PciIds,
        };
        root.Subcommands.Add(CheckCommand.Create(globals, stdout));
        root.Subcommands.Add(ListCommand.Create(globals, stdout, stderr));
        root.Subcommands.Add(ShowCommand.Create(globals, stdout));
        root.Subcommands.Add(BindCommand.Create(globals, stdout));
        root.Subcommands.Add(UnbindCommand.Create(globals, stdout));
        root.Subcommands.Add(UnbindCommand.CreateRestore(globals, stdout));
        root.Subcommands.Add(RunCommand.Create(globals, stdout, stderr));
        root.Subcommands.Add(SetupCommand.Create(globals, stdout));
        root.Subcommands.Add(ExportCommand.Create(globals, stdout, stderr));

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            stderr.WriteLine($"passthru: {parse.Errors[0].Message} (see passthru --help)");
            return ExitCodes.Usage;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (UserError e)
        {
            stdout.Flush();
            stderr.WriteLine($"passthru: {e.Message}");
            return e.ExitCode;
        }
        finally
        {
            stdout.Flush();
        }
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

    public Passthru.Host.HostRoot Host(ParseResult p) => new(p.GetValue(Root)!);

    public Passthru.Pci.PciIds Ids(ParseResult p, Passthru.Host.HostRoot host) => Passthru.Pci.PciIds.Load(p.GetValue(PciIds), host);
}
