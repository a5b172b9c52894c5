using System.Text;

namespace Passthru.Cli.Commands;

/// <summary>The library writes JSON to a stream (Utf8JsonWriter); commands write text to a TextWriter.</summary>
internal static class JsonOutput
{
    public static void Write(TextWriter output, Action<Stream> write)
    {
        using var buffer = new MemoryStream();
        write(buffer);
        output.WriteLine(Encoding.UTF8.GetString(buffer.ToArray()));
    }
}
