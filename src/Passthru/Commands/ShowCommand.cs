using System.CommandLine;
using Passthru.Discovery;
using Passthru.Pci;

namespace Passthru.Cli.Commands;

/// <summary>`passthru show DEVICE`: everything about one device and what passing it through would take.</summary>
public static class ShowCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout)
    {
        var device = new Argument<string>("device") { Description = "0000:83:00.0, 83:00.0 or vendor:device (15b3:1003)" };
        var json = new Option<bool>("--json") { Description = "JSON output (schema: docs/json.md)" };
        var command = new Command("show", "Show everything about one PCI device") { device, json };
        command.SetAction(p =>
        {
            var selector = DeviceSelector.Parse(p.GetValue(device)!);
            var host = globals.Host(p);
            var inventory = PciInventory.Load(host);
            var target = selector.ResolveOne(inventory);
            var ids = globals.Ids(p, host);
            if (p.GetValue(json)) JsonOutput.Write(stdout, s => ShowReport.WriteJson(s, target, inventory, ids, host));
            else ShowReport.WriteText(stdout, target, inventory, ids, host);
            return ExitCodes.Ok;
        });
        return command;
    }
}
