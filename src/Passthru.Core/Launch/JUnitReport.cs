using System.Globalization;
using System.Xml.Linq;

namespace Passthru.Launch;

/// <summary>
/// A script's expect steps as a JUnit XML report (`--junit FILE`), the format CI systems show as test results: one
/// testcase per expect step, named by its line and text; a failed step carries the console's last lines; steps the
/// script never reached are skipped, so the count stays that of the script.
/// </summary>
public static class JUnitReport
{
    public static XDocument Build(ScriptResult result, TimeSpan total, IReadOnlyList<string> lastLines, string? failure)
    {
        static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture);
        var results = result.Steps.ToDictionary(r => r.Step);
        var cases = new List<XElement>();
        foreach (var step in result.Script.Steps.OfType<ExpectStep>())
        {
            var c = new XElement("testcase",
                new XAttribute("name", $"{step.Line}: {step.Text}"),
                new XAttribute("classname", Path.GetFileName(result.Script.File)));
            if (results.TryGetValue(step, out var r))
            {
                c.Add(new XAttribute("time", Seconds(r.Duration)));
                if (!r.Passed)
                    c.Add(new XElement("failure", new XAttribute("message", failure ?? "failed"), string.Join("\n", lastLines)));
            }
            else
            {
                c.Add(new XAttribute("time", Seconds(TimeSpan.Zero)), new XElement("skipped", new XAttribute("message", "not reached")));
            }
            cases.Add(c);
        }
        int failures = cases.Count(c => c.Element("failure") is not null);
        return new XDocument(new XDeclaration("1.0", "utf-8", null),
            new XElement("testsuite",
                new XAttribute("name", "passthru run"),
                new XAttribute("tests", cases.Count),
                new XAttribute("failures", failures),
                new XAttribute("skipped", cases.Count(c => c.Element("skipped") is not null)),
                new XAttribute("time", Seconds(total)),
                cases));
    }

    public static void Write(string path, XDocument report)
    {
        // UTF-8 without a byte-order mark: some CI report parsers choke on one before <?xml.
        using var buffer = new MemoryStream();
        using (var writer = System.Xml.XmlWriter.Create(buffer, new System.Xml.XmlWriterSettings { Encoding = new System.Text.UTF8Encoding(false), Indent = true }))
            report.Save(writer);
        Passthru.Host.OutputFile.Write("--junit", path, buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
    }
}
