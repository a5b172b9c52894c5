using System.CommandLine;
using Passthru.Binding;
using Passthru.Discovery;
using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Cli.Commands;

/// <summary>
/// `passthru rom DEVICE [-o FILE] [--json]`: reads a function's option ROM through sysfs (made readable only while it
/// is read, a journaled step of the binding engine), checks it (signature, PCI data structures, images, vendor and
/// device, checksums, size) and says what it found; -o writes the ROM's bytes for run's romfile=.
/// </summary>
public static class RomCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout)
    {
        var device = new Argument<string>("device") { Description = "0000:03:00.0, 03:00.0 or vendor:device" };
        var output = new Option<string?>("--output", "-o") { Description = "Write the ROM's bytes here (for run --device ADDR,romfile=FILE)" };
        var json = new Option<bool>("--json") { Description = "JSON output (schema: docs/json.md)" };
        var romFile = new Option<string?>("--file") { Description = "Check this ROM file against the device instead of reading the device's (changes nothing on the host)" };
        var stateDir = BindingOptions.StateDirOption();
        var command = new Command("rom", "Read a device's option ROM (enabled only while read) and check it: images, vendor and device, checksums")
            { device, output, json, romFile, stateDir };
        command.SetAction(p =>
        {
            var selector = DeviceSelector.Parse(p.GetValue(device)!);
            var host = globals.Host(p);
            var file = p.GetValue(output);
            OutputFile.Check("--output", file);
            var given = p.GetValue(romFile) is string f ? InputFile.FullPath("--file", f) : null;
            var target = selector.ResolveOne(PciInventory.LoadFor(host, [selector], groupMates: false));
            var bytes = given is not null ? InputFile.ReadBytes("--file", given) : Read(host, target, BindingOptions.StateDirectory(p, stateDir, host));
            var what = given is not null ? $"--file {Shown.Value(given)} for {target.Address}" : $"the ROM of {target.Address}";
            OptionRom rom;
            try
            {
                rom = OptionRom.Parse(bytes, what);
                rom.RequireFor(target.Address, target.VendorId, target.DeviceId, what);
            }
            catch (UserError e) when (given is not null)
            {
                throw new UserError(e.Message, ExitCodes.Usage); // a file the user gave is bad input; the device's own ROM is a finding
            }
            if (file is not null) OutputFile.Write("--output", file, bytes);
            if (p.GetValue(json)) JsonOutput.Write(stdout, s => RomReport.WriteJson(s, target, rom, file is null ? null : Path.GetFullPath(file)));
            else
            {
                RomReport.WriteText(stdout, target, rom);
                if (file is not null) stdout.WriteLine($"wrote the ROM ({bytes.Length} bytes) to {file}");
                else if (given is null) stdout.WriteLine($"(-o FILE writes it, for run --device {target.Address},romfile=FILE)");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    private static byte[] Read(HostRoot host, PciDevice target, string stateDir)
    {
        if (host.IsLive && !Environment.IsPrivilegedProcess)
            throw new UserError($"rom turns the ROM of {target.Address} on to read it (root's sysfs attribute): run it as root (sudo passthru rom ...), or check a file with --file; nothing was changed");
        using var custody = Custody.Take(host, stateDir);
        // Between turning the ROM on and off, Ctrl-C or SIGTERM waits for the off (kill -9: restore turns it off).
        using var interrupts = InterruptHold.Begin();
        return custody.ReadRom(target.Address);
    }
}
