using System.CommandLine;
using Passthru.Discovery;
using Passthru.Pci;

namespace Passthru.Cli.Commands;

/// <summary>`passthru list`: every PCI function like lspci -Dnn, with driver and IOMMU group.</summary>
public static class ListCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout, TextWriter stderr)
    {
        var groups = new Option<bool>("--groups") { Description = "Group by IOMMU group, each marked viable or not for passthrough" };
        var cls = new Option<string?>("--class") { Description = "Only this class: net, storage, display, usb, audio, ... or a hex code (02, 0200)" };
        cls.CompletionSources.Add([.. DeviceFilter.ClassNames.Keys]);
        var vendor = new Option<string?>("--vendor") { Description = "Only this vendor: hex ID (8086) or part of its name" };
        var driver = new Option<string?>("--driver") { Description = "Only functions bound to this driver (none: unbound)" };
        var json = new Option<bool>("--json") { Description = "JSON output (schema: docs/json.md)" };
        var command = new Command("list", "List PCI functions with names, IDs, drivers and IOMMU groups") { groups, cls, vendor, driver, json };
        command.SetAction(p =>
        {
            var host = globals.Host(p);
            var filter = DeviceFilter.Create(p.GetValue(cls), p.GetValue(vendor), p.GetValue(driver));
            // Text output needs only IDs, class, driver and group; JSON carries subsystem and driver_override too.
            var inventory = PciInventory.Load(host, full: p.GetValue(json));
            var ids = globals.Ids(p, host);
            var selected = inventory.Devices.Where(d => filter.Matches(d, ids));
            if (p.GetValue(json))
            {
                JsonOutput.Write(stdout, stream => ListReport.WriteJson(stream, inventory, selected, ids));
                return ExitCodes.Ok;
            }
            if (p.GetValue(groups) && inventory.HasIommuGroups)
                ListReport.WriteGroups(stdout, inventory, d => filter.Matches(d, ids), ids);
            else
                ListReport.WriteText(stdout, inventory, selected, ids);
            // Said once, after the list, instead of an empty group column on every line.
            if (!inventory.HasIommuGroups) { stdout.Flush(); stderr.WriteLine(ListReport.NoGroupsNote); }
            return ExitCodes.Ok;
        });
        return command;
    }
}
