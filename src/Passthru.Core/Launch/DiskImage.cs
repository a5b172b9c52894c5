namespace Passthru.Launch;

/// <summary>
/// A disk image's format, guessed from its first bytes. In Launch because QEMU's -drive needs it; the exports
/// (libvirt's disk driver type) ask here too.
/// </summary>
public static class DiskImage
{
    private static readonly byte[] QcowMagic = [(byte)'Q', (byte)'F', (byte)'I', 0xfb];

    /// <summary>qcow2 images start with "QFI\xfb"; anything else is taken as raw, as QEMU's probing would.</summary>
    public static string Format(string path)
    {
        try
        {
            using var f = File.OpenRead(path);
            Span<byte> magic = stackalloc byte[4];
            return f.Read(magic) == 4 && magic.SequenceEqual(QcowMagic) ? "qcow2" : "raw";
        }
        catch (IOException) { return "raw"; }
    }
}
