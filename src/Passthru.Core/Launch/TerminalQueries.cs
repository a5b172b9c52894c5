using System.Text;

namespace Passthru.Launch;

/// <summary>
/// Answers a guest's terminal queries as an 80x24 terminal would, when a script (not a person's terminal) holds
/// QEMU's stdin. Barrelfish's fish shell asks for the cursor position (ESC[6n) at every prompt and reads nothing
/// until it gets an answer, so without one a script's input is never seen. Queries can be split across the chunks
/// QEMU's output arrives in: a started sequence is held until it is known to be a query or not.
/// The cursor's column is followed (text, CR/LF, backspace, tab, cursor moves) so that fish's width probe (ask, move
/// 999 right, ask again) finds 80 columns; the row is always the last, where a scrolling console's cursor sits.
/// </summary>
public sealed class TerminalQueries
{
    /// <summary>Cursor position report at the start of a line (row;col): the bottom row of a scrolling 80x24 screen.</summary>
    public const string CursorAnswer = "\u001b[24;1R";
    public const int Columns = 80;
    /// <summary>Primary device attributes: a VT100 with the advanced video option, what xterm-likes say too.</summary>
    public const string AttributesAnswer = "\u001b[?1;2c";

    private static readonly (string Query, string Answer)[] Known =
    [
        ("\u001b[6n", ""), // the answer carries the column at the time
        ("\u001b[c", AttributesAnswer),
        ("\u001b[0c", AttributesAnswer),
    ];

    private readonly StringBuilder _pending = new();
    private int _column = 1;
    private readonly StringBuilder _csi = new(); // an escape sequence in the output, followed for cursor moves
    private bool _inEscape;

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
                else Emit(c, output);
                continue;
            }
            _pending.Append(c);
            var seen = _pending.ToString();
            var whole = Known.FirstOrDefault(k => k.Query == seen);
            if (whole.Answer is not null)
            {
                var answer = whole.Answer.Length > 0 ? whole.Answer : $"\u001b[24;{_column}R";
                answers.Add(answer);
                LastAnswer = answer;
                Answered++;
                _pending.Clear();
            }
            else if (!Known.Any(k => k.Query.StartsWith(seen, StringComparison.Ordinal)))
            {
                // Not a query after all (a colour, a cursor move): pass it on; a new ESC may start a query.
                _pending.Clear();
                foreach (var k in c == '\u001b' ? seen[..^1] : seen) Emit(k, output);
                if (c == '\u001b') _pending.Append(c);
            }
        }
        return (output.ToString(), answers);
    }

    /// <summary>Passes a character on and moves the cursor as a terminal would for it.</summary>
    private void Emit(char c, StringBuilder output)
    {
        output.Append(c);
        if (_inEscape)
        {
            _csi.Append(c);
            if (_csi.Length == 1 && c != '[') { _inEscape = false; return; } // ESC x: no cursor move worth following
            if (_csi.Length > 1 && c is >= '@' and <= '~') { _inEscape = false; Move(_csi.ToString(1, _csi.Length - 2), c); }
            return;
        }
        switch (c)
        {
            case '\u001b': _inEscape = true; _csi.Clear(); break;
            case '\r' or '\n': _column = 1; break;
            case '\b': _column = Math.Max(1, _column - 1); break;
            case '\t': _column = Math.Min(Columns, (_column - 1) / 8 * 8 + 9); break;
            default: if (!char.IsControl(c)) _column = Math.Min(Columns, _column + 1); break;
        }
    }

    /// <summary>CSI cursor moves: forward (C), back (D), to a column (G), to a position (H, f).</summary>
    private void Move(string parameters, char final)
    {
        var numbers = parameters.Split(';').Select(p => int.TryParse(p, out var n) ? n : 0).ToArray();
        int first = numbers.Length > 0 && numbers[0] > 0 ? numbers[0] : 1;
        _column = final switch
        {
            'C' => _column + first,
            'D' => _column - first,
            'G' => first,
            'H' or 'f' => numbers.Length > 1 && numbers[1] > 0 ? numbers[1] : 1,
            _ => _column,
        };
        _column = Math.Clamp(_column, 1, Columns);
    }
}
