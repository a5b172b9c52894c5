using System.CommandLine;
using System.Globalization;
using Passthru.Binding;
using Passthru.Pci;

namespace Passthru.Cli.Commands;

/// <summary>
/// `passthru vfs PF --count N [--bind]`: sets an SR-IOV physical function's number of virtual functions, as one
/// journaled transaction of the binding engine (restore removes the VFs Passthru created).
/// </summary>
public static class VfsCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout)
    {
        var pf = new Argument<string>("pf") { Description = "The physical function: 0000:03:00.0, 03:00.0 or vendor:device" };
        var count = new Option<string>("--count", "-n") { Description = "How many VFs it should have (0 removes them)", Required = true };
        var bind = new Option<bool>("--bind") { Description = "Hand the new VFs straight to vfio-pci (no host driver probes them first)" };
        var shared = new BindingOptions();
        var command = new Command("vfs", "Set an SR-IOV physical function's number of VFs, journaled and reversible") { pf, count, bind };
        shared.AddTo(command);
        command.SetAction(p =>
        {
            var request = new VfRequest(DeviceSelector.Parse(p.GetValue(pf)!), ParseCount(p.GetValue(count)!), p.GetValue(bind));
            var host = globals.Host(p);
            var dir = shared.Directory(p, host);
            if (p.GetValue(shared.DryRun))
            {
                using var look = Custody.Look(host, dir);
                BindingOptions.PrintPlan(stdout, VfPlanner.Plan(host, look.Journal, request));
                return ExitCodes.Ok;
            }
            BindingOptions.RequireRoot(host, "vfs");
            using var custody = Custody.Take(host, dir);
            // Planned under the lock: another passthru may have just changed this PF.
            var plan = VfPlanner.Plan(host, custody.Journal, request);
            foreach (var note in plan.Notes) stdout.WriteLine(note);
            if (!plan.IsEmpty)
            {
                stdout.Flush();
                BindingOptions.Apply(custody, plan, p.GetValue(shared.Verbose) ? stdout : TextWriter.Null);
            }
            Report(stdout, host, request, globals.Ids(p, host));
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>A VF count is a plain non-negative decimal number.</summary>
    public static int ParseCount(string text) =>
        text.Length is > 0 and <= 5 && text.All(char.IsAsciiDigit) ? int.Parse(text, CultureInfo.InvariantCulture)
            : throw new UserError($"--count '{text}' is not a number of VFs: give 0 or more, e.g. --count 4 (0 removes the VFs)", ExitCodes.Usage);

    /// <summary>The PF's VFs as they are now: address, IDs, IOMMU group and driver, one line each.</summary>
    private static void Report(TextWriter stdout, Host.HostRoot host, VfRequest request, PciIds ids)
    {
        var inventory = PciInventory.LoadFor(host, [request.Pf], groupMates: false);
        var pf = request.Pf.Resolve(inventory)[0];
        var vfs = PciInventory.LoadFor(host, [], groupMates: false, pf.VirtualFunctions);
        stdout.WriteLine($"{pf.Address} has {pf.VirtualFunctions.Count} VF{(pf.VirtualFunctions.Count == 1 ? "" : "s")} (of {pf.SriovTotalVfs})");
        foreach (var vf in vfs.Devices)
            stdout.WriteLine($"  {vf.Address} {ids.FormatVendorDevice(vf.VendorId, vf.DeviceId)} IOMMU group {vf.IommuGroup?.ToString(CultureInfo.InvariantCulture) ?? "none"}"
                + $" driver={vf.Driver ?? "none"}{(vf.IsBoundToVfio && vf.IommuGroup is int g ? $": /dev/vfio/{g}" : "")}");
    }
}
