using System.Globalization;
using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Binding;

/// <summary>What the user asked `vfs` for: this many VFs on the physical function, and whether they go to vfio-pci.</summary>
public sealed record VfRequest(DeviceSelector Pf, int Count, bool Bind);

/// <summary>
/// Plans a change of a physical function's number of virtual functions, as one transaction of the binding engine:
/// journaled before the first write, rolled back on failure, given back by restore. Pure: it reads the host and
/// changes nothing; refusals are one-line <see cref="UserError"/>s.
/// </summary>
public static class VfPlanner
{
    public static BindPlan Plan(HostRoot host, Journal journal, VfRequest request)
    {
        if (request.Count < 0) throw new UserError($"--count {request.Count}: a VF count is 0 or more", ExitCodes.Usage);
        var inventory = PciInventory.LoadFor(host, [request.Pf], groupMates: false);
        var pf = request.Pf.Resolve(inventory) is { Count: 1 } one ? one[0]
            : throw new UserError($"{request.Pf.Text} matches several functions: name the physical function by address", ExitCodes.Usage);
        var a = pf.Address;
        if (pf.PhysicalFunction is PciAddress parent)
            throw new UserError($"{a} is a virtual function (of {parent}), not a physical function: give its PF, `passthru vfs {parent} --count N`", ExitCodes.Usage);
        if (pf.SriovTotalVfs is not int total || total == 0)
            throw new UserError($"{a} is not an SR-IOV physical function (it has no SR-IOV capability: no sriov_totalvfs): it cannot have VFs", ExitCodes.Usage);
        if (request.Count > total)
            throw new UserError($"{a} supports at most {total} VFs (sriov_totalvfs), not {request.Count}", ExitCodes.Usage);
        if (pf.IsBoundToVfio)
            throw new UserError($"{a} is bound to vfio-pci: its VFs are made by its own driver; give it back first (passthru unbind {a}); nothing was changed");
        if (pf.Driver is null)
            throw new UserError($"{a} has no driver: the kernel lets only the PF's driver create VFs; let its driver take it first; nothing was changed");

        int current = pf.SriovNumVfs ?? pf.VirtualFunctions.Count;
        var existing = pf.VirtualFunctions;
        var vfInventory = PciInventory.LoadFor(host, [], groupMates: false, existing);
        var notes = new List<string>();
        var steps = new List<BindStep>();
        var sriov = new List<SriovState>();
        var rollback = new List<SriovState>();
        var vanishing = new List<PciAddress>();
        IReadOnlyList<PciAddress> vfs = existing;
        bool changes = request.Count != current;
        string? autoprobeBefore = null;

        if (!changes)
        {
            var already = $"{a} already has {current} VF{(current == 1 ? "" : "s")}";
            if (!request.Bind || current == 0) return new BindPlan(PlanKind.Bind, [], [], [already]);
            // VFs that exist already are functions like any other: bind them as bind does, with all its checks
            // (their host drivers, what the host uses them for, their groups).
            var selectors = existing.Select(vf => (DeviceSelector)new DeviceSelector.ByAddress(vf.ToString(), vf)).ToList();
            var bind = BindPlanner.PlanBind(host, PciInventory.LoadFor(host, selectors, groupMates: true), new BindRequest(selectors, Verb: "vfs"));
            return bind with { Notes = [already, .. bind.Notes] };
        }
        else
        {
            // Removing VFs under a guest would pull devices out from under it: the kernel would wait for vfio to let go.
            foreach (var vf in existing)
            {
                var d = vfInventory.Find(vf);
                if (d is not { IsBoundToVfio: true, IommuGroup: int g }) continue;
                var holders = ProcessScan.Holders(host, "/" + SysfsPaths.VfioGroup(g));
                if (holders.Count > 0)
                    throw new UserError($"{vf}, a VF of {a}, is in use by a guest ({string.Join(", ", holders)} has /dev/vfio/{g} open): changing the VF count would remove it; stop the guest first; nothing was changed");
            }
            foreach (var vf in existing)
                if (journal.Find(vf) is not null) { vanishing.Add(vf); notes.Add($"{vf} (on vfio-pci by Passthru) goes away with the count change"); }

            vfs = request.Count == 0 ? [] : Predict(host, pf, request.Count);
            var autoprobe = host.ReadAttribute(SysfsPaths.Sriov(a, SriovWrite.Autoprobe));
            bool holdProbe = request.Bind && request.Count > 0 && autoprobe is not null && autoprobe != "0";
            if (holdProbe) autoprobeBefore = autoprobe;
            var earlier = journal.FindSriov(a);
            sriov.Add(new SriovState(a, earlier?.OriginalCount ?? current, autoprobeBefore, vfs));
            rollback.Add(new SriovState(a, current, autoprobeBefore, existing));
            if (current > 0 && request.Count > 0) steps.Add(new SriovWrite(a, SriovWrite.NumVfs, "0")); // the kernel changes a count only from 0
            if (holdProbe) steps.Add(new SriovWrite(a, SriovWrite.Autoprobe, "0"));                   // no host driver grabs the new VFs
            steps.Add(new SriovWrite(a, SriovWrite.NumVfs, request.Count.ToString(CultureInfo.InvariantCulture)));
            steps.Add(new VerifyVfs(a, request.Count, vfs));
        }

        var functions = new List<FunctionState>();
        if (request.Bind && request.Count > 0)
        {
            var safety = InterruptSafety.Of(new HostFacts(host));
            if (safety.Blocks) throw new UserError(InterruptSafety.Refusal("bind"));
            var bindSteps = new List<BindStep>();
            foreach (var vf in vfs)
            {
                // New VFs appear with no driver (autoprobe is off), no override and a group not known yet.
                functions.Add(new FunctionState(vf, null, null, null));
                bindSteps.Add(new WriteAttribute(vf, SysfsPaths.DriverOverride(vf), BindPlanner.Vfio));
                bindSteps.Add(new WriteAttribute(vf, SysfsPaths.DriversProbe, vf.ToString()));
                bindSteps.Add(new VerifyDriver(vf, BindPlanner.Vfio));
                bindSteps.Add(new VerifyVfioGroupOf(vf));
            }
            if (bindSteps.Count > 0)
            {
                // Before the count changes: a module that cannot load stops the plan before any VF exists.
                int at = 0;
                if (!host.DirectoryExists("sys/module/vfio_pci")) steps.Insert(at++, new LoadModule(BindPlanner.Vfio));
                if (!host.DirectoryExists("sys/module/vfio_iommu_type1")) steps.Insert(at, new LoadModule("vfio_iommu_type1"));
                steps.AddRange(bindSteps);
            }
        }
        // Put back as soon as the VFs are bound: autoprobe matters only while VFs are being created.
        if (autoprobeBefore is not null) steps.Add(new SriovWrite(a, SriovWrite.Autoprobe, autoprobeBefore));
        return new BindPlan(PlanKind.Bind, functions, steps, notes) { Sriov = sriov, SriovRollback = rollback, Vanishing = vanishing };
    }

    /// <summary>
    /// The addresses the kernel gives a PF's VFs: its routing ID plus sriov_offset, then sriov_stride apart (PCIe
    /// SR-IOV 3.3.9-10), carrying into the bus number. The applier checks them once the VFs exist.
    /// </summary>
    public static IReadOnlyList<PciAddress> Predict(HostRoot host, PciDevice pf, int count) => Predict(host, pf.Address, count);

    /// <inheritdoc cref="Predict(HostRoot, PciDevice, int)"/>
    public static IReadOnlyList<PciAddress> Predict(HostRoot host, PciAddress pf, int count)
    {
        int offset = ReadInt(host, pf, "sriov_offset"), stride = ReadInt(host, pf, "sriov_stride");
        int rid = (pf.Bus << 8) | (pf.Device << 3) | pf.Function;
        var vfs = new List<PciAddress>(count);
        for (int i = 0; i < count; i++)
        {
            int r = rid + offset + i * stride;
            vfs.Add(new PciAddress(pf.Domain, (r >> 8) & 0xff, (r >> 3) & 0x1f, r & 7));
        }
        return vfs;
    }

    private static int ReadInt(HostRoot host, PciAddress pf, string attribute)
    {
        var text = host.ReadAttribute(SysfsPaths.Sriov(pf, attribute));
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v)
            ? v : throw new UserError($"{host.Path(SysfsPaths.Sriov(pf, attribute))} holds '{text ?? "nothing"}', not a number: the tree is damaged or not sysfs");
    }
}
