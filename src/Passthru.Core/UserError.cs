namespace Passthru;

/// <summary>
/// An error a user can act on: one line that names what was wrong and how to fix it.
/// The CLI prints <see cref="Exception.Message"/> alone (never a stack trace) and exits with <see cref="ExitCode"/>.
/// </summary>
public class UserError(string message, int exitCode = ExitCodes.Failure) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>Exit codes every command shares; tests assert them by name.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>The command ran and found a failure (e.g. a FAIL in check), or could not do its work.</summary>
    public const int Failure = 1;
    /// <summary>Bad input: a malformed address, an unknown option value, an unknown device.</summary>
    public const int Usage = 2;
}

/// <summary>A user's value inside an error line, with control characters escaped so that the line stays one line and
/// a terminal shows it as typed, not as commands (ESC sequences).</summary>
public static class Shown
{
    public static string Value(string value)
    {
        if (!value.Any(NeedsEscape)) return value;
        var b = new System.Text.StringBuilder(value.Length + 8);
        foreach (var c in value)
            b.Append(c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\0' => "\\0",
                '\x1b' => "\\e",
                _ when NeedsEscape(c) => c <= '\xff' ? $"\\x{(int)c:x2}" : $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        return b.ToString();
    }

    /// <summary>A whole message: control characters escaped, its own line breaks kept (some messages quote console lines).</summary>
    public static string Message(string message) => string.Join('\n', message.Split('\n').Select(Value));

    /// <summary>
    /// Why a regular expression did not parse, in words: the static binary strips .NET's messages to resource keys
    /// ("MakeException, a**, 3, NestedQuantifiersNotParenthesized"), so the parser's error kind and offset are spelled out.
    /// </summary>
    public static string RegexError(ArgumentException e)
    {
        if (e is not System.Text.RegularExpressions.RegexParseException p) return "not valid .NET regular expression syntax";
        var words = System.Text.RegularExpressions.Regex.Replace(p.Error.ToString(), "(?<=[a-z])(?=[A-Z])", " ").ToLowerInvariant();
        return $"{words} at character {p.Offset}";
    }

    private static bool NeedsEscape(char c) =>
        char.IsControl(c) || c is '\u2028' or '\u2029' or '\ufeff' or '\ufffe' or '\uffff';
}
