using Passthru.Pci;
using static Passthru.Tests.Pci.RomImages;

namespace Passthru.Tests.Pci;

/// <summary>
/// OptionRom on images built byte by byte (good ones, and each broken shape a dump or a downloaded file can have) and
/// on the two real ROMs Debian ships with QEMU's firmware: SeaBIOS's VGA BIOS and iPXE's legacy + EFI e1000e ROM.
/// </summary>
public sealed class OptionRomTests
{
    private const string What = "romfile x.rom for 0000:03:00.0";
    private static readonly PciAddress Gpu = PciAddress.Parse("0000:03:00.0");

    private static OptionRom Check(byte[] data, ushort vendor = 0x1234, ushort device = 0x1111)
    {
        var rom = OptionRom.Parse(data, What);
        rom.RequireFor(Gpu, vendor, device, What);
        return rom;
    }

    [Fact]
    public void A_legacy_image_is_read_with_its_checksum_and_last_flag()
    {
        var rom = Check(Legacy(0x1234, 0x1111, blocks: 4));
        var image = Assert.Single(rom.Images);
        Assert.Equal((0, 2048, "legacy x86", (ushort)0x1234, (ushort)0x1111, true), (image.Offset, image.Length, image.CodeTypeName, image.VendorId, image.DeviceId, image.Last));
        Assert.Equal(2048, image.Checksum!.Covered);
        Assert.Equal(0x030000, image.ClassCode);
        Assert.Equal((ushort)0x0102, image.CodeRevision);
        Assert.Null(image.Efi);
        Assert.Equal(2048, rom.ImagesSize);
    }

    [Fact]
    public void A_legacy_and_an_efi_image_in_a_rom_bar_with_padding()
    {
        var data = Concat(Legacy(0x1234, 0x1111, blocks: 2, last: false), Efi(0x1234, 0x1111, blocks: 3), Enumerable.Repeat((byte)0xff, 1536).ToArray());
        var rom = Check(data);
        Assert.Equal(2, rom.Images.Count);
        var efi = rom.Images[1];
        Assert.Equal((1024, 1536, "EFI", true), (efi.Offset, efi.Length, efi.CodeTypeName, efi.Last));
        Assert.Equal(("x64", "boot service driver", "uncompressed", true), (efi.Efi!.MachineName, efi.Efi.SubsystemName, efi.Efi.CompressionName, efi.Efi.RunsOnX64));
        Assert.Null(efi.Checksum);  // EFI images carry none
        Assert.False(rom.Images[0].Last);
        Assert.Equal((2560, 4096), (rom.ImagesSize, rom.DataSize));
    }

    [Theory]
    [InlineData((ushort)0x014c, "IA32")]
    [InlineData((ushort)0x0ebc, "EBC (EFI byte code)")]
    [InlineData((ushort)0xaa64, "AArch64")]
    [InlineData((ushort)0x5064, "RISC-V 64")]
    [InlineData((ushort)0x1234, "machine type 0x1234")]
    public void Efi_machine_types_are_named(ushort machine, string name) =>
        Assert.Equal(name, Check(Efi(0x1234, 0x1111, machine: machine)).Images[0].Efi!.MachineName);

    [Fact]
    public void A_pci_3_device_list_lets_one_rom_serve_several_devices()
    {
        // The ROM names 1111 in its PCIR and 2222 in its device list: a 1234:2222 function may use it.
        var data = Legacy(0x1234, 0x1111, deviceList: [0x1111, 0x2222, 0]);
        Assert.Equal([(ushort)0x1111, (ushort)0x2222], Check(data, device: 0x2222).Images[0].DeviceList);
        var e = Assert.Throws<UserError>(() => Check(data, device: 0x3333));
        Assert.Equal($"{What}: image 1 (legacy x86) at 0x0 is for 1234:1111 (device list 1111, 2222), not for 0000:03:00.0 (1234:3333): a ROM of another device; dump this one's with `passthru rom 0000:03:00.0 -o FILE`", e.Message);
    }

    [Fact]
    public void Before_pci_3_the_device_list_field_is_reserved_and_not_read()
    {
        var data = Legacy(0x1234, 0x1111, revision: 0);
        WriteUInt16(data, Pcir + PcirDeviceList, 0x7ff0); // garbage there must not matter
        FixChecksum(data);
        Assert.Empty(Check(data).Images[0].DeviceList);
    }

    [Fact]
    public void Images_of_other_code_types_are_listed_but_not_matched()
    {
        var other = Legacy(0xabcd, 0xef01, last: true);
        other[Pcir + PcirCodeType] = 0x70;
        var rom = Check(Concat(Legacy(0x1234, 0x1111, last: false), other));
        Assert.Equal("code type 0x70", rom.Images[1].CodeTypeName);
    }

    [Fact]
    public void SeaBIOS_vga_bios_for_qemus_std_vga()
    {
        var rom = Check(File.ReadAllBytes("/usr/share/seabios/vgabios-stdvga.bin"));
        var image = Assert.Single(rom.Images);
        Assert.Equal(("legacy x86", (ushort)0x1234, (ushort)0x1111, 39936, true), (image.CodeTypeName, image.VendorId, image.DeviceId, image.Length, image.Last));
        Assert.Equal(0x99dc, BitConverter.ToUInt16(File.ReadAllBytes("/usr/share/seabios/vgabios-stdvga.bin"), 0x18));
    }

    [Fact]
    public void Ipxe_e1000e_rom_has_a_legacy_image_with_a_device_list_and_an_x64_efi_image()
    {
        var data = File.ReadAllBytes("/usr/lib/ipxe/qemu/efi-e1000e.rom");
        var rom = Check(data, 0x8086, 0x10d3);
        Assert.Equal(2, rom.Images.Count);
        Assert.Equal(("legacy x86", 75264, false, 3), (rom.Images[0].CodeTypeName, rom.Images[0].Length, rom.Images[0].Last, (int)rom.Images[0].PcirRevision));
        Assert.Equal([(ushort)0x10d3], rom.Images[0].DeviceList);
        Assert.Equal(("EFI", "x64", "boot service driver", 0x12600, true), (rom.Images[1].CodeTypeName, rom.Images[1].Efi!.MachineName, rom.Images[1].Efi!.SubsystemName, rom.Images[1].Offset, rom.Images[1].Last));
        Assert.Equal(data.Length, rom.ImagesSize);
        // ...and it is not the VGA's.
        var e = Assert.Throws<UserError>(() => Check(data));
        Assert.Contains("is for 8086:10d3 (device list 10d3), not for 0000:03:00.0 (1234:1111): a ROM of another device", e.Message);
    }

    /// <summary>Each broken shape, and the words its one line must hold.</summary>
    [Theory]
    [InlineData("empty", "romfile x.rom for 0000:03:00.0 is empty: no option ROM at all")]
    [InlineData("oversize", "is 16777728 bytes, more than the 16 MiB a ROM BAR can hold")]
    [InlineData("no signature", "romfile x.rom for 0000:03:00.0 starts with 00 00, not the option ROM signature 55 aa: not an option ROM")]
    [InlineData("no signature on the next image", "image 2 at 0x200: starts with ff ff, not the signature 55 aa: the previous image's length points at no image")]
    [InlineData("header cut", "image 1 at 0x0: the data ends after 16 bytes, inside its ROM header (a truncated dump?)")]
    [InlineData("pcir pointer zero", "image 1 at 0x0: its PCI data structure pointer (0x0, at 0x18) is 0: the image has no PCI data structure")]
    [InlineData("pcir pointer misaligned", "image 1 at 0x0: its PCI data structure pointer (0x22, at 0x18) is not a multiple of 4 (the structure must be DWORD aligned)")]
    [InlineData("pcir pointer out of range", "image 1 at 0x0: its PCI data structure pointer (0x1000, at 0x18) points past the data, which ends at 0x200 (a truncated dump?)")]
    [InlineData("pcir pointer into header", "image 1 at 0x0: its PCI data structure pointer (0x4, at 0x18) points into the ROM header")]
    [InlineData("no PCIR", "image 1 at 0x0: no \"PCIR\" signature at 0x20, where its pointer says its PCI data structure is (found 50 43 49 53)")]
    [InlineData("pcir too short", "image 1 at 0x0: its PCI data structure at 0x20 gives its own length as 8 bytes, less than the 24 it holds")]
    [InlineData("vendor mismatch", "image 1 (legacy x86) at 0x0 is for 10de:1111, not for 0000:03:00.0 (1234:1111): a ROM of another device")]
    [InlineData("device mismatch", "image 2 (EFI) at 0x200 is for 1234:2222, not for 0000:03:00.0 (1234:1111): a ROM of another device")]
    [InlineData("truncated", "image 1 at 0x0: its PCI data structure at 0x20 gives an image length of 2048 bytes (0x800), but only 1536 bytes remain: the ROM is cut short (a truncated dump?)")]
    [InlineData("zero length", "image 1 at 0x0: its PCI data structure at 0x20 gives an image length of 0: the image list would loop on this image")]
    [InlineData("bad checksum", "image 1 at 0x0: bad checksum of its legacy x86 code: its 512 bytes sum to 0x01 (mod 256), not 00")]
    [InlineData("no last image", "image 2 at 0x200 is not marked last (PCIR byte 0x15, bit 7) but the data ends after it, at 0x600: the image list runs off the end")]
    [InlineData("efi without 0ef1", "image 1 at 0x0: its code type is EFI (3), but its header has 0x0000 at 0x4, not the EFI signature 0x0ef1")]
    [InlineData("device list without end", "image 1 at 0x0: its PCI 3.0 device list (at 0x1c0 past the PCI data structure) runs past the image without its closing 0000")]
    public void A_broken_rom_is_refused_in_one_line_naming_the_mismatch_and_where(string shape, string expected)
    {
        var data = Broken(shape);
        var e = Assert.Throws<UserError>(() => Check(data));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith(What, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    internal static readonly string[] Shapes = ["empty", "oversize", "no signature", "no signature on the next image", "header cut", "pcir pointer zero",
        "pcir pointer misaligned", "pcir pointer out of range", "pcir pointer into header", "no PCIR", "pcir too short", "vendor mismatch", "device mismatch",
        "truncated", "zero length", "bad checksum", "no last image", "efi without 0ef1", "device list without end"];

    internal static byte[] Broken(string shape)
    {
        byte[] one = Legacy(0x1234, 0x1111);
        switch (shape)
        {
            case "empty": return [];
            case "oversize": return Concat(new byte[16 << 20], new byte[512]);
            case "no signature": return new byte[512];
            case "no signature on the next image": return Concat(Legacy(0x1234, 0x1111, last: false), Enumerable.Repeat((byte)0xff, 512).ToArray());
            case "header cut": return one[..16];
            case "pcir pointer zero": WriteUInt16(one, 0x18, 0); return one;
            case "pcir pointer misaligned": WriteUInt16(one, 0x18, 0x22); return one;
            case "pcir pointer out of range": WriteUInt16(one, 0x18, 0x1000); return one;
            case "pcir pointer into header": WriteUInt16(one, 0x18, 4); return one;
            case "no PCIR": one[Pcir + 3] = (byte)'S'; return FixChecksum(one);
            case "pcir too short": WriteUInt16(one, Pcir + PcirLength, 8); return FixChecksum(one);
            case "vendor mismatch": return Legacy(0x10de, 0x1111);
            case "device mismatch": return Concat(Legacy(0x1234, 0x1111, last: false), Efi(0x1234, 0x2222));
            case "truncated": return Legacy(0x1234, 0x1111, blocks: 4)[..1536];
            case "zero length": WriteUInt16(one, Pcir + PcirImageLength, 0); return FixChecksum(one);
            case "bad checksum": one[0x100]++; return one;
            case "no last image": return Concat(Legacy(0x1234, 0x1111, last: false), Efi(0x1234, 0x1111, last: false));
            case "efi without 0ef1": var efi = Efi(0x1234, 0x1111); WriteUInt16(efi, 4, 0); return efi;
            case "device list without end":
                var listed = Legacy(0x1234, 0x1111, deviceList: []);
                WriteUInt16(listed, Pcir + PcirDeviceList, 0x1c0); // to the image's last 0x20 bytes, no 0000 among them
                for (int i = 0x200 - 0x20; i < 0x200; i++) listed[i] = 0x11;
                return FixChecksum(listed);
            default: throw new ArgumentException(shape);
        }
    }
}
