using System.CommandLine;
using Passthru.Binding;
using Passthru.Pci;

namespace Passthru.Cli.Commands;

/// <summary>`passthru bind DEVICE...`: hand devices (and, with --group, their IOMMU groups) to vfio-pci.</summary>
public static class BindCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout)
    {
        var devices = BindingOptions.Devices(ArgumentArity.OneOrMore);
        var group = new Option<bool>("--group") { Description = "Also bind the other endpoints of each device's IOMMU group" };
        var force = new Option<bool>("--force") { Description = "Take devices the host uses (boot VGA, mounted disks, the default route, bridges)" };
        var unsafeInterrupts = new Option<bool>("--allow-unsafe-interrupts")
        {
            Description = "On an IOMMU without interrupt remapping, let vfio use the devices until they are given back (a guest's device can then forge interrupts against the host)",
        };
        var releaseConsole = new Option<bool>("--release-console")
        {
            Description = "Let the host's console go of a GPU (boot VGA, a firmware framebuffer in its BAR): journaled, taken back when it is given back",
        };
                var resetMethod = ResetMethodOption();
        var shared = new BindingOptions();
        var command = new Command("bind", "Hand devices to vfio-pci, journaled and reversible") { devices, group, force, unsafeInterrupts, releaseConsole, resetMethod };
        shared.AddTo(command);
        command.SetAction(p =>
        {
            var selectors = p.GetValue(devices)!.Select(DeviceSelector.Parse).ToList();
            var host = globals.Host(p);
            var request = new BindRequest(selectors, p.GetValue(group), p.GetValue(force), p.GetValue(unsafeInterrupts), ReleaseConsole: p.GetValue(releaseConsole),
                ResetMethods: p.GetValue(resetMethod) is string rm ? ResetMethodPlanner.ParseOption(rm) : null);
            if (p.GetValue(shared.DryRun))
            {
                BindingOptions.PrintPlan(stdout, BindPlanner.PlanBind(host, PciInventory.LoadFor(host, selectors, groupMates: true), request));
                return ExitCodes.Ok;
            }
            BindingOptions.RequireRoot(host, "bind");
            var dir = shared.Directory(p, host);
            using var custody = Custody.Take(host, dir);
            // Planned under the lock: another passthru may have just moved these devices.
            var plan = custody.PlanBind(request, PciInventory.LoadFor(host, selectors, groupMates: true));
            foreach (var note in plan.Notes) stdout.WriteLine(note);
            if (plan.IsEmpty) return ExitCodes.Ok;
            stdout.Flush();
            BindingOptions.Apply(custody, plan, p.GetValue(shared.Verbose) ? stdout : TextWriter.Null);
            foreach (var f in plan.Functions)
                stdout.WriteLine($"bound {f.Address} to vfio-pci (was {f.Driver ?? "no driver"}); IOMMU group {f.Group}: /dev/vfio/{f.Group}");
            foreach (var r in plan.Steps.OfType<ReleaseConsole>())
                stdout.WriteLine($"released {r.Hold} from the host's console until {string.Join(", ", r.For)} {(r.For.Count == 1 ? "is" : "are")} given back");
            foreach (var m in plan.Steps.OfType<SetModuleParameter>())
                stdout.WriteLine($"allowed unsafe interrupts: /{m.Path} is {m.Value} until {string.Join(", ", m.For)} {(m.For.Count == 1 ? "is" : "are")} given back");
            foreach (var r in plan.Steps.OfType<SetResetMethod>())
                stdout.WriteLine($"reset methods of {r.Function}: {r.Value} until it is given back");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>--reset-method, for bind and run alike.</summary>
    public static Option<string?> ResetMethodOption() => new("--reset-method")
    {
        Description = "Write these reset methods (METHOD[,METHOD], e.g. device_specific for a GPU vendor-reset knows) into the devices' reset_method while they are held; put back when they are given back",
    };
}
