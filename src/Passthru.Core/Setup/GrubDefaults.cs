namespace Passthru.Setup;

/// <summary>
/// One assignment of GRUB_CMDLINE_LINUX or GRUB_CMDLINE_LINUX_DEFAULT in a shell file GRUB sources
/// (etc/default/grub, etc/default/grub.d/*.cfg): where its value and the words inside it are, so edits keep every
/// other byte (the quoting style, comments, line continuations, $VARIABLE references).
/// </summary>
public sealed record GrubAssignment(string Variable, string File, int Line, int ValueStart, int ValueEnd, char Quote,
    IReadOnlyList<CmdlineWord> Words)
{
    /// <summary>Where the content starts and ends: inside the quotes for a quoted value.</summary>
    public int ContentStart => Quote == '\0' ? ValueStart : ValueStart + 1;
    public int ContentEnd => Quote == '\0' ? ValueEnd : ValueEnd - 1;
}

/// <summary>
/// Reads the GRUB_CMDLINE_* assignments of a GRUB defaults file. Supported values: one double-quoted string (may
/// span lines, with backslash-newline continuations; $VAR references are kept as opaque words), one single-quoted
/// string, or one unquoted word; each followed by nothing or a # comment. Anything else (command substitution,
/// unterminated quotes, several quoted pieces, text after the value) is refused: Passthru will not guess at shell.
/// </summary>
public static class GrubDefaults
{
    public const string Linux = "GRUB_CMDLINE_LINUX";
    public const string LinuxDefault = "GRUB_CMDLINE_LINUX_DEFAULT";

    public static List<GrubAssignment> Parse(string text, string file)
    {
        var found = new List<GrubAssignment>();
        int pos = 0, line = 1;
        while (pos < text.Length)
        {
            int lineEnd = text.IndexOf('\n', pos);
            if (lineEnd < 0) lineEnd = text.Length;
            int i = pos;
            while (i < lineEnd && text[i] is ' ' or '\t') i++;
            if (text.AsSpan(i, lineEnd - i).StartsWith("export ") || text.AsSpan(i, lineEnd - i).StartsWith("export\t"))
            {
                i += "export".Length;
                while (i < lineEnd && text[i] is ' ' or '\t') i++;
            }
            string? variable = null;
            foreach (var name in new[] { LinuxDefault, Linux })
                if (text.AsSpan(i, lineEnd - i).StartsWith(name + "=", StringComparison.Ordinal)) { variable = name; break; }
            if (variable is null)
            {
                pos = lineEnd + 1;
                line++;
                continue;
            }
            var assignment = ParseValue(text, file, line, variable, i + variable.Length + 1);
            found.Add(assignment);
            // A quoted value may span lines: continue after it.
            int end = text.IndexOf('\n', assignment.ValueEnd);
            line += text.AsSpan(pos, (end < 0 ? text.Length : end) - pos).Count('\n') + 1;
            pos = end < 0 ? text.Length : end + 1;
        }
        return found;
    }

    private static GrubAssignment ParseValue(string text, string file, int line, string variable, int start)
    {
        UserError Malformed(string what) =>
            new($"{file}:{line}: cannot edit {variable}: {what}; fix the line by hand and run passthru setup again");

        int end;
        char quote = start < text.Length && text[start] is '"' or '\'' ? text[start] : '\0';
        if (quote == '"')
        {
            end = start + 1;
            while (end < text.Length && text[end] != '"') end += text[end] == '\\' ? 2 : 1;
            if (end >= text.Length) throw Malformed("unterminated double quote");
            end++;
        }
        else if (quote == '\'')
        {
            end = text.IndexOf('\'', start + 1);
            if (end < 0) throw Malformed("unterminated single quote");
            end++;
        }
        else
        {
            end = start;
            while (end < text.Length && !char.IsWhiteSpace(text[end])) end++;
            foreach (var c in text.AsSpan(start, end - start))
                if ("\"'\\$`;&|<>()".Contains(c)) throw Malformed($"an unquoted value with '{c}' (quote the whole value)");
        }
        // After the value: only blanks and an optional comment.
        int rest = end;
        while (rest < text.Length && text[rest] is ' ' or '\t' or '\r') rest++;
        if (rest < text.Length && text[rest] is not ('\n' or '#'))
            throw Malformed(quote == '\0' ? "text after the value (quote the whole value)" : "text after the closing quote (use one quoted string)");

        var assignment = new GrubAssignment(variable, file, line, start, end, quote, []);
        var words = new List<CmdlineWord>();
        int i = assignment.ContentStart;
        while (i < assignment.ContentEnd)
        {
            if (char.IsWhiteSpace(text[i]) || (quote == '"' && text[i] == '\\' && i + 1 < text.Length && text[i + 1] == '\n'))
            {
                i += text[i] == '\\' ? 2 : 1;
                continue;
            }
            int w = i;
            while (i < assignment.ContentEnd && !char.IsWhiteSpace(text[i]) && !(quote == '"' && text[i] == '\\' && text[i + 1] == '\n'))
                i += quote == '"' && text[i] == '\\' ? 2 : 1;
            var word = text[w..Math.Min(i, assignment.ContentEnd)];
            if (quote == '"' && (word.Contains('`') || word.Contains("$(")))
                throw Malformed($"command substitution in '{word}'");
            bool opaque = quote == '"' && (word.Contains('$') || word.Contains('\\'));
            words.Add(new CmdlineWord(word, file, w, opaque));
        }
        return assignment with { Words = words };
    }

    /// <summary>The edit that appends words to an assignment's value, inside its own quotes.</summary>
    public static TextEdit Append(string text, GrubAssignment a, IReadOnlyList<string> words)
    {
        var joined = string.Join(' ', words);
        var initArgs = a.Words.FirstOrDefault(w => w.Text == "--" && !w.Opaque);
        if (initArgs is not null) return new TextEdit(a.File, initArgs.Start, 0, joined + " ");
        if (a.Quote == '\0')
        {
            var value = text[a.ValueStart..a.ValueEnd];
            return new TextEdit(a.File, a.ValueStart, a.ValueEnd - a.ValueStart, "\"" + (value.Length == 0 ? "" : value + " ") + joined + "\"");
        }
        var content = text[a.ContentStart..a.ContentEnd];
        bool space = content.Length > 0 && !char.IsWhiteSpace(content[^1]);
        return new TextEdit(a.File, a.ContentEnd, 0, (space ? " " : "") + joined);
    }
}

/// <summary>Replace Length characters at Start of a file's text with Replacement (an insertion when Length is 0).</summary>
public sealed record TextEdit(string File, int Start, int Length, string Replacement)
{
    /// <summary>Applies edits to one file's text, from the end backwards so earlier offsets stay valid.</summary>
    public static string ApplyAll(string text, IEnumerable<TextEdit> edits)
    {
        foreach (var e in edits.OrderByDescending(e => e.Start).ThenByDescending(e => e.Length))
            text = text[..e.Start] + e.Replacement + text[(e.Start + e.Length)..];
        return text;
    }

    /// <summary>Removes a word with the blanks before it (or after it, when it comes first), never a line break.</summary>
    public static TextEdit RemoveWord(string text, CmdlineWord word)
    {
        int start = word.Start, end = word.Start + word.Length;
        while (start > 0 && text[start - 1] is ' ' or '\t') start--;
        if (start == word.Start)
            while (end < text.Length && text[end] is ' ' or '\t') end++;
        return new TextEdit(word.File, start, end - start, "");
    }
}
