using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Passthru.Launch;

/// <summary>One step of a console script, with the line it came from (for messages and the JUnit report).</summary>
/// <param name="Text">The line as written (trimmed), to name the step.</param>
/// <param name="Timeout">How long the step may take: the last `timeout` before it, or the default.</param>
public abstract record ScriptStep(int Line, string Text, TimeSpan Timeout);

/// <summary>`expect REGEX`: wait until the console output since the last match contains the pattern.</summary>
public sealed record ExpectStep(int Line, string Text, TimeSpan Timeout, Regex Pattern) : ScriptStep(Line, Text, Timeout);

/// <summary>`send TEXT`: type the bytes (escapes decoded; UTF-8 for the text, \xHH as the byte itself).</summary>
public sealed record SendStep(int Line, string Text, TimeSpan Timeout, byte[] Data) : ScriptStep(Line, Text, Timeout);

/// <summary>
/// A line-based script run against a guest's serial console (`passthru run --script FILE`): `expect REGEX`,
/// `send TEXT`, `timeout SECONDS`, `#` comments and blank lines. Parsed whole before QEMU starts, so a typo in line 40
/// is reported at once instead of after a minute-long boot.
/// </summary>
public sealed record ConsoleScript(string File, IReadOnlyList<ScriptStep> Steps)
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Reads and parses a script file; any problem is a usage error naming the file (and line).</summary>
    public static ConsoleScript Load(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new UserError("--script is empty: name a console script", ExitCodes.Usage);
        if (!Passthru.Host.InputFile.Exists(path)) throw new UserError($"--script {Shown.Value(path)}: no such file", ExitCodes.Usage);
        return Parse(path, Passthru.Host.InputFile.ReadText("--script", path));
    }

    /// <param name="name">How messages name the script (its path as given).</param>
    public static ConsoleScript Parse(string name, string text)
    {
        var steps = new List<ScriptStep>();
        var timeout = DefaultTimeout;
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            int number = i + 1;
            UserError Bad(string what) => new($"{name}:{number}: {Shown.Value(what)}", ExitCodes.Usage);
            var line = lines[i].TrimEnd('\r').TrimStart();
            if (line.Length == 0 || line[0] == '#') continue;
            int space = line.IndexOfAny([' ', '\t']);
            var command = space < 0 ? line : line[..space];
            // The argument keeps its trailing spaces: a prompt such as "> " is matched as written.
            var argument = space < 0 ? "" : line[space..].TrimStart(' ', '\t');
            var shown = line.TrimEnd();
            switch (command)
            {
                case "expect":
                    if (argument.Length == 0) throw Bad("expect needs a regular expression");
                    Regex pattern;
                    try { pattern = new Regex(argument, RegexOptions.CultureInvariant); }
                    catch (ArgumentException e) { throw Bad($"expect: '{Shown.Value(argument)}' is not a .NET regular expression: {Shown.RegexError(e)}"); }
                    steps.Add(new ExpectStep(number, shown, timeout, pattern));
                    break;
                case "send":
                    if (argument.Length == 0) throw Bad("send needs the text to type (e.g. send ps\\r)");
                    steps.Add(new SendStep(number, shown, timeout, Unescape(argument, Bad)));
                    break;
                case "timeout":
                    if (argument.Trim().Length == 0) throw Bad("timeout needs a number of seconds");
                    if (!double.TryParse(argument.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds)
                        || !double.IsFinite(seconds) || seconds <= 0 || seconds > int.MaxValue)
                        throw Bad($"timeout '{argument.Trim()}': give a positive number of seconds");
                    timeout = TimeSpan.FromSeconds(seconds);
                    break;
                default:
                    throw Bad($"unknown command '{command}' (use expect, send or timeout; # starts a comment)");
            }
        }
        return new ConsoleScript(name, steps);
    }

    /// <summary>Decodes send's escapes: \r \n \t \e \xHH \\ (anything else after a backslash is a mistake, not a literal).</summary>
    private static byte[] Unescape(string text, Func<string, UserError> bad)
    {
        var bytes = new List<byte>();
        var plain = new StringBuilder();
        void FlushPlain() { bytes.AddRange(Encoding.UTF8.GetBytes(plain.ToString())); plain.Clear(); }
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] != '\\') { plain.Append(text[i]); continue; }
            if (i + 1 >= text.Length) throw bad("send: a lone '\\' at the end (write \\\\ for a backslash)");
            char e = text[++i];
            switch (e)
            {
                case 'r': plain.Append('\r'); break;
                case 'n': plain.Append('\n'); break;
                case 't': plain.Append('\t'); break;
                case 'e': plain.Append('\u001b'); break;
                case '\\': plain.Append('\\'); break;
                case 'x':
                    if (text.Length - i - 1 < 2
                        || !byte.TryParse(text.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var b))
                        throw bad("send: \\x needs two hex digits (e.g. \\x03 for Ctrl-C)");
                    FlushPlain();
                    bytes.Add(b);
                    i += 2;
                    break;
                default:
                    throw bad($"send: unknown escape '\\{e}' (use \\r, \\n, \\t, \\e, \\xHH or \\\\)");
            }
        }
        FlushPlain();
        return [.. bytes];
    }
}
