using System.Text;

namespace Passthru.Launch;

/// <summary>QEMU's own quoting (commas inside option values) and the shell's (for a command line users can paste).</summary>
public static class QemuArgs
{
    /// <summary>QEMU splits option values at commas; a literal comma is written twice.</summary>
    public static string EscapeCommas(string value) => value.Replace(",", ",,");

    /// <summary>Quotes one argument for bash, only when it needs it.</summary>
    public static string ShellQuote(string arg)
    {
        if (arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,+@%^".Contains(c))) return arg;
        return "'" + arg.Replace("'", "'\\''") + "'";
    }

    public static string ShellJoin(IEnumerable<string> argv)
    {
        var sb = new StringBuilder();
        foreach (var a in argv)
        {
            if (sb.Length > 0) sb.Append(' ');
            sb.Append(ShellQuote(a));
        }
        return sb.ToString();
    }
}
