using System.Globalization;
using System.Text.Json;
using Passthru.Pci;

namespace Passthru.Discovery;

/// <summary>What `passthru rom` found in a function's option ROM, as text or JSON (docs/json.md).</summary>
public static class RomReport
{
    public static void WriteText(TextWriter o, PciDevice d, OptionRom rom)
    {
        o.WriteLine($"{d.Address} option ROM: {rom.DataSize} bytes read, signature 55 aa, {rom.Images.Count} image{(rom.Images.Count == 1 ? "" : "s")}");
        foreach (var i in rom.Images)
        {
            var ids = $"{i.VendorId:x4}:{i.DeviceId:x4}" + (i.DeviceList.Count == 0 ? "" : $" (+ device list {string.Join(", ", i.DeviceList.Select(x => x.ToString("x4", CultureInfo.InvariantCulture)))})");
            var checksum = i.Checksum is { } c ? $", checksum ok ({c.Covered} bytes sum to 00)" : "";
            o.WriteLine($"  image {i.Index} at 0x{i.Offset:x}: {Kind(i)}, {i.Length} bytes, PCIR {ids}, revision 0x{i.CodeRevision:x4}, class {i.ClassCode:x6}{checksum}{(i.Last ? ", last" : "")}");
        }
        int padding = rom.DataSize - rom.ImagesSize;
        o.WriteLine(padding == 0 ? $"  size: the images fill all {rom.DataSize} bytes"
            : $"  size: the images end at 0x{rom.ImagesSize:x} ({rom.ImagesSize} bytes); the {padding} bytes after them are padding");
        o.WriteLine($"  matches {d.Address} ({d.VendorId:x4}:{d.DeviceId:x4}): {Boots(rom)}");
    }

    private static string Kind(RomImage i) => i.Efi is { } e ? $"EFI {e.MachineName} {e.SubsystemName}, {e.CompressionName}" : i.CodeTypeName;

    /// <summary>Which guest firmware would start it: SeaBIOS the legacy x86 image, OVMF an x64 (or byte code) EFI image.</summary>
    private static string Boots(OptionRom rom)
    {
        bool legacy = rom.Images.Any(i => i.CodeType == RomImage.CodeTypeX86);
        bool efi = rom.Images.Any(i => i.Efi is { RunsOnX64: true });
        return (legacy, efi) switch
        {
            (true, true) => "a guest's BIOS (SeaBIOS) or UEFI (OVMF) firmware can start it",
            (true, false) => "a guest's BIOS (SeaBIOS) can start it; it has no x64 EFI image for a UEFI guest (OVMF)",
            (false, true) => "a guest's UEFI firmware (OVMF) can start it; it has no legacy image for a BIOS guest",
            _ => "it has no legacy x86 or x64 EFI image: neither SeaBIOS nor OVMF would start it",
        };
    }

    public static void WriteJson(Stream stream, PciDevice d, OptionRom rom, string? written)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteNumber("schema", ListReport.JsonSchemaVersion);
        json.WriteString("address", d.Address.ToString());
        json.WriteString("vendor_id", d.VendorId.ToString("x4", CultureInfo.InvariantCulture));
        json.WriteString("device_id", d.DeviceId.ToString("x4", CultureInfo.InvariantCulture));
        json.WriteNumber("size", rom.DataSize);
        json.WriteNumber("images_size", rom.ImagesSize);
        json.WriteStartArray("images");
        foreach (var i in rom.Images)
        {
            json.WriteStartObject();
            json.WriteNumber("offset", i.Offset);
            json.WriteNumber("length", i.Length);
            json.WriteNumber("code_type", i.CodeType);
            json.WriteString("code_type_name", i.CodeTypeName);
            json.WriteString("vendor_id", i.VendorId.ToString("x4", CultureInfo.InvariantCulture));
            json.WriteString("device_id", i.DeviceId.ToString("x4", CultureInfo.InvariantCulture));
            json.WriteStartArray("device_list");
            foreach (var x in i.DeviceList) json.WriteStringValue(x.ToString("x4", CultureInfo.InvariantCulture));
            json.WriteEndArray();
            json.WriteNumber("pcir_revision", i.PcirRevision);
            json.WriteString("class", i.ClassCode.ToString("x6", CultureInfo.InvariantCulture));
            json.WriteNumber("code_revision", i.CodeRevision);
            json.WriteBoolean("last", i.Last);
            if (i.Checksum is { } c) json.WriteNumber("checksum_bytes", c.Covered); else json.WriteNull("checksum_bytes");
            if (i.Efi is { } e)
            {
                json.WriteStartObject("efi");
                json.WriteString("machine", e.MachineName);
                json.WriteNumber("machine_type", e.MachineType);
                json.WriteString("subsystem", e.SubsystemName);
                json.WriteBoolean("compressed", e.Compression != 0);
                json.WriteEndObject();
            }
            else json.WriteNull("efi");
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteBoolean("matches_device", true);
        json.WriteString("written_to", written);
        json.WriteEndObject();
    }
}
