using System.Text;
using System.Text.Json;
using Passthru.Host;
using Passthru.Launch;
using Passthru.Pci;

namespace Passthru.Export;

/// <summary>
/// `passthru export nova`: the nova.conf [pci] section that offers exactly the chosen functions on a compute node
/// (device_spec by address, with their IDs), one alias per kind of device (<see cref="FleetNames.Kind"/>), and the
/// flavor property that requests them. The devices are resolved and checked as run checks them
/// (<see cref="RunSession.PlanDevices"/>: whole IOMMU groups, nothing the host needs).
/// </summary>
public static class NovaExport
{
    /// <summary>Nova's device_type for each SR-IOV role (nova.objects.fields.PciDeviceType).</summary>
    public static string DeviceType(SriovRole role) => role switch
    {
        SriovRole.PhysicalFunction => "type-PF",
        SriovRole.VirtualFunction => "type-VF",
        _ => "type-PCI",
    };

    public static ExportResult Build(HostRoot host, IReadOnlyList<PassthroughDevice> requested, bool wholeGroup, string flavor)
    {
        if (requested.Count == 0)
            throw new UserError("export nova needs --device ADDRESS (repeatable): the functions the compute node offers to guests", ExitCodes.Usage);
        foreach (var d in requested.Where(d => !d.RomBar || d.RomFile is not null || d.XVga))
            throw new UserError($"--device '{d.Selector.Text}{(d.RomBar ? "" : ",rombar=0")}{(d.RomFile is null ? "" : ",romfile=" + d.RomFile)}{(d.XVga ? ",x-vga=on" : "")}': Nova's PCI passthrough has no rombar, romfile or x-vga setting: give the device alone", ExitCodes.Usage);
        if (flavor.Length == 0 || flavor.Any(char.IsControl))
            throw new UserError($"--flavor '{flavor}': give the name (or ID) of the flavor that asks for the devices", ExitCodes.Usage);

        var (planned, _) = RunSession.PlanDevices(host, new RunOptions { Devices = requested, WholeGroup = wholeGroup }, exporting: true);
        var devices = DomainExport.Functions(host, planned, wholeGroup);

        var text = new StringBuilder();
        text.Append("# nova.conf on the compute node that has these devices (nova-compute); written by passthru export nova\n");
        text.Append("[pci]\n");
        foreach (var d in devices)
        {
            var f = d.Facts!;
            text.Append("device_spec = ").Append(Json(("address", d.Address.ToString()), ("vendor_id", $"{f.VendorId:x4}"), ("product_id", $"{f.DeviceId:x4}"))).Append('\n');
        }
        var kinds = devices.GroupBy(d => FleetNames.Kind(d.Facts!)).ToList();
        foreach (var kind in kinds)
        {
            var f = kind.First().Facts!;
            text.Append("alias = ").Append(Json(("name", kind.Key), ("vendor_id", $"{f.VendorId:x4}"), ("product_id", $"{f.DeviceId:x4}"),
                ("device_type", DeviceType(FleetNames.Role(f))))).Append('\n');
        }
        var request = string.Join(',', kinds.Select(k => $"{k.Key}:{k.Count()}"));
        text.Append('\n');
        text.Append("# The alias lines go in nova.conf on the API nodes (nova-api) too: flavors are checked against them there.\n");
        text.Append("# The flavor that asks for the devices:\n");
        text.Append($"#   {FlavorCommand(flavor, request)}\n");
        text.Append($"# Each compute node needs the devices on vfio-pci at boot: {KubeVirtExport.SetupLine(devices)}\n");

        var notes = new List<string>();
        foreach (var kind in kinds.Where(k => k.Count() > 1))
            notes.Add($"note: {FleetNames.Join(kind.Select(d => d.Address).ToList())} are {FleetNames.BothOrAll(kind.Count())} {FleetNames.VendorDevice(kind.First().Facts!)}: the flavor asks for {kind.Count()} of alias {kind.Key}, and Nova picks any {kind.Count()} functions device_spec offers, not particular addresses");
        notes.Add("note: the alias lines go in nova.conf on the API nodes too (see the comment at the end)");
        return new ExportResult(text.ToString(), notes);
    }

    /// <summary>`openstack flavor set FLAVOR --property "pci_passthrough:alias"="NAME:COUNT,..."`, quoted for the shell.</summary>
    public static string FlavorCommand(string flavor, string request) =>
        $"openstack flavor set {QemuArgs.ShellQuote(flavor)} --property \"pci_passthrough:alias\"=\"{request}\"";

    /// <summary>One JSON object on one line, as nova.conf's multi-valued options hold them (spaced as Nova's documentation writes them).</summary>
    private static string Json(params (string Key, string Value)[] fields) =>
        "{" + string.Join(", ", fields.Select(f => $"\"{JsonEncodedText.Encode(f.Key)}\": \"{JsonEncodedText.Encode(f.Value)}\"")) + "}";
}
