using System.Text.Json;
using System.Text.RegularExpressions;

namespace Passthru.Host;

/// <summary>
/// Passthru's own state files (the journal, guest records, setup's record) as read back: a crash, a full disk or a
/// hand edit can leave them truncated, mistyped or replaced by something else, and restore acts on them as root. So
/// each is read only when it is a regular file of sane size, and every value that becomes a path or a name is checked
/// here before it is used.
/// </summary>
public static partial class StateFile
{
    /// <summary>Far above any real journal or record (a few KiB): a larger file is damage, not state.</summary>
    public const int MaxBytes = 4 << 20;

    /// <summary>The file's bytes; null when there is none. A directory, a device or a FIFO in its place is refused.</summary>
    public static byte[]? Read(string path, string what, string why)
    {
        var kind = NativeFiles.KindOf(path);
        if (kind == NativeFiles.FileKind.Missing)
            return NativeFiles.ReadLink(path) is null ? null
                : throw new UserError($"{what} {path} is a symlink to nothing: remove it; {why}");
        if (kind != NativeFiles.FileKind.Regular)
            throw new UserError($"{what} {path} is {NativeFiles.Describe(kind)}, not a file: move it aside; {why}");
        try
        {
            return NativeFiles.ReadCapped(path, MaxBytes)
                ?? throw new UserError($"{what} {path} is {new FileInfo(path).Length} bytes, far more than any passthru writes: move it aside; {why}");
        }
        catch (UnauthorizedAccessException)
        {
            throw new UserError($"cannot read {what} {path}: permission denied (run as root)");
        }
        catch (IOException)
        {
            throw new UserError($"cannot read {what} {path}: an I/O error (a damaged file system?); {why}");
        }
    }

    /// <summary>Where a JSON document stopped parsing, in our words (the static binary has no exception texts).</summary>
    public static string Where(JsonException e) =>
        e.Path is { Length: > 1 } jsonPath
            ? $"a value of the wrong type or bad JSON at {Shown.Value(jsonPath)}, line {(e.LineNumber ?? 0) + 1}"
            : $"not valid JSON, line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1}";

    /// <summary>A kernel driver's name as sysfs shows it: restore builds sys/bus/pci/drivers/NAME/bind from it.</summary>
    public static string? DriverName(string? name, string field) =>
        name is null || DriverNamePattern().IsMatch(name) && name is not "." and not ".."
            ? name : throw new StateDamage($"{field} '{Shown.Value(name)}' is not a driver name");

    /// <summary>A value written back into a sysfs attribute: one line, no control characters.</summary>
    public static string? OneLine(string? value, string field) =>
        value is null || (value.Length <= 4096 && !value.Any(char.IsControl))
            ? value : throw new StateDamage($"{field} '{Shown.Value(value)}' is not one line of text");

    /// <summary>A module parameter's root-relative path, the one kind of file the journal may name.</summary>
    public static bool IsModuleParameter(string path) => ModuleParameterPattern().IsMatch(path);

    [GeneratedRegex("^[A-Za-z0-9_.+-]{1,64}$")]
    private static partial Regex DriverNamePattern();

    [GeneratedRegex("^sys/module/[A-Za-z0-9_]{1,64}/parameters/[A-Za-z0-9_]{1,64}$")]
    private static partial Regex ModuleParameterPattern();
}

/// <summary>What is wrong with a state file that parsed but does not say what such a file says.</summary>
public sealed class StateDamage(string message) : Exception(message);
