using System.Text;

namespace Passthru.Cli;

/// <summary>A TextWriter that creates the one it writes to when first written to (stderr, which most runs never use).</summary>
internal sealed class DeferredWriter(Func<TextWriter> create) : TextWriter
{
    private TextWriter? _inner;
    private TextWriter Inner => _inner ??= create();

    public override Encoding Encoding => Inner.Encoding;
    public override void Write(char value) => Inner.Write(value);
    public override void Write(string? value) => Inner.Write(value);
    public override void Write(ReadOnlySpan<char> buffer) => Inner.Write(buffer);
    public override void WriteLine(string? value) => Inner.WriteLine(value);
    public override void WriteLine(ReadOnlySpan<char> buffer) => Inner.WriteLine(buffer);
    public override void Flush() => _inner?.Flush();
}
