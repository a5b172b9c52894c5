using System.Buffers.Binary;
using System.Globalization;

namespace Passthru.Pci;

/// <summary>
/// An option ROM's image list, as the PCI Firmware Specification (3.0) lays it out, checked the way firmware would
/// use it. Each image starts with the ROM header (55 aa; at 0x18 a pointer to its PCI data structure) and its PCI
/// data structure ("PCIR": vendor and device, in PCI 3.0 a list of further device IDs, the image length in 512-byte
/// units, the code type, the last-image flag). A legacy x86 image's bytes sum to 0 (what a BIOS checks before it runs
/// it); an EFI image's header carries 0x0EF1, the subsystem and the machine type. Checked against two real ROMs:
/// SeaBIOS's vgabios-stdvga.bin and iPXE's efi-e1000e.rom (legacy with a PCI 3.0 device list, then x64 EFI).
/// </summary>
public sealed record OptionRom(IReadOnlyList<RomImage> Images, int DataSize)
{
    /// <summary>A ROM BAR is at most 16 MiB (its size field's bits 11..23): more is not a ROM.</summary>
    public const int MaxBytes = 16 << 20;

    /// <summary>Where the last image ends: what a firmware uses; the rest of a ROM BAR is padding.</summary>
    public int ImagesSize => Images.Count == 0 ? 0 : Images[^1].Offset + Images[^1].Length;

    private const int HeaderPcirPointer = 0x18;
    private const int PcirMinimumLength = 0x18;
    private const ushort EfiSignature = 0x0EF1;

    /// <summary>
    /// The ROM in <paramref name="data"/>, or a <see cref="UserError"/> of one line naming what is wrong and where,
    /// prefixed by <paramref name="what"/> (e.g. "romfile /srv/vbios.rom").
    /// </summary>
    public static OptionRom Parse(ReadOnlySpan<byte> data, string what)
    {
        if (data.Length == 0) throw Refuse(what, "is empty: no option ROM at all");
        if (data.Length > MaxBytes)
            throw Refuse(what, $"is {data.Length} bytes, more than the 16 MiB a ROM BAR can hold: not an option ROM");
        var images = new List<RomImage>();
        int offset = 0;
        while (true)
        {
            var image = ParseImage(data, offset, images.Count + 1, what);
            images.Add(image);
            if (image.Last) break;
            offset = image.Offset + image.Length;
            if (offset >= data.Length)
                throw Refuse(what, $"image {image.Index} at 0x{image.Offset:x} is not marked last (PCIR byte 0x15, bit 7) but the data ends after it, at 0x{data.Length:x}: the image list runs off the end (a truncated dump?)");
        }
        return new OptionRom(images, data.Length);
    }

    private static RomImage ParseImage(ReadOnlySpan<byte> data, int offset, int index, string what)
    {
        var where = $"image {index} at 0x{offset:x}";
        var rest = data[offset..];
        if (rest.Length < 2 || rest[0] != 0x55 || rest[1] != 0xaa)
        {
            var found = rest.Length == 0 ? "nothing" : string.Join(' ', rest[..Math.Min(2, rest.Length)].ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
            throw Refuse(what, index == 1
                ? $"starts with {found}, not the option ROM signature 55 aa: not an option ROM (a ROM the kernel could not read gives 00s or ffs)"
                : $"{where}: starts with {found}, not the signature 55 aa: the previous image's length points at no image");
        }
        if (rest.Length < HeaderPcirPointer + 2)
            throw Refuse(what, $"{where}: the data ends after {rest.Length} bytes, inside its ROM header (a truncated dump?)");
        int pcir = BinaryPrimitives.ReadUInt16LittleEndian(rest[HeaderPcirPointer..]);
        var pointer = $"its PCI data structure pointer (0x{pcir:x}, at 0x{offset + HeaderPcirPointer:x})";
        if (pcir == 0) throw Refuse(what, $"{where}: {pointer} is 0: the image has no PCI data structure");
        if (pcir % 4 != 0) throw Refuse(what, $"{where}: {pointer} is not a multiple of 4 (the structure must be DWORD aligned)");
        if (pcir < HeaderPcirPointer + 2 || pcir + PcirMinimumLength > rest.Length)
            throw Refuse(what, $"{where}: {pointer} points {(pcir < HeaderPcirPointer + 2 ? "into the ROM header" : $"past the data, which ends at 0x{data.Length:x} (a truncated dump?)")}");
        var s = rest[pcir..];
        if (!s[..4].SequenceEqual("PCIR"u8))
            throw Refuse(what, $"{where}: no \"PCIR\" signature at 0x{offset + pcir:x}, where its pointer says its PCI data structure is (found {Hex(s[..4])})");
        ushort vendor = BinaryPrimitives.ReadUInt16LittleEndian(s[4..]);
        ushort device = BinaryPrimitives.ReadUInt16LittleEndian(s[6..]);
        int deviceListPointer = BinaryPrimitives.ReadUInt16LittleEndian(s[8..]);
        int structureLength = BinaryPrimitives.ReadUInt16LittleEndian(s[10..]);
        byte revision = s[12];
        int classCode = s[13] | s[14] << 8 | s[15] << 16;
        int length = BinaryPrimitives.ReadUInt16LittleEndian(s[16..]) * 512;
        ushort codeRevision = BinaryPrimitives.ReadUInt16LittleEndian(s[18..]);
        byte codeType = s[20];
        bool last = (s[21] & 0x80) != 0;
        var pcirAt = $"its PCI data structure at 0x{offset + pcir:x}";
        if (structureLength < PcirMinimumLength)
            throw Refuse(what, $"{where}: {pcirAt} gives its own length as {structureLength} bytes, less than the 24 it holds");
        if (length == 0)
            throw Refuse(what, $"{where}: {pcirAt} gives an image length of 0: the image list would loop on this image");
        if (length > rest.Length)
            throw Refuse(what, $"{where}: {pcirAt} gives an image length of {length} bytes (0x{length:x}), but only {rest.Length} bytes remain: the ROM is cut short (a truncated dump?)");
        if (pcir + structureLength > length)
            throw Refuse(what, $"{where}: {pcirAt} ({structureLength} bytes) runs past the image's end at 0x{offset + length:x}");
        var image = rest[..length];
        // PCI 3.0 (structure revision 3) added the device list: more device IDs this image supports, ended by 0000.
        // Before it the field was reserved, so older structures' values there mean nothing.
        var deviceList = revision >= 3 && deviceListPointer != 0 ? DeviceList(image, pcir, deviceListPointer, where, what) : [];
        EfiImage? efi = null;
        RomChecksum? checksum = null;
        if (codeType == RomImage.CodeTypeEfi)
        {
            ushort signature = BinaryPrimitives.ReadUInt16LittleEndian(image[4..]);
            if (signature != EfiSignature)
                throw Refuse(what, $"{where}: its code type is EFI (3), but its header has 0x{signature:x4} at 0x{offset + 4:x}, not the EFI signature 0x0ef1");
            efi = new EfiImage(BinaryPrimitives.ReadUInt16LittleEndian(image[8..]), BinaryPrimitives.ReadUInt16LittleEndian(image[10..]),
                BinaryPrimitives.ReadUInt16LittleEndian(image[12..]));
        }
        else if (codeType == RomImage.CodeTypeX86)
        {
            // What a BIOS checks before it runs the image: its initialization size (header byte 2, in 512-byte units)
            // sums to 0. A size of 0, or past the image, is taken as the whole image.
            int covered = image[2] * 512;
            if (covered == 0 || covered > length) covered = length;
            int sum = 0;
            foreach (var b in image[..covered]) sum += b;
            if ((sum & 0xff) != 0)
                throw Refuse(what, $"{where}: bad checksum of its legacy x86 code: its {covered} bytes sum to 0x{sum & 0xff:x2} (mod 256), not 00 (a damaged or patched ROM; a BIOS would not run it)");
            checksum = new RomChecksum(covered, 0);
        }
        return new RomImage(index, offset, length, codeType, vendor, device, deviceList, revision, classCode, codeRevision, last, checksum, efi);
    }

    private static List<ushort> DeviceList(ReadOnlySpan<byte> image, int pcir, int pointer, string where, string what)
    {
        int at = pcir + pointer;
        var list = new List<ushort>();
        for (int i = at; ; i += 2)
        {
            if (i + 2 > image.Length)
                throw Refuse(what, $"{where}: its PCI 3.0 device list (at 0x{pointer:x} past the PCI data structure) runs past the image without its closing 0000");
            ushort id = BinaryPrimitives.ReadUInt16LittleEndian(image[i..]);
            if (id == 0) return list;
            list.Add(id);
        }
    }

    /// <summary>
    /// Refuses a ROM not made for the function <paramref name="address"/> (<paramref name="vendor"/>:<paramref name="device"/>):
    /// each legacy x86 and EFI image, the ones a BIOS or UEFI would start for it, must name its vendor and either its
    /// device or, in a PCI 3.0 device list, list it. Images of other code types are not started by either.
    /// </summary>
    public void RequireFor(PciAddress address, ushort vendor, ushort device, string what)
    {
        foreach (var image in Images.Where(i => i.CodeType is RomImage.CodeTypeX86 or RomImage.CodeTypeEfi))
        {
            if (image.VendorId == vendor && (image.DeviceId == device || image.DeviceList.Contains(device))) continue;
            var ids = $"{image.VendorId:x4}:{image.DeviceId:x4}" + (image.DeviceList.Count == 0 ? "" : $" (device list {string.Join(", ", image.DeviceList.Select(d => d.ToString("x4", CultureInfo.InvariantCulture)))})");
            throw Refuse(what, $"image {image.Index} ({image.CodeTypeName}) at 0x{image.Offset:x} is for {ids}, not for {address} ({vendor:x4}:{device:x4}): "
                + $"a ROM of another device; dump this one's with `passthru rom {address} -o FILE`");
        }
    }

    private static string Hex(ReadOnlySpan<byte> bytes) => string.Join(' ', bytes.ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));

    private static UserError Refuse(string what, string problem) => new(problem.StartsWith("image ", StringComparison.Ordinal) ? $"{what}: {problem}" : $"{what} {problem}");
}

/// <summary>One image of an option ROM.</summary>
public sealed record RomImage(int Index, int Offset, int Length, byte CodeType, ushort VendorId, ushort DeviceId, IReadOnlyList<ushort> DeviceList,
    byte PcirRevision, int ClassCode, ushort CodeRevision, bool Last, RomChecksum? Checksum, EfiImage? Efi)
{
    public const byte CodeTypeX86 = 0;
    public const byte CodeTypeEfi = 3;

    public string CodeTypeName => CodeType switch
    {
        CodeTypeX86 => "legacy x86",
        1 => "Open Firmware",
        2 => "HP PA-RISC",
        CodeTypeEfi => "EFI",
        _ => $"code type 0x{CodeType:x2}",
    };
}

/// <summary>A legacy image's checksum: the bytes it covers (its initialization size) and their sum, mod 256.</summary>
public sealed record RomChecksum(int Covered, int Sum);

/// <summary>An EFI image's header: what kind of EFI binary it is, for which processor, and whether it is compressed.</summary>
public sealed record EfiImage(ushort Subsystem, ushort MachineType, ushort Compression)
{
    public string MachineName => MachineType switch
    {
        0x014c => "IA32",
        0x0200 => "Itanium",
        0x0ebc => "EBC (EFI byte code)",
        0x8664 => "x64",
        0x01c2 => "ARM",
        0xaa64 => "AArch64",
        0x5032 => "RISC-V 32",
        0x5064 => "RISC-V 64",
        0x5128 => "RISC-V 128",
        0x6232 => "LoongArch32",
        0x6264 => "LoongArch64",
        _ => $"machine type 0x{MachineType:x4}",
    };

    public string SubsystemName => Subsystem switch
    {
        10 => "application",
        11 => "boot service driver",
        12 => "runtime driver",
        _ => $"subsystem {Subsystem}",
    };

    public string CompressionName => Compression switch { 0 => "uncompressed", 1 => "compressed", _ => $"compression type {Compression}" };

    /// <summary>Whether a guest with OVMF on x86-64 can run it: an x64 driver, or EFI byte code.</summary>
    public bool RunsOnX64 => MachineType is 0x8664 or 0x0ebc;
}
