namespace Passthru.Launch;

/// <summary>
/// One line at the bottom of a terminal that is redrawn in place (carriage return, erase to end of line) and cleared
/// before anything else is written, so it never ends up in the middle of the guest's console output.
/// </summary>
public sealed class StatusLine(TextWriter terminal)
{
    private string? _shown;

    public void Show(string text)
    {
        if (text == _shown) return;
        terminal.Write("\r\u001b[K" + text);
        terminal.Flush();
        _shown = text;
    }

    public void Clear()
    {
        if (_shown is null) return;
        terminal.Write("\r\u001b[K");
        terminal.Flush();
        _shown = null;
    }
}
