namespace Passthru.Tests.Support;

public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public string[] Lines => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
}

/// <summary>Runs the CLI in-process, exactly as Program.cs does, with captured output.</summary>
public static class CliRunner
{
    public static CliResult Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Passthru.Cli.Cli.Run(args, stdout, stderr);
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs against a capture with the system's pci.ids.</summary>
    public static CliResult OnCapture(string capture, params string[] args) =>
        Run(["--root", Repo.Capture(capture), "--pci-ids", Repo.SystemPciIds, .. args]);
}
