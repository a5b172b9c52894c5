namespace Passthru.Host;

/// <summary>
/// The process's stdout (descriptor 1) as a stream, written with write(2) directly. Console.OpenStandardOutput's
/// stream sets up the console on its first write: terminal settings, terminfo, and a thread for the terminal's
/// signals, in every process (~2 ms and a thread per command in the virtual host, for a bind that prints one line).
/// A reader that went away (`passthru list | head`) ends the output quietly, as with Console's stream.
/// </summary>
public sealed class StandardOutput : Stream
{
    private bool _closed;

    /// <summary>Before anything is opened: /dev/null under any of descriptors 0-2 the process was started without (see NativeFiles).</summary>
    public static void CoverClosedDescriptors() => NativeFiles.CoverClosedStandardDescriptors();

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (!_closed) _closed = !NativeFiles.WriteDescriptor(1, buffer);
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
