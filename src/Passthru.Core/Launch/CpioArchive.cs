using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace Passthru.Launch;

/// <summary>
/// One member of a gzip-compressed cpio archive in the "newc" format (what Barrelfish's build packs its RAM disks in,
/// like Linux's initramfs): read with bounds, since the archive is input. Each header is 110 ASCII bytes, "070701" (or
/// "070702", with a checksum) and 13 fields of 8 hex digits; the name (namesize bytes, NUL included) follows, padded
/// so that header and name take a multiple of 4 bytes, then the data (filesize bytes), padded to 4 again; the member
/// named TRAILER!!! ends the archive. Any damage is one <see cref="FormatException"/> naming what and where.
/// </summary>
public static class CpioArchive
{
    /// <summary>Barrelfish's SKB RAM disk unpacks to under 1 MiB, its ECLiPSe one to a few: 64 MiB is damage, not input.</summary>
    public const int MaxUnpackedBytes = 64 << 20;

    private const int HeaderSize = 110;
    private const int MaxNameSize = 4096;

    /// <summary>The archive's bytes once gunzipped, refusing what is not gzip, is cut short, or unpacks beyond the cap.</summary>
    public static byte[] Gunzip(ReadOnlySpan<byte> gz)
    {
        if (gz.Length < 18 || gz[0] != 0x1f || gz[1] != 0x8b) throw new FormatException("not gzip-compressed (no gzip header)");
        using var input = new MemoryStream(gz.ToArray(), writable: false);
        using var unzip = new GZipStream(input, CompressionMode.Decompress);
        using var output = new MemoryStream();
        var buffer = new byte[81920];
        try
        {
            int n;
            while ((n = unzip.Read(buffer, 0, buffer.Length)) > 0)
            {
                if (output.Length + n > MaxUnpackedBytes) throw new FormatException($"unpacks to more than {MaxUnpackedBytes >> 20} MiB: far larger than any such archive");
                output.Write(buffer, 0, n);
            }
        }
        catch (InvalidDataException e) { throw new FormatException($"damaged gzip data ({e.Message.TrimEnd('.')})"); }
        // GZipStream ends quietly when the data stops early; a complete stream ends with its CRC and its unpacked
        // length modulo 2^32, which a cut-off stream's last bytes match only by chance. (A file of several gzip
        // members, which no Barrelfish build makes, is refused too: the trailer counts the last member alone.)
        uint trailer = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(gz[^4..]);
        if ((uint)output.Length != trailer)
            throw new FormatException($"gzip data cut short or damaged: its trailer promises {trailer} bytes unpacked, {output.Length} came out");
        return output.ToArray();
    }

    /// <summary>The data of the member named <paramref name="member"/> (as stored, without a leading "./"), or null when the archive has none.</summary>
    public static byte[]? Find(ReadOnlySpan<byte> archive, string member)
    {
        int offset = 0;
        while (true)
        {
            if (archive.Length - offset < HeaderSize)
                throw new FormatException($"cpio archive cut short at byte {offset}: no header and no TRAILER!!! member");
            var header = archive.Slice(offset, HeaderSize);
            var magic = Encoding.ASCII.GetString(header[..6]);
            if (magic is not ("070701" or "070702"))
                throw new FormatException(magic == "070707"
                    ? $"cpio header at byte {offset} is the old portable format (070707), not newc (070701)"
                    : $"cpio header at byte {offset} does not start with the newc magic 070701");
            long fileSize = Hex(header, 6, "filesize", offset);
            long nameSize = Hex(header, 11, "namesize", offset);
            if (nameSize is < 1 or > MaxNameSize) throw new FormatException($"cpio header at byte {offset}: name size {nameSize} (expected 1 to {MaxNameSize})");
            long nameEnd = offset + HeaderSize + nameSize;
            if (nameEnd > archive.Length) throw new FormatException($"cpio member at byte {offset}: its name runs past the end of the archive");
            var nameBytes = archive.Slice(offset + HeaderSize, (int)nameSize);
            if (nameBytes[^1] != 0) throw new FormatException($"cpio member at byte {offset}: its name is not NUL-terminated");
            var name = Encoding.UTF8.GetString(nameBytes[..^1]);
            long dataStart = Align4(nameEnd);
            if (fileSize > archive.Length - Math.Min(dataStart, archive.Length))
                throw new FormatException($"cpio member {Shown.Value(name)} claims {fileSize} bytes, more than the archive holds after it");
            if (name == "TRAILER!!!") return null;
            if ((name.StartsWith("./", StringComparison.Ordinal) ? name[2..] : name) == member)
                return archive.Slice((int)dataStart, (int)fileSize).ToArray();
            long next = Align4(dataStart + fileSize);
            if (next > archive.Length) throw new FormatException($"cpio member {Shown.Value(name)}: its padding runs past the end of the archive");
            offset = (int)next;
        }
    }

    private static long Align4(long n) => (n + 3) & ~3L;

    /// <summary>Field <paramref name="index"/> (0 = ino) of a newc header: 8 hex digits.</summary>
    private static long Hex(ReadOnlySpan<byte> header, int index, string field, int offset)
    {
        var text = Encoding.ASCII.GetString(header.Slice(6 + 8 * index, 8));
        if (!long.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value) || text.Any(c => !char.IsAsciiHexDigit(c)))
            throw new FormatException($"cpio header at byte {offset}: {field} {Shown.Value(text)} is not 8 hex digits");
        return value;
    }
}
