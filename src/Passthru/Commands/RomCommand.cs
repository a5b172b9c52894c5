using System.CommandLine;
using System.Runtime.InteropServices;
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
        var stateDir = BindingOptions.StateDirOption();
        var command = new Command("rom", "Read a device's option ROM (enabled only while read) and check it: images, vendor and device, checksums")
            { device, output, json, stateDir };
        command.SetAction(p =>
        {
            var selector = DeviceSelector.Parse(p.GetValue(device)!);
            var host = globals.Host(p);
            var file = p.GetValue(output);
            OutputFile.Check("--output", file);
            var target = selector.ResolveOne(PciInventory.LoadFor(host, [selector], groupMates: false));
            if (host.IsLive && !Environment.IsPrivilegedProcess)
                throw new UserError($"rom turns the ROM of {target.Address} on to read it (root's sysfs attribute): run it as root (sudo passthru rom ...); nothing was changed");
            byte[] bytes;
            using (var custody = Custody.Take(host, BindingOptions.StateDirectory(p, stateDir, host)))
            {
                // Between turning the ROM on and off, Ctrl-C or SIGTERM waits for the off (kill -9: restore turns it off).
                void Hold(PosixSignalContext c) => c.Cancel = true;
                using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Hold);
                using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Hold);
                using var sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Hold);
                bytes = custody.ReadRom(target.Address);
            }
            var what = $"the ROM of {target.Address}";
            var rom = OptionRom.Parse(bytes, what);
            rom.RequireFor(target.Address, target.VendorId, target.DeviceId, what);
            if (file is not null) OutputFile.Write("--output", file, bytes);
            if (p.GetValue(json)) JsonOutput.Write(stdout, s => RomReport.WriteJson(s, target, rom, file is null ? null : Path.GetFullPath(file)));
            else
            {
                RomReport.WriteText(stdout, target, rom);
                stdout.WriteLine(file is null ? $"(-o FILE writes it, for run --device {target.Address},romfile=FILE)" : $"wrote the ROM ({bytes.Length} bytes) to {file}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }
}
