using System.Buffers.Binary;

namespace Passthru.Tests.Pci;

/// <summary>
/// Option ROM images built byte by byte as the PCI Firmware Specification lays them out: a ROM header (55 aa, the
/// initialization size, at 0x18 the pointer to the PCI data structure) and a PCI data structure ("PCIR") at 0x20.
/// Offsets of the fields, for tests that damage one: <see cref="Pcir"/> and the PCIR field offsets below.
/// </summary>
internal static class RomImages
{
    public const int Pcir = 0x20;
    public const int PcirDeviceList = 0x08, PcirLength = 0x0a, PcirRevision = 0x0c, PcirImageLength = 0x10, PcirCodeType = 0x14, PcirIndicator = 0x15;
    /// <summary>Where the device list goes (relative to the image) when one is given.</summary>
    public const int DeviceListAt = 0x40;

    /// <summary>A legacy x86 image of <paramref name="blocks"/> × 512 bytes, its checksum made good.</summary>
    public static byte[] Legacy(ushort vendor, ushort device, int blocks = 1, bool last = true, ushort[]? deviceList = null, byte revision = 3)
    {
        var image = Image(vendor, device, blocks, codeType: 0, last, deviceList, revision);
        image[2] = (byte)blocks;          // initialization size, in 512-byte units
        image[3] = 0xcb;                  // entry point: a far return, for the shape of it
        FixChecksum(image);
        return image;
    }

    /// <summary>An EFI image (x64 boot service driver unless told otherwise): 0x0EF1, subsystem, machine type, no checksum.</summary>
    public static byte[] Efi(ushort vendor, ushort device, int blocks = 2, bool last = true, ushort machine = 0x8664, ushort subsystem = 11)
    {
        var image = Image(vendor, device, blocks, codeType: 3, last, null, 3);
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(2), (ushort)blocks);
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(4), 0x0EF1);
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(8), subsystem);
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(10), machine);
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(12), 0);     // uncompressed
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(0x16), 0x80); // the PE image's offset
        image[0x80] = (byte)'M'; image[0x81] = (byte)'Z';
        return image;
    }

    private static byte[] Image(ushort vendor, ushort device, int blocks, byte codeType, bool last, ushort[]? deviceList, byte revision)
    {
        var image = new byte[blocks * 512];
        image[0] = 0x55; image[1] = 0xaa;
        BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(0x18), Pcir);
        var s = image.AsSpan(Pcir);
        "PCIR"u8.CopyTo(s);
        BinaryPrimitives.WriteUInt16LittleEndian(s[4..], vendor);
        BinaryPrimitives.WriteUInt16LittleEndian(s[6..], device);
        BinaryPrimitives.WriteUInt16LittleEndian(s[PcirLength..], 0x1c);
        s[PcirRevision] = revision;
        s[0x0d] = 0x00; s[0x0e] = 0x00; s[0x0f] = 0x03;                     // class 030000, VGA
        BinaryPrimitives.WriteUInt16LittleEndian(s[PcirImageLength..], (ushort)blocks);
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x12..], 0x0102);       // code revision
        s[PcirCodeType] = codeType;
        s[PcirIndicator] = (byte)(last ? 0x80 : 0);
        if (deviceList is not null)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(s[PcirDeviceList..], DeviceListAt - Pcir);
            for (int i = 0; i < deviceList.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(DeviceListAt + 2 * i), deviceList[i]);
        }
        return image;
    }

    /// <summary>Sets the image's last byte so that its bytes sum to 0 (mod 256), as a BIOS checks.</summary>
    public static byte[] FixChecksum(byte[] image)
    {
        image[^1] = 0;
        int sum = image.Sum(b => b);
        image[^1] = (byte)(-sum & 0xff);
        return image;
    }

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    public static void WriteUInt16(byte[] data, int at, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(at), value);
}
