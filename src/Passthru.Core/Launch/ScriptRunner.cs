using System.Text;

namespace Passthru.Launch;

/// <summary>How one step went: its time, and whether it passed (a step not reached has no result).</summary>
public sealed record StepResult(ScriptStep Step, TimeSpan Duration, bool Passed);

/// <param name="Failed">The step that was running when the script stopped (timed out, QEMU exited); null when it finished.</param>
public sealed record ScriptResult(ConsoleScript Script, IReadOnlyList<StepResult> Steps, ScriptStep? Failed)
{
    public bool Finished => Failed is null;
}

/// <summary>
/// Runs a <see cref="ConsoleScript"/> against QEMU's stdin while <see cref="GuestProcess"/> streams its console:
/// the pump thread hands each chunk to <see cref="Filter"/>, the main loop calls <see cref="Advance"/>. Every method is
/// called under GuestProcess's console lock, which also keeps writes to QEMU's stdin whole and in order.
/// </summary>
internal sealed class ScriptRunner(ConsoleScript script, Stream input)
{
    /// <summary>Silence after an answered query that means the guest missed the answer (fish reads nothing until it gets one).</summary>
    private static readonly TimeSpan ResendAfter = TimeSpan.FromSeconds(3);
    /// <summary>The most text kept for matching: a chatty guest cannot grow the buffer without bound.</summary>
    private const int MaxKept = 1 << 20;

    private readonly TerminalQueries _queries = new();
    private readonly StringBuilder _since = new(); // console output since the last match
    private readonly List<StepResult> _results = [];
    private int _index;
    private TimeSpan _stepStart = TimeSpan.MinValue;
    private TimeSpan _lastOutput;
    private bool _queryLast; // the latest output was (or ended with) an answered query
    private TimeSpan _now;

    public bool Done => _index >= script.Steps.Count;
    public ScriptStep? Current => Done ? null : script.Steps[_index];

    /// <summary>A chunk of console output: answers its queries, keeps it for matching, returns what the terminal may show.</summary>
    public string Filter(ReadOnlySpan<char> chunk)
    {
        var (output, answers) = _queries.Scan(chunk);
        foreach (var a in answers) Write(Encoding.ASCII.GetBytes(a));
        if (answers.Count > 0) _queryLast = true;
        else if (output.Length > 0) _queryLast = false;
        _lastOutput = _now;
        _since.Append(output);
        if (_since.Length > MaxKept) _since.Remove(0, _since.Length - MaxKept);
        return output;
    }

    /// <summary>Runs every step that can run now; returns false when the current step ran out of time.</summary>
    public bool Advance(TimeSpan now)
    {
        _now = now;
        while (!Done)
        {
            var step = script.Steps[_index];
            if (_stepStart == TimeSpan.MinValue) _stepStart = now;
            switch (step)
            {
                case SendStep send:
                    Write(send.Data);
                    Pass(now);
                    continue;
                case ExpectStep expect:
                    var m = expect.Pattern.Match(_since.ToString());
                    if (m.Success)
                    {
                        _since.Remove(0, m.Index + m.Length);
                        Pass(now);
                        continue;
                    }
                    if (now - _stepStart >= step.Timeout) return false;
                    if (_queryLast && _queries.LastAnswer is string again && now - _lastOutput >= ResendAfter)
                    {
                        // Measured on Barrelfish: an answer sent while fish is still starting is lost and it waits for ever.
                        Write(Encoding.ASCII.GetBytes(again));
                        _lastOutput = now;
                    }
                    return true;
            }
        }
        return true;
    }

    /// <summary>Keeps answering queries once the script is done and the console belongs to the user again.</summary>
    public void Forward(byte[] data, int count)
    {
        var copy = new byte[count];
        Array.Copy(data, copy, count);
        Write(copy);
    }

    public ScriptResult Result(bool stoppedEarly)
    {
        var results = _results.ToList();
        var failed = stoppedEarly || !Done ? Current : null;
        if (failed is not null) results.Add(new StepResult(failed, _now - (_stepStart == TimeSpan.MinValue ? _now : _stepStart), false));
        return new ScriptResult(script, results, failed);
    }

    public TimeSpan CurrentElapsed(TimeSpan now) => _stepStart == TimeSpan.MinValue ? TimeSpan.Zero : now - _stepStart;

    private void Pass(TimeSpan now)
    {
        _results.Add(new StepResult(script.Steps[_index], now - _stepStart, true));
        _index++;
        _stepStart = TimeSpan.MinValue;
    }

    private void Write(byte[] data)
    {
        try { input.Write(data); input.Flush(); }
        catch (IOException) { } // QEMU is gone: the main loop sees it exit and reports that instead
        catch (ObjectDisposedException) { }
    }
}
