using System.CommandLine;
using Passthru.Discovery;
using Passthru.Launch;
using Passthru.Pci;

namespace Passthru.Cli.Commands;

/// <summary>`passthru show DEVICE`: everything about one device and what passing it through would take.</summary>
public static class ShowCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout)
    {
        var device = new Argument<string>("device") { Description = "0000:83:00.0, 83:00.0 or vendor:device (15b3:1003)" };
        var json = new Option<bool>("--json") { Description = "JSON output (schema: docs/json.md)" };
        var buildDir = new Option<string?>("--build-dir") { Description = "A Barrelfish build: say which of its drivers takes the device (its SKB device database)" };
        var menu = new Option<string?>("--menu") { Description = "A Barrelfish menu.lst: as --build-dir, for the build it boots, and only drivers it loads with `auto`" };
        var command = new Command("show", "Show everything about one PCI device") { device, json, buildDir, menu };
        command.SetAction(p =>
        {
            var selector = DeviceSelector.Parse(p.GetValue(device)!);
            var host = globals.Host(p);
            var inventory = PciInventory.Load(host);
            var target = selector.ResolveOne(inventory);
            var ids = globals.Ids(p, host);
            (string?, string)? barrelfish = null;
            var menuFile = p.GetValue(menu) is string m ? Passthru.Host.InputFile.FullPath("--menu", m) : null;
            var dir = p.GetValue(buildDir) is string b ? Passthru.Host.InputFile.FullPath("--build-dir", b) : null;
            if (menuFile is not null || dir is not null)
            {
                var verdict = BarrelfishDrivers.Load(menuFile, dir).For(target.VendorId, target.DeviceId);
                barrelfish = (verdict.Driver, verdict.Text);
            }
            if (p.GetValue(json)) JsonOutput.Write(stdout, s => ShowReport.WriteJson(s, target, inventory, ids, host, barrelfish));
            else ShowReport.WriteText(stdout, target, inventory, ids, host, barrelfish);
            return ExitCodes.Ok;
        });
        return command;
    }
}
