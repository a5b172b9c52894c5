using System.CommandLine;
using System.Text.Json;
using Passthru.Check;

namespace Passthru.Cli.Commands;

/// <summary>`passthru check`: is this host ready for passthrough? Exit 0 when nothing FAILs.</summary>
public static class CheckCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout)
    {
        var json = new Option<bool>("--json") { Description = "JSON output (schema: docs/json.md)" };
        var command = new Command("check", "Check that this host is ready for PCIe passthrough") { json };
        command.SetAction(p =>
        {
            var host = globals.Host(p);
            var findings = HostCheck.Run(host).ToList();
            if (Passthru.Setup.BootRulesCheck.Run(host) is { } rules) findings.Add(rules);
            if (p.GetValue(json)) JsonOutput.Write(stdout, s => WriteJson(s, findings));
            else WriteText(stdout, findings);
            return findings.Any(f => f.Status == Status.Fail) ? ExitCodes.Failure : ExitCodes.Ok;
        });
        return command;
    }

    public static void WriteText(TextWriter o, IReadOnlyList<Finding> findings)
    {
        int width = findings.Max(f => f.Title.Length);
        foreach (var f in findings)
        {
            o.WriteLine($"{Label(f.Status),-4}  {f.Title.PadRight(width)}  {f.Message}");
            if (f.Fix is not null && f.Status != Status.Pass) o.WriteLine($"{"",-4}  {"".PadRight(width)}  fix: {f.Fix}");
        }
        int Count(Status s) => findings.Count(f => f.Status == s);
        o.WriteLine($"{Count(Status.Pass)} pass, {Count(Status.Warn)} warn, {Count(Status.Fail)} fail"
            + (Count(Status.Fail) == 0 ? ": ready for passthrough" : ": not ready"));
    }

    private static string Label(Status s) => s switch
    {
        Status.Pass => "PASS", Status.Note => "NOTE", Status.Warn => "WARN", _ => "FAIL",
    };

    private static void WriteJson(Stream stream, IReadOnlyList<Finding> findings)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteNumber("schema", 1);
        json.WriteBoolean("ready", findings.All(f => f.Status != Status.Fail));
        json.WriteStartArray("findings");
        foreach (var f in findings)
        {
            json.WriteStartObject();
            json.WriteString("id", f.Id);
            json.WriteString("title", f.Title);
            json.WriteString("status", Label(f.Status));
            json.WriteString("message", f.Message);
            json.WriteString("fix", f.Status == Status.Pass ? null : f.Fix);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteEndObject();
    }
}
