using System.CommandLine;
using System.Text.Json;
using Passthru.Binding;
using Passthru.Hotplug;
using Passthru.Launch;
using Passthru.Pci;

namespace Passthru.Cli.Commands;

/// <summary>`passthru guests`, `passthru attach NAME DEVICE...`, `passthru detach NAME DEVICE...`: guests `run` started, and hot-plug.</summary>
public static class HotplugCommands
{
    public static Command CreateGuests(GlobalOptions globals, TextWriter stdout)
    {
        var json = new Option<bool>("--json") { Description = "Machine-readable output (see docs/json.md)" };
        var stateDir = BindingOptions.StateDirOption();
        var command = new Command("guests", "List the running guests passthru run started, with their devices; clean up after ones that are gone") { json, stateDir };
        command.SetAction(p =>
        {
            var host = globals.Host(p);
            var dir = BindingOptions.StateDirectory(p, stateDir, host);
            var cleaned = new List<string>();
            var notes = new StringWriter();
            var guests = Custody.Look(host, dir).Guests();
            if (guests.Any(g => GuestRecords.IsGone(host, g)))
            {
                // A guest whose QEMU and run are both gone (kill -9): its devices go back now.
                BindingOptions.RequireRoot(host, "guests");
                using var custody = Custody.Take(host, dir);
                foreach (var (name, result) in custody.CleanUpGone())
                {
                    foreach (var line in result.Lines) notes.WriteLine($"guest '{name}' has ended: {line}");
                    foreach (var problem in result.Problems) notes.WriteLine($"passthru: after guest '{name}': {problem}");
                    cleaned.Add(name);
                }
                guests = custody.Guests();
            }
            if (p.GetValue(json))
            {
                JsonOutput.Write(stdout, s => WriteJson(s, host, guests, cleaned));
                return ExitCodes.Ok;
            }
            stdout.Write(notes.ToString());
            foreach (var name in cleaned.Where(n => !notes.ToString().Contains($"'{n}'", StringComparison.Ordinal)))
                stdout.WriteLine($"guest '{name}' has ended: removed its record");
            if (guests.Count == 0)
            {
                stdout.WriteLine("no running guests (passthru run starts one; its --name is how attach and detach find it)");
                return ExitCodes.Ok;
            }
            var rows = guests.Select(g => (g.Name, Pid: g.QemuPid == 0 ? "starting" : g.QemuPid.ToString(), Devices: DeviceText(g), Free: string.Join(",", g.FreePorts))).ToList();
            int w0 = Math.Max(4, rows.Max(r => r.Name.Length)), w1 = Math.Max(8, rows.Max(r => r.Pid.Length)), w2 = Math.Max(7, rows.Max(r => r.Devices.Length));
            stdout.WriteLine($"{"NAME".PadRight(w0)}  {"QEMU PID".PadRight(w1)}  {"DEVICES".PadRight(w2)}  FREE PORTS");
            foreach (var r in rows)
                stdout.WriteLine($"{r.Name.PadRight(w0)}  {r.Pid.PadRight(w1)}  {r.Devices.PadRight(w2)}  {(r.Free.Length == 0 ? "-" : r.Free)}".TrimEnd());
            foreach (var g in guests.Where(g => g.QemuPid > 0 && !GuestRecords.IsRunnerAlive(host, g)))
                stdout.WriteLine($"note: the passthru run watching '{g.Name}' is gone: when its QEMU ends, `passthru guests` gives its devices back");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static string DeviceText(GuestRecord g) => g.Devices.Count == 0 ? "-"
        : string.Join(", ", g.Devices.Select(d => $"{d.Address} ({d.Port}{(d.Attached ? ", attached" : "")})"));

    private static void WriteJson(Stream s, Passthru.Host.HostRoot host, IReadOnlyList<GuestRecord> guests, List<string> cleaned)
    {
        using var w = new Utf8JsonWriter(s, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteStartArray("guests");
        foreach (var g in guests)
        {
            w.WriteStartObject();
            w.WriteString("name", g.Name);
            if (g.QemuPid > 0) w.WriteNumber("qemu_pid", g.QemuPid); else w.WriteNull("qemu_pid");
            w.WriteBoolean("watched", GuestRecords.IsRunnerAlive(host, g));
            w.WriteString("qmp", g.Qmp);
            w.WriteString("machine", g.Machine);
            w.WriteString("started", g.Started);
            w.WriteStartArray("devices");
            foreach (var d in g.Devices)
            {
                w.WriteStartObject();
                w.WriteString("address", d.Address);
                w.WriteString("id", d.Id);
                w.WriteString("port", d.Port);
                w.WriteBoolean("attached", d.Attached);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("free_ports");
            foreach (var port in g.FreePorts) w.WriteStringValue(port);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("cleaned_up");
        foreach (var c in cleaned) w.WriteStringValue(c);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static Argument<string> GuestName() => new("name") { Description = "The guest's name (passthru guests lists them)" };

    public static Command CreateAttach(GlobalOptions globals, TextWriter stdout)
    {
        var name = GuestName();
        var devices = BindingOptions.Devices(ArgumentArity.OneOrMore);
        var group = new Option<bool>("--group") { Description = "Also bind the other endpoints of each device's IOMMU group" };
        var unsafeInterrupts = new Option<bool>("--allow-unsafe-interrupts")
        {
            Description = "On an IOMMU without interrupt remapping, let vfio use the devices until they are given back (a guest's device can then forge interrupts against the host)",
        };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the binding plan and the QMP commands; change nothing" };
        var stateDir = BindingOptions.StateDirOption();
        var command = new Command("attach", "Give a running guest (started by passthru run) a device: bind it to vfio-pci and hot-plug it") { name, devices, group, unsafeInterrupts, dryRun, stateDir };
        command.SetAction(p =>
        {
            var host = globals.Host(p);
            var dir = BindingOptions.StateDirectory(p, stateDir, host);
            var selectors = p.GetValue(devices)!.Select(DeviceSelector.Parse).ToList();
            bool wholeGroup = p.GetValue(group), allowUnsafe = p.GetValue(unsafeInterrupts);
            var plan = HotplugSession.PlanAttach(host, dir, p.GetValue(name)!, selectors, wholeGroup, allowUnsafe);
            if (p.GetValue(dryRun))
            {
                foreach (var line in HotplugSession.Describe(plan)) stdout.WriteLine(line);
                return ExitCodes.Ok;
            }
            BindingOptions.RequireRoot(host, "attach");
            HotplugSession.Attach(host, dir, plan, wholeGroup, allowUnsafe, stdout);
            return ExitCodes.Ok;
        });
        return command;
    }

    public static Command CreateDetach(GlobalOptions globals, TextWriter stdout)
    {
        var name = GuestName();
        var devices = BindingOptions.Devices(ArgumentArity.OneOrMore);
        var timeout = new Option<string?>("--timeout") { Description = "Seconds to wait for the guest to let go of each device (default 30)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the QMP commands and what is given back; change nothing" };
        var stateDir = BindingOptions.StateDirOption();
        var command = new Command("detach", "Take a device from a running guest (hot-unplug) and give it back to its host driver") { name, devices, timeout, dryRun, stateDir };
        command.SetAction(p =>
        {
            var host = globals.Host(p);
            var dir = BindingOptions.StateDirectory(p, stateDir, host);
            int seconds = p.GetValue(timeout) is string t ? MemorySize.ParseCount(t, "--timeout") : 30;
            if (seconds <= 0) throw new UserError("--timeout must be a positive number of seconds", ExitCodes.Usage);
            var selectors = p.GetValue(devices)!.Select(DeviceSelector.Parse).ToList();
            var plan = HotplugSession.PlanDetach(host, dir, p.GetValue(name)!, selectors, TimeSpan.FromSeconds(seconds));
            if (p.GetValue(dryRun))
            {
                foreach (var line in HotplugSession.Describe(plan)) stdout.WriteLine(line);
                return ExitCodes.Ok;
            }
            BindingOptions.RequireRoot(host, "detach");
            HotplugSession.Detach(host, dir, plan, stdout);
            return ExitCodes.Ok;
        });
        return command;
    }
}
