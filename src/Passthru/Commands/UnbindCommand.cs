using System.CommandLine;
using Passthru.Binding;
using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Cli.Commands;

/// <summary>
/// `passthru unbind DEVICE...` and `passthru restore [DEVICE...|--all]`: give devices back to the driver they had
/// before Passthru took them, from the journal.
/// </summary>
public static class UnbindCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout) => Build(globals, stdout, restore: false);

    public static Command CreateRestore(GlobalOptions globals, TextWriter stdout) => Build(globals, stdout, restore: true);

    private static Command Build(GlobalOptions globals, TextWriter stdout, bool restore)
    {
        var devices = BindingOptions.Devices(restore ? ArgumentArity.ZeroOrMore : ArgumentArity.OneOrMore);
        var group = new Option<bool>("--group") { Description = "Also give back the other functions of each device's IOMMU group that Passthru bound" };
        var all = new Option<bool>("--all") { Description = "Every device Passthru has bound (the default for restore without devices)" };
        var shared = new BindingOptions();
        var command = restore
            ? new Command("restore", "Give every device Passthru bound (or the ones named) back to its driver; works after a crash") { devices, all }
            : new Command("unbind", "Give devices back to the driver they had before bind") { devices, group };
        shared.AddTo(command);
        command.SetAction(p =>
        {
            var selectors = p.GetValue(devices)!.Select(DeviceSelector.Parse).ToList();
            var host = globals.Host(p);
            var dir = shared.Directory(p, host);
            bool dryRun = p.GetValue(shared.DryRun);
            if (!dryRun) BindingOptions.RequireRoot(host, restore ? "restore" : "unbind");
            using var _ = dryRun ? null : StateLock.Acquire(dir, TimeSpan.FromSeconds(30));
            var journal = Journal.Load(dir);
            // The functions the journal holds and those named: nothing else of the host matters here.
            var inventory = PciInventory.LoadFor(host, selectors, groupMates: false,
                journal.Functions.Select(f => f.Address).Concat(journal.Sriov.Select(x => x.Pf)));
            var addresses = Select(selectors, journal, inventory, wholeGroup: !restore && p.GetValue(group));
            // restore puts back the VF counts Passthru changed: all of them, or those of the PFs named (with their VFs).
            var sriov = !restore ? [] : journal.Sriov.Where(x => selectors.Count == 0 || addresses.Contains(x.Pf)).ToList();
            foreach (var x in sriov)
            {
                addresses.Remove(x.Pf);
                foreach (var vf in x.Created) if (journal.Find(vf) is not null && !addresses.Contains(vf)) addresses.Add(vf);
            }
            // A function a running guest holds cannot be given back under it (vfio-pci would wait for QEMU to let go):
            // named ones are refused, the rest of a restore goes ahead without them.
            var held = HeldByGuests(host, dir, cleanUp: !dryRun);
            foreach (var a in addresses.Where(held.ContainsKey).ToList())
            {
                if (selectors.Count > 0)
                    throw new UserError($"{a} is in use by the running guest '{held[a]}': `passthru detach {held[a]} {a}` or stop the guest first");
                stdout.WriteLine($"{a} stays on vfio-pci: the running guest '{held[a]}' holds it (it goes back when the guest ends)");
                addresses.Remove(a);
            }
            if (addresses.Count == 0 && sriov.Count == 0 && restore && selectors.Count == 0 && journal.Parameters.Count > 0)
            {
                // Only module parameters are left (a run killed before its devices were journaled as its own).
                if (dryRun)
                {
                    stdout.WriteLine("plan (give back):");
                    foreach (var prm in journal.Parameters) stdout.WriteLine($"     write {prm.Original} > /{prm.Path}");
                    return ExitCodes.Ok;
                }
                foreach (var prm in new BindApplier(host, journal, TextWriter.Null).PutBackParameters(_ => true))
                    stdout.WriteLine($"put {prm.Original} back into /{prm.Path}");
                return ExitCodes.Ok;
            }
            if (addresses.Count == 0 && sriov.Count == 0)
            {
                stdout.WriteLine($"nothing to give back: Passthru has no devices bound (journal {Path.Combine(dir, Journal.FileName)})");
                return ExitCodes.Ok;
            }
            var plan = BindPlanner.PlanReturn(inventory, journal, addresses, sriov);
            if (dryRun)
            {
                BindingOptions.PrintPlan(stdout, plan);
                foreach (var prm in journal.Parameters.Where(x => x.For.All(a => addresses.Contains(a) || journal.Find(a) is null)))
                    stdout.WriteLine($"  then: write {prm.Original} > /{prm.Path} (no device it was set for is held any more)");
                return ExitCodes.Ok;
            }
            foreach (var note in plan.Notes) stdout.WriteLine(note);
            stdout.Flush();
            var parametersBefore = journal.Parameters.ToList();
            BindingOptions.Apply(host, journal, plan, p.GetValue(shared.Verbose) ? stdout : TextWriter.Null);
            foreach (var f in plan.Functions.Where(f => inventory.Find(f.Address) is not null))
                stdout.WriteLine($"gave {f.Address} back to {f.Driver ?? "no driver"}");
            foreach (var x in sriov.Where(x => inventory.Find(x.Pf) is not null))
                stdout.WriteLine($"put {x.Pf} back to {x.OriginalCount} VF{(x.OriginalCount == 1 ? "" : "s")}"
                    + (x.OriginalCount == 0 && x.Created.Count > 0 ? $" (removed {string.Join(", ", x.Created)})" : ""));
            foreach (var prm in parametersBefore.Where(b => journal.FindParameter(b.Path) is null))
                stdout.WriteLine($"put {prm.Original} back into /{prm.Path}");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The functions of guests whose QEMU runs, by the guest's name; records of guests that are gone are cleaned up.</summary>
    private static Dictionary<PciAddress, string> HeldByGuests(HostRoot host, string dir, bool cleanUp)
    {
        var held = new Dictionary<PciAddress, string>();
        foreach (var g in Passthru.Hotplug.GuestRecords.All(dir))
        {
            if (!Passthru.Hotplug.GuestRecords.IsQemuAlive(host, g))
            {
                if (cleanUp && Passthru.Hotplug.HotplugSession.IsGone(host, g)) Passthru.Hotplug.GuestRecords.Remove(dir, g.Name); // restore gives its devices back
                continue;
            }
            foreach (var f in g.Devices.Select(d => d.Address).Concat(g.Bound).Concat(g.Devices.SelectMany(d => d.Bound)))
                held.TryAdd(PciAddress.Parse(f), g.Name);
        }
        return held;
    }

    /// <summary>The journaled functions named (all of them when none are named).</summary>
    private static List<PciAddress> Select(List<DeviceSelector> selectors, Journal journal, PciInventory inventory, bool wholeGroup)
    {
        if (selectors.Count == 0) return journal.Functions.Select(f => f.Address).ToList();
        var chosen = new SortedSet<PciAddress>();
        foreach (var s in selectors)
        {
            if (s is DeviceSelector.ByAddress a) chosen.Add(a.Address);   // may be gone from the bus: the journal still knows it
            else foreach (var d in s.Resolve(inventory)) chosen.Add(d.Address);
        }
        if (wholeGroup)
            foreach (var a in chosen.ToList())
                if (journal.Find(a)?.Group is int g)
                    foreach (var f in journal.Functions.Where(f => f.Group == g)) chosen.Add(f.Address);
        return chosen.ToList();
    }
}
