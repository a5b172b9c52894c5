using System.Text.Json;
using Passthru.Pci;

namespace Passthru.Discovery;

/// <summary>Everything about one device, for `passthru show`.</summary>
public static class ShowReport
{
    /// <param name="barrelfish">With --build-dir or --menu: the Barrelfish driver that takes the device (null: none) and the line saying so.</param>
    public static void WriteText(TextWriter o, PciDevice d, PciInventory inventory, PciIds ids, Host.HostRoot host, (string? Driver, string Text)? barrelfish = null)
    {
        var a = PassthroughAssessment.Of(d, inventory);
        o.WriteLine(ListReport.LspciLine(d, ids));
        Row(o, "Vendor", $"{ids.VendorName(d.VendorId) ?? "unknown"} [{d.VendorId:x4}]");
        Row(o, "Device", $"{ids.DeviceName(d.VendorId, d.DeviceId) ?? "unknown"} [{d.DeviceId:x4}]");
        Row(o, "Class", $"{ids.FormatClass(d.ClassId)}, prog-if {d.ClassCode & 0xff:x2}");
        Row(o, "Revision", $"{d.Revision:x2}");
        if (d.SubsystemVendorId is ushort sv && d.SubsystemDeviceId is ushort sd)
            Row(o, "Subsystem", ids.FormatSubsystem(d.VendorId, d.DeviceId, sv, sd));
        Row(o, "Driver", d.Driver ?? "none");
        Row(o, "Driver override", d.DriverOverride ?? "none");
        if (!inventory.HasIommuGroups) Row(o, "IOMMU group", "none: the IOMMU is off or absent");
        else if (a.Group is null) Row(o, "IOMMU group", "none");
        else
        {
            Row(o, "IOMMU group", $"{a.Group.Number} ({ListReport.Viability(a.Group)})");
            foreach (var m in a.Group.Members)
                Row(o, m == a.Group.Members[0] ? "Group members" : "",
                    $"{m.Address} {ids.FormatVendorDevice(m.VendorId, m.DeviceId)} driver={(m.Driver is null ? "none" : Shown.Value(m.Driver))}"
                    + (m.Address == d.Address ? " (this device)" : m.IsBridge ? " (bridge)" : ""));
            if (DeviceSafety.ExplainGroup(host, inventory, d) is { } why)
            {
                Row(o, "Why this group", why.Cause);
                Row(o, "", "what to do: " + why.Advice);
            }
        }
        var reset = ResetFacts.Of(host, inventory, d);
        Row(o, "Reset methods", d.ResetMethods is null ? "not reported by the kernel" : d.ResetMethods.Count == 0 ? "none" : string.Join(", ", d.ResetMethods));
        if (reset.NoReset) Row(o, "", "no reset at all: state can carry over from the host into a guest, and between guests");
        else if (reset.BusResetOnly)
            Row(o, "", reset.BlastRadius.Count == 0 ? $"only a bus reset (on {reset.ResetBridge}), which hits nothing else"
                : $"only a bus reset (on {reset.ResetBridge}), which also resets {string.Join(", ", reset.BlastRadius)}");
        int quirkLine = 0;
        foreach (var line in reset.QuirkAdvice(d.Address)) Row(o, quirkLine++ == 0 ? "Reset quirk" : "", line);
        Row(o, "Power", $"{reset.PowerState ?? "state not reported"}{reset.D3coldAllowed switch { true => ", D3cold allowed", false => ", D3cold not allowed", null => "" }}");
        foreach (var (label, value) in BarReport.Of(host, d).Rows()) Row(o, label, value);
        Row(o, "Boot VGA", d.BootVga switch { true => "yes", false => "no", null => "n/a" });
        if (d.BaseClass == 0x03 || d.BootVga == true)
        {
            var console = BootConsole.Of(host, d.Address);
            foreach (var f in console.Framebuffers) Row(o, "Boot console", f.Describe());
            if (console.FramebufferDevices.Count > 0)
                Row(o, console.Framebuffers.Count > 0 ? "" : "Boot console", $"framebuffer {string.Join(", ", console.FramebufferDevices.Select(f => "/dev/" + f))}"
                    + (console.BoundFramebufferConsoles.Count > 0 ? $", the framebuffer console on {string.Join(", ", console.BoundFramebufferConsoles)}" : ""));
            if (console.Framebuffers.Count > 0 || d.BootVga == true)
                Row(o, "", "pass it with --release-console (bind, run): the console lets go of it and comes back after");
        }
        Row(o, "Option ROM", RomSummary(RomBar.Of(host, d.Address), d.Address));
        Row(o, "NUMA node", d.NumaNode is null or < 0 ? "none" : d.NumaNode.Value.ToString());
        if (d.PhysicalFunction is PciAddress pf) Row(o, "SR-IOV", $"virtual function of {pf}");
        else if (d.SriovTotalVfs is > 0) Row(o, "SR-IOV", $"physical function: {d.SriovNumVfs ?? d.VirtualFunctions.Count} of {d.SriovTotalVfs} VFs enabled"
            + (d.VirtualFunctions.Count > 0 ? $" ({string.Join(", ", d.VirtualFunctions)})" : "") + $"; set with `passthru vfs {d.Address} --count N`");
        if (barrelfish is { } bf) Row(o, "Barrelfish", bf.Text);
        Row(o, "Passthrough", Verdict(a));
        foreach (var m in a.ToMove) Row(o, "", $"move {m.Address} from {m.Driver ?? "no driver"} to vfio-pci");
        foreach (var x in a.Obstacles) Row(o, "", $"cannot: {x}");
        foreach (var w in a.Warnings) Row(o, "", $"warning: {w}");
    }

    /// <summary>
    /// The ROM as sysfs shows it without reading it (reading means turning it on, a change `show` never makes):
    /// its size, and where a shadow copy stands in for it.
    /// </summary>
    public static string RomSummary(RomBar? rom, PciAddress address) => rom switch
    {
        null => "none (no ROM BAR)",
        { Size: 0 } => $"present (size not reported); `passthru rom {address}` reads and checks it",
        { Shadow: true } r => $"{Bytes.Format(r.Size)}, the firmware's shadow copy at 0x{r.Start:x} (the boot VGA's); `passthru rom {address}` reads and checks it",
        var r => $"{Bytes.Format(r.Size)} ROM BAR{(r.Enabled ? ", enabled" : "")}; `passthru rom {address}` reads and checks it",
    };

    public static string Verdict(PassthroughAssessment a) =>
        !a.Possible ? "not possible" : a.Ready ? "ready (the whole group is held by vfio-pci)" : $"possible: `passthru bind{(a.ToMove.Count > 1 ? " --group" : "")} {a.Device.Address}` would";

    private static void Row(TextWriter o, string label, string value) =>
        o.WriteLine(label.Length == 0 ? $"  {"",-16} {value}" : $"  {label + ":",-16} {value}");

    public static void WriteJson(Stream stream, PciDevice d, PciInventory inventory, PciIds ids, Host.HostRoot host, (string? Driver, string Text)? barrelfish = null)
    {
        var a = PassthroughAssessment.Of(d, inventory);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteNumber("schema", ListReport.JsonSchemaVersion);
        json.WritePropertyName("device");
        ListReport.WriteDevice(json, d, ids);
        if (a.Group is null) json.WriteNull("group"); else { json.WritePropertyName("group"); ListReport.WriteGroup(json, a.Group); }
        json.WriteStartArray("reset_methods");
        foreach (var r in d.ResetMethods ?? []) json.WriteStringValue(r);
        json.WriteEndArray();
        var reset = ResetFacts.Of(host, inventory, d);
        if (reset.ResetBridge is { } rb) json.WriteString("reset_bridge", rb.ToString()); else json.WriteNull("reset_bridge");
        json.WriteStartArray("reset_also_hits");
        foreach (var x in reset.BlastRadius) json.WriteStringValue(x.ToString());
        json.WriteEndArray();
        if (reset.PowerState is { } ps) json.WriteString("power_state", ps); else json.WriteNull("power_state");
        if (reset.D3coldAllowed is bool d3) json.WriteBoolean("d3cold_allowed", d3); else json.WriteNull("d3cold_allowed");
        if (reset.Quirk is { } quirk)
        {
            json.WriteStartObject("reset_quirk");
            json.WriteString("family", quirk.Family);
            json.WriteBoolean("vendor_reset_loaded", reset.VendorResetLoaded);
            json.WriteBoolean("device_specific_offered", reset.OffersDeviceSpecific);
            json.WriteEndObject();
        }
        else json.WriteNull("reset_quirk");
        BarReport.Of(host, d).WriteJson(json);
        if (DeviceSafety.ExplainGroup(host, inventory, d) is { } why)
        {
            json.WriteStartObject("group_explanation");
            json.WriteString("cause", why.Cause);
            json.WriteString("advice", why.Advice);
            json.WriteEndObject();
        }
        else json.WriteNull("group_explanation");
        if (d.BootVga is bool b) json.WriteBoolean("boot_vga", b); else json.WriteNull("boot_vga");
        if (RomBar.Of(host, d.Address) is { } rom)
        {
            json.WriteStartObject("rom");
            if (rom.Size > 0) json.WriteNumber("size", rom.Size); else json.WriteNull("size");
            json.WriteBoolean("shadow", rom.Shadow);
            json.WriteBoolean("enabled", rom.Enabled);
            json.WriteEndObject();
        }
        else json.WriteNull("rom");
        if (d.NumaNode is >= 0) json.WriteNumber("numa_node", d.NumaNode.Value); else json.WriteNull("numa_node");
        json.WriteString("physfn", d.PhysicalFunction?.ToString());
        json.WriteStartArray("virtfns");
        foreach (var vf in d.VirtualFunctions) json.WriteStringValue(vf.ToString());
        json.WriteEndArray();
        if (d.SriovTotalVfs is int total) json.WriteNumber("sriov_totalvfs", total); else json.WriteNull("sriov_totalvfs");
        if (d.SriovNumVfs is int now) json.WriteNumber("sriov_numvfs", now); else json.WriteNull("sriov_numvfs");
        if (barrelfish is { } bf)
        {
            json.WriteStartObject("barrelfish");
            json.WriteString("driver", bf.Driver);
            json.WriteString("explanation", bf.Text);
            json.WriteEndObject();
        }
        json.WriteStartObject("passthrough");
        json.WriteBoolean("possible", a.Possible);
        json.WriteBoolean("ready", a.Ready);
        json.WriteStartArray("to_move");
        foreach (var m in a.ToMove) json.WriteStringValue(m.Address.ToString());
        json.WriteEndArray();
        json.WriteStartArray("obstacles");
        foreach (var x in a.Obstacles) json.WriteStringValue(x);
        json.WriteEndArray();
        json.WriteStartArray("warnings");
        foreach (var w in a.Warnings) json.WriteStringValue(w);
        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
