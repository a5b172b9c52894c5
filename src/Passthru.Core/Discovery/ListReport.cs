using System.Text.Json;
using Passthru.Pci;

namespace Passthru.Discovery;

/// <summary>
/// What `passthru list` prints. Text lines start exactly as `lspci -Dnn` does, so they can be compared and grepped the
/// same way, and end with what passthrough needs: the driver in use and the IOMMU group.
/// </summary>
public static class ListReport
{
    public const int JsonSchemaVersion = 1;

    public static string NoGroupsNote =>
        "note: this host has no IOMMU groups: the IOMMU is off or absent, so no device can be passed through (see `passthru check`)";

    /// <summary>"0000:00:02.0 Ethernet controller [0200]: Intel Corporation 82574L ... [8086:10d3]", as lspci -Dnn.</summary>
    public static string LspciLine(PciDevice d, PciIds ids)
    {
        var line = $"{d.Address} {ids.FormatClass(d.ClassId)}: {ids.FormatVendorDevice(d.VendorId, d.DeviceId)}";
        return d.Revision != 0 ? $"{line} (rev {d.Revision:x2})" : line;
    }

    public static string Line(PciDevice d, PciIds ids, bool showGroups)
    {
        var line = $"{LspciLine(d, ids)}  driver={(d.Driver is null ? "none" : Shown.Value(d.Driver))}";
        if (showGroups) line += $" group={(d.IommuGroup?.ToString() ?? "none")}";
        // An SR-IOV VF: which PF it belongs to (whose VF count `passthru vfs` sets).
        return d.PhysicalFunction is PciAddress pf ? $"{line} physfn={pf}" : line;
    }

    public static void WriteText(TextWriter output, PciInventory inventory, IEnumerable<PciDevice> devices, PciIds ids)
    {
        foreach (var d in devices) output.WriteLine(Line(d, ids, inventory.HasIommuGroups));
    }

    /// <summary>Grouped by IOMMU group, each group marked viable or not, with what blocks it.</summary>
    public static void WriteGroups(TextWriter output, PciInventory inventory, Func<PciDevice, bool> include, PciIds ids)
    {
        foreach (var group in inventory.Groups)
        {
            if (!group.Members.Any(include)) continue;
            output.WriteLine($"IOMMU group {group.Number}: {Viability(group)}");
            foreach (var d in group.Members)
                output.WriteLine($"  {Line(d, ids, false)}{(d.IsBridge ? "  (bridge: stays with the host)" : "")}");
        }
    }

    public static string Viability(IommuGroup group)
    {
        if (group.IsViable) return "viable";
        var blockers = group.Blockers.Select(b => $"{b.Address} ({b.Driver})");
        return $"not viable: {string.Join(", ", blockers)} must move to vfio-pci";
    }

    /// <summary>The stable JSON schema documented in docs/json.md.</summary>
    public static void WriteJson(Stream stream, PciInventory inventory, IEnumerable<PciDevice> devices, PciIds ids)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        var list = devices.ToList();
        json.WriteStartObject();
        json.WriteNumber("schema", JsonSchemaVersion);
        json.WriteBoolean("iommu_groups_present", inventory.HasIommuGroups);
        json.WriteStartArray("devices");
        foreach (var d in list) WriteDevice(json, d, ids);
        json.WriteEndArray();
        json.WriteStartArray("groups");
        var wanted = list.Where(d => d.IommuGroup is not null).Select(d => d.IommuGroup!.Value).ToHashSet();
        foreach (var g in inventory.Groups.Where(g => wanted.Contains(g.Number))) WriteGroup(json, g);
        json.WriteEndArray();
        json.WriteEndObject();
    }

    public static void WriteDevice(Utf8JsonWriter json, PciDevice d, PciIds ids)
    {
        json.WriteStartObject();
        json.WriteString("address", d.Address.ToString());
        json.WriteString("vendor_id", $"{d.VendorId:x4}");
        json.WriteString("device_id", $"{d.DeviceId:x4}");
        json.WriteString("vendor_name", ids.VendorName(d.VendorId));
        json.WriteString("device_name", ids.DeviceName(d.VendorId, d.DeviceId));
        json.WriteString("class", $"{d.ClassId:x4}");
        json.WriteString("prog_if", $"{d.ClassCode & 0xff:x2}");
        json.WriteString("class_name", ids.ClassName(d.ClassId));
        json.WriteString("revision", $"{d.Revision:x2}");
        json.WriteString("subsystem_vendor_id", d.SubsystemVendorId is ushort sv ? $"{sv:x4}" : null);
        json.WriteString("subsystem_device_id", d.SubsystemDeviceId is ushort sd ? $"{sd:x4}" : null);
        json.WriteString("driver", d.Driver);
        json.WriteString("driver_override", d.DriverOverride);
        if (d.IommuGroup is int g) json.WriteNumber("iommu_group", g); else json.WriteNull("iommu_group");
        json.WriteBoolean("is_bridge", d.IsBridge);
        json.WriteString("physfn", d.PhysicalFunction?.ToString());
        json.WriteEndObject();
    }

    public static void WriteGroup(Utf8JsonWriter json, IommuGroup g)
    {
        json.WriteStartObject();
        json.WriteNumber("number", g.Number);
        json.WriteBoolean("viable", g.IsViable);
        json.WriteStartArray("devices");
        foreach (var m in g.Members) json.WriteStringValue(m.Address.ToString());
        json.WriteEndArray();
        json.WriteStartArray("blockers");
        foreach (var m in g.Blockers) json.WriteStringValue(m.Address.ToString());
        json.WriteEndArray();
        json.WriteEndObject();
    }
}
