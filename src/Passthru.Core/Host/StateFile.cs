using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
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

    /// <summary>
    /// The file's bytes; null when there is none. A directory, a device or a FIFO in its place is refused, and so is a
    /// symlink: Passthru writes its state files as regular files (a rename would replace the link, not write through
    /// it), so a link there is someone else's doing, and following it would read, then replace, a file we never wrote.
    /// </summary>
    public static byte[]? Read(string path, string what, string why)
    {
        // One lstat says what is there, a link included (restore reads the journal on every run).
        var kind = NativeFiles.LinkKindOf(path);
        if (kind == NativeFiles.FileKind.Symlink)
            throw new UserError($"{what} {path} is a symlink (to {Shown.Value(NativeFiles.ReadLink(path) ?? "?")}), not a file passthru wrote: move it aside; {why}");
        if (kind == NativeFiles.FileKind.Missing) return null;
        if (kind != NativeFiles.FileKind.Regular)
            throw new UserError($"{what} {path} is {NativeFiles.Describe(kind)}, not a file: move it aside; {why}");
        try
        {
            return NativeFiles.ReadCapped(path, MaxBytes)
                ?? throw new UserError($"{what} {path} is {new FileInfo(path).Length} bytes, far more than any passthru writes: move it aside; {why}");
        }
        catch (FileNotFoundException)
        {
            // Gone between the lstat and the open: a guest's record its run removed as it ended, a journal the last
            // restore deleted. That is no file, not a damaged file system.
            return null;
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

    /// <summary>
    /// A state file's JSON as <typeparamref name="T"/>, or a <see cref="StateDamage"/> that says what is wrong in our
    /// own words (the static binary has no exception texts): empty, cut short (a crash or a full disk while it was
    /// written by something other than passthru's atomic writer), not JSON, or a field this passthru does not know or
    /// a value of the wrong type. Unknown fields are refused, not skipped (the contexts say
    /// JsonUnmappedMemberHandling.Disallow): a field a newer passthru added would otherwise be dropped the next time
    /// this one saves the file, and with it what the newer one needs to give something back.
    /// </summary>
    public static T Parse<T>(byte[] bytes, JsonTypeInfo<T> info) where T : class
    {
        var text = CheckSyntax(bytes);
        try
        {
            return JsonSerializer.Deserialize(text.Span, info) ?? throw new StateDamage("it holds null");
        }
        catch (JsonException e)
        {
            // (Which of the three, the static binary's exception text would not say in words.)
            throw StateObject.Wrong(e.Path ?? "$");
        }
    }

    /// <summary>
    /// A state file's JSON as a document, read field by field with <see cref="StateObject"/>; a
    /// <see cref="StateDamage"/> as <see cref="Parse{T}"/> says it, and also for a field given twice in one object
    /// (which of the two would restore believe?). The caller disposes it.
    /// </summary>
    public static JsonDocument Document(byte[] bytes)
    {
        var text = CheckSyntax(bytes);
        try
        {
            return JsonDocument.Parse(text, new JsonDocumentOptions { AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new StateDamage($"a field given twice in one object, at line {(e.LineNumber ?? 0) + 1}");
        }
    }

    /// <summary>The file's JSON text (blanks around it trimmed), once it is known to be whole and well formed.</summary>
    private static ReadOnlyMemory<byte> CheckSyntax(byte[] bytes)
    {
        var blanks = " \t\r\n"u8;
        var text = bytes.AsSpan().Trim(blanks);
        if (text.IsEmpty) throw new StateDamage(bytes.Length == 0 ? "it is empty" : "it holds only blanks");
        // The syntax first, as a stream that may go on: a file that is well formed as far as it goes but stops before
        // its last brace was cut short, which says more than "bad JSON at the end".
        var reader = new Utf8JsonReader(text, isFinalBlock: false, state: default);
        try
        {
            while (reader.Read()) { }
        }
        catch (JsonException e)
        {
            throw new StateDamage($"not valid JSON at line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1}");
        }
        // Well formed so far: if it is not also complete, the data ended too soon.
        var final = new Utf8JsonReader(text, isFinalBlock: true, state: default);
        try
        {
            while (final.Read()) { }
        }
        catch (JsonException)
        {
            throw new StateDamage($"it ends after {bytes.Length} bytes, in the middle of its JSON (cut short?)");
        }
        return bytes.AsMemory(bytes.Length - bytes.AsSpan().TrimStart(blanks).Length, text.Length);
    }

    /// <summary>Where a JSON document stopped parsing, in our words (the static binary has no exception texts).</summary>
    public static string Where(JsonException e) =>
        e.Path is { Length: > 1 } jsonPath
            ? $"a value of the wrong type or bad JSON at {Shown.Value(jsonPath)}, line {(e.LineNumber ?? 0) + 1}"
            : $"not valid JSON, line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1}";

    /// <summary>A kernel driver's name as sysfs shows it: restore builds sys/bus/pci/drivers/NAME/bind from it.</summary>
    public static string? DriverName(string? name, string field) =>
        name is null || IsDriverName(name) && name is not "." and not ".."
            ? name : throw new StateDamage($"{field} '{Shown.Value(name)}' is not a driver name");

    // A loop, not a generated Regex: restore reads a driver name on every run, and a regex's first use sets up its
    // runner and tables (~1 ms of restore in the virtual host).
    private static bool IsDriverName(string name)
    {
        if (name.Length is 0 or > 64) return false;
        foreach (char c in name)
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('_' or '.' or '+' or '-')) return false;
        return true;
    }

    /// <summary>A value written back into a sysfs attribute: one line, no control characters.</summary>
    public static string? OneLine(string? value, string field) =>
        value is null || (value.Length <= 4096 && !value.Any(char.IsControl))
            ? value : throw new StateDamage($"{field} '{Shown.Value(value)}' is not one line of text");

    /// <summary>A module parameter's root-relative path, the one kind of file the journal may name.</summary>
    public static bool IsModuleParameter(string path) => ModuleParameterPattern().IsMatch(path);

    [GeneratedRegex("^sys/module/[A-Za-z0-9_]{1,64}/parameters/[A-Za-z0-9_]{1,64}$")]
    private static partial Regex ModuleParameterPattern();
}

/// <summary>What is wrong with a state file that parsed but does not say what such a file says.</summary>
public sealed class StateDamage(string message) : Exception(message);
