using System.Collections;
using System.Globalization;
using System.Text;

namespace Passthru.Export;

/// <summary>
/// A YAML mapping whose keys keep the order they were added in (Kubernetes manifests are read top-down by people).
/// Values are strings, ints, bools, <see cref="YamlMap"/> or <see cref="YamlList"/>; setting null leaves the key out,
/// so optional fields read as one line each where the document is built.
/// </summary>
public sealed class YamlMap : IEnumerable<KeyValuePair<string, object>>
{
    private readonly List<KeyValuePair<string, object>> _entries = [];

    public object? this[string key]
    {
        get => _entries.FirstOrDefault(e => e.Key == key).Value;
        set
        {
            _entries.RemoveAll(e => e.Key == key);
            if (value is not null) _entries.Add(new(key, value));
        }
    }

    public int Count => _entries.Count;
    public IEnumerator<KeyValuePair<string, object>> GetEnumerator() => _entries.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>A YAML sequence.</summary>
public sealed class YamlList : List<object>
{
    public YamlList() { }
    public YamlList(IEnumerable<object> items) : base(items) { }
}

/// <summary>
/// Writes block-style YAML, Kubernetes' way (sequences at their key's indentation). Written by hand rather than with a
/// serializer: the documents are small trees, the binary is NativeAOT (no reflection), and quoting is decided here,
/// conservatively, for YAML 1.1 readers as well (Kubernetes' own parser takes "on", "no" or "0x1f" as non-strings).
/// </summary>
public static class YamlText
{
    /// <summary>Documents separated by "---", each with its leading comment lines.</summary>
    public static string Write(IEnumerable<(IReadOnlyList<string> Comments, YamlMap Root)> documents)
    {
        var sb = new StringBuilder();
        foreach (var (comments, root) in documents)
        {
            sb.Append("---\n");
            foreach (var c in comments) sb.Append(c.Length == 0 ? "#\n" : "# " + c + "\n");
            WriteMap(sb, root, 0);
        }
        return sb.ToString();
    }

    private static void WriteMap(StringBuilder sb, YamlMap map, int indent)
    {
        foreach (var (key, value) in map)
        {
            sb.Append(' ', indent).Append(Scalar(key)).Append(':');
            WriteValue(sb, value, indent, key: true);
        }
    }

    /// <summary>After "key:" or "-": inline for scalars and empty collections, on the following lines otherwise.</summary>
    private static void WriteValue(StringBuilder sb, object value, int indent, bool key)
    {
        switch (value)
        {
            case YamlMap { Count: 0 }: sb.Append(" {}\n"); break;
            case YamlList { Count: 0 }: sb.Append(" []\n"); break;
            case YamlMap m: sb.Append('\n'); WriteMap(sb, m, indent + 2); break;
            case YamlList l: sb.Append('\n'); WriteList(sb, l, key ? indent : indent + 2); break;
            default: sb.Append(' ').Append(Scalar(value)).Append('\n'); break;
        }
    }

    private static void WriteList(StringBuilder sb, YamlList list, int indent)
    {
        foreach (var item in list)
        {
            if (item is YamlMap { Count: > 0 } m)
            {
                // "- " then the map's first key on the same line, its other keys under it.
                var inner = new StringBuilder();
                WriteMap(inner, m, indent + 2);
                sb.Append(' ', indent).Append("- ").Append(inner.ToString(indent + 2, inner.Length - indent - 2));
            }
            else
            {
                sb.Append(' ', indent).Append('-');
                WriteValue(sb, item, indent, key: false);
            }
        }
    }

    private static readonly HashSet<string> Reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "~",
    };

    /// <summary>A scalar: ints and bools as such; a string plain only when no YAML reader could take it for anything else.</summary>
    public static string Scalar(object value) => value switch
    {
        int i => i.ToString(CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        string s when IsPlain(s) => s,
        string s => Quote(s),
        _ => throw new ArgumentException($"no YAML form for {value.GetType().Name}"),
    };

    private static bool IsPlain(string s) =>
        s.Length > 0 && (char.IsAsciiLetter(s[0]) || s[0] == '/') && !Reserved.Contains(s)
        && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/')
        && !s.EndsWith('.');

    /// <summary>Double-quoted, with JSON's escapes (a subset of YAML's).</summary>
    public static string Quote(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (char.IsControl(c) || c is '\u2028' or '\u2029' or '\u0085' or '\ufeff')
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }
}
