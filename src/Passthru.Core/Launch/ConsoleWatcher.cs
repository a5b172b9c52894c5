using System.Text;
using System.Text.RegularExpressions;

namespace Passthru.Launch;

/// <summary>
/// Watches a guest's serial console as it streams out of QEMU: passes it on (terminal, log file), keeps the last
/// lines for error messages, and tells when an expected pattern has shown up. The pattern is matched against each
/// completed line and against the unfinished tail, so a prompt without a newline still counts.
/// </summary>
public sealed class ConsoleWatcher(Regex? expect, int keepLines = 20)
{
    private readonly StringBuilder _partial = new();
    private readonly Queue<string> _last = new();

    public bool Matched { get; private set; }

    /// <summary>Nothing of the current line has been seen yet: the last output ended with a newline (or there was none).</summary>
    public bool AtLineStart => _partial.Length == 0;

    /// <summary>Feeds a chunk of console output; returns true the first time the pattern matches.</summary>
    public bool Feed(ReadOnlySpan<char> chunk)
    {
        bool newly = false;
        foreach (var c in chunk)
        {
            if (c == '\n')
            {
                var line = _partial.ToString().TrimEnd('\r');
                _partial.Clear();
                Remember(line);
                newly |= Check(line);
            }
            else _partial.Append(c);
        }
        if (_partial.Length > 0) newly |= Check(_partial.ToString());
        return newly;
    }

    private bool Check(string text)
    {
        if (Matched || expect is null || !expect.IsMatch(text)) return false;
        Matched = true;
        return true;
    }

    private void Remember(string line)
    {
        _last.Enqueue(line);
        while (_last.Count > keepLines) _last.Dequeue();
    }

    /// <summary>The last lines seen, the unfinished one included, for a failure message.</summary>
    public IReadOnlyList<string> LastLines =>
        _partial.Length > 0 ? [.. _last, _partial.ToString()] : [.. _last];
}
