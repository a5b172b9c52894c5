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
public static partial class Shown
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

    /// <summary>
    /// A failure in our own words, the same in every build: the runtime's own exception texts are told by their type,
    /// the path they name and the errno, never shown as they are (a build with UseSystemResourceKeys, as the static
    /// binary was until #25, has them only as "IO_FileNotFound_FileName, /x"). Ours (a UserError, an IOException
    /// worded by NativeFiles with strerror) pass through.
    /// </summary>
    public static string Error(Exception e)
    {
        var path = PathIn(e);
        return e switch
        {
            UserError => e.Message,
            FileNotFoundException f => $"{Value(f.FileName ?? path ?? "a file")}: no such file",
            DirectoryNotFoundException => $"{Value(path ?? "a path")}: no such directory",
            PathTooLongException => $"{Value(path ?? "a path")}: the path is too long",
            UnauthorizedAccessException => $"{Value(path ?? "a file")}: permission denied",
            System.ComponentModel.Win32Exception w => System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(w.NativeErrorCode),
            // On Linux the runtime gives an IOException for any other errno that errno as its HResult.
            IOException when e.HResult is > 0 and < 4096 =>
                (path is null ? "" : Value(path) + ": ") + System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(e.HResult),
            _ when !ResourceKey().IsMatch(e.Message) => Message(e.Message.Split('\n')[0]),
            _ => $"{e.GetType().Name}" + (path is null ? "" : $" at {Value(path)}"),
        };
    }

    /// <summary>The path a runtime exception names: after its resource key ("Key, /path") or in quotes ("... '/path'.").</summary>
    private static string? PathIn(Exception e)
    {
        var key = ResourceKey().Match(e.Message);
        if (key.Success) return key.Groups["arg"].Value is { Length: > 0 } arg ? arg : null;
        var quoted = System.Text.RegularExpressions.Regex.Match(e.Message, "'(?<path>/[^']*)'");
        return quoted.Success ? quoted.Groups["path"].Value : null;
    }

    /// <summary>A message that is a resource key and its arguments: "IO_FileNotFound_FileName, /x".</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"^[A-Z][A-Za-z0-9]*_[A-Za-z0-9_]+(, (?<arg>[^,]*))?")]
    private static partial System.Text.RegularExpressions.Regex ResourceKey();

    private static bool NeedsEscape(char c) =>
        char.IsControl(c) || c is '\u2028' or '\u2029' or '\ufeff' or '\ufffe' or '\uffff';
}
