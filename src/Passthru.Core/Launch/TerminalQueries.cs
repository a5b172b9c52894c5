using System.Text;

namespace Passthru.Launch;

/// <summary>
/// Answers a guest's terminal queries as an 80x24 terminal would, when a script (not a person's terminal) holds
/// QEMU's stdin. Barrelfish's fish shell asks for the cursor position (ESC[6n) at every prompt and reads nothing
/// until it gets an answer, so without one a script's input is never seen. Queries can be split across the chunks
/// QEMU's output arrives in: a started sequence is held until it is known to be a query or not.
/// </summary>
public sealed class TerminalQueries
{
    /// <summary>Cursor position report: bottom row, first column (row;col), where a prompt on a scrolling 80x24 screen is.</summary>
    public const string CursorAnswer = "\u001b[24;1R";
    /// <summary>Primary device attributes: a VT100 with the advanced video option, what xterm-likes say too.</summary>
    public const string AttributesAnswer = "\u001b[?1;2c";

    private static readonly (string Query, string Answer)[] Known =
    [
        ("\u001b[6n", CursorAnswer),
        ("\u001b[c", AttributesAnswer),
        ("\u001b[0c", AttributesAnswer),
    ];

    private readonly StringBuilder _pending = new();

    /// <summary>The last answer given, to give again when the guest seems to have missed it.</summary>
    public string? LastAnswer { get; private set; }

    /// <summary>How many queries were answered so far.</summary>
    public int Answered { get; private set; }

    /// <summary>
    /// Scans a chunk of console output: returns the answers owed (in order) and the output with the queries taken out
    /// (a terminal shown the queries would answer them itself, into an input nobody reads while a script runs).
    /// </summary>
    public (string Output, IReadOnlyList<string> Answers) Scan(ReadOnlySpan<char> chunk)
    {
        var output = new StringBuilder(chunk.Length);
        var answers = new List<string>();
        foreach (var c in chunk)
        {
            if (_pending.Length == 0)
            {
                if (c == '\u001b') _pending.Append(c);
                else output.Append(c);
                continue;
            }
            _pending.Append(c);
            var seen = _pending.ToString();
            var whole = Known.FirstOrDefault(k => k.Query == seen);
            if (whole.Answer is not null)
            {
                answers.Add(whole.Answer);
                LastAnswer = whole.Answer;
                Answered++;
                _pending.Clear();
            }
            else if (!Known.Any(k => k.Query.StartsWith(seen, StringComparison.Ordinal)))
            {
                // Not a query after all (a colour, a cursor move): pass it on; a new ESC may start a query.
                _pending.Clear();
                if (c == '\u001b')
                {
                    output.Append(seen.AsSpan(0, seen.Length - 1));
                    _pending.Append(c);
                }
                else output.Append(seen);
            }
        }
        return (output.ToString(), answers);
    }
}
