using System.Text;

namespace Passthru.Setup;

/// <summary>
/// A unified diff (diff -u, three lines of context) between two versions of a file, with a/ and b/ prefixes so
/// `patch -p1` applies it inside the host root. Configuration files are small: a plain LCS table is enough.
/// </summary>
public static class UnifiedDiff
{
    public const int Context = 3;

    public static string Make(string path, string? before, string after)
    {
        var a = Lines(before ?? "");
        var b = Lines(after);
        var ops = Script(a, b);
        var o = new StringBuilder();
        o.Append(before is null ? "--- /dev/null\n" : $"--- a/{path}\n").Append($"+++ b/{path}\n");

        var changed = Enumerable.Range(0, ops.Count).Where(i => ops[i].Kind != ' ').ToList();
        int k = 0;
        while (k < changed.Count)
        {
            int first = Math.Max(0, changed[k] - Context), last = changed[k];
            while (k + 1 < changed.Count && changed[k + 1] - last <= 2 * Context) last = changed[++k];
            last = Math.Min(ops.Count - 1, last + Context);
            k++;

            int oldStart = ops[first].Old, newStart = ops[first].New;
            int oldCount = 0, newCount = 0;
            for (int i = first; i <= last; i++)
            {
                if (ops[i].Kind != '+') oldCount++;
                if (ops[i].Kind != '-') newCount++;
            }
            o.Append($"@@ -{Range(oldStart, oldCount)} +{Range(newStart, newCount)} @@\n");
            for (int i = first; i <= last; i++)
            {
                var line = ops[i].Line;
                o.Append(ops[i].Kind).Append(Display(line.TrimEnd('\n'))).Append('\n');
                if (!line.EndsWith('\n')) o.Append("\\ No newline at end of file\n");
            }
        }
        return o.ToString();
    }

    // GNU diff: "start,count", the count left out when 1; an empty range starts at the line before it.
    private static string Range(int start, int count) =>
        count == 1 ? $"{start + 1}" : count == 0 ? $"{start},0" : $"{start + 1},{count}";

    /// <summary>Texts are Latin-1 (a char per byte); shown as UTF-8, which is what configuration files hold.</summary>
    private static string Display(string latin1) => Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(latin1));

    /// <summary>Lines with their newline; the last one may lack it.</summary>
    private static List<string> Lines(string text)
    {
        var lines = new List<string>();
        int start = 0;
        while (start < text.Length)
        {
            int nl = text.IndexOf('\n', start);
            int end = nl < 0 ? text.Length : nl + 1;
            lines.Add(text[start..end]);
            start = end;
        }
        return lines;
    }

    private readonly record struct Op(char Kind, string Line, int Old, int New);

    /// <summary>The edit script, deletions before insertions in each changed block, as diff prints them.</summary>
    private static List<Op> Script(List<string> a, List<string> b)
    {
        var lcs = new int[a.Count + 1, b.Count + 1];
        for (int i = a.Count - 1; i >= 0; i--)
            for (int j = b.Count - 1; j >= 0; j--)
                lcs[i, j] = a[i] == b[j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
        var ops = new List<Op>();
        int x = 0, y = 0;
        while (x < a.Count || y < b.Count)
        {
            if (x < a.Count && y < b.Count && a[x] == b[y]) { ops.Add(new(' ', a[x], x, y)); x++; y++; }
            else if (y >= b.Count || (x < a.Count && lcs[x + 1, y] >= lcs[x, y + 1])) { ops.Add(new('-', a[x], x, y)); x++; }
            else { ops.Add(new('+', b[y], x, y)); y++; }
        }
        return ops;
    }
}
