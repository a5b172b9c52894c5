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
