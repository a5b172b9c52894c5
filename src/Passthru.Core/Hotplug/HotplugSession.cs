using System.Text.Json.Nodes;
using Passthru.Binding;
using Passthru.Host;
using Passthru.Launch;
using Passthru.Pci;

namespace Passthru.Hotplug;

/// <summary>A device to attach: where it goes in the guest and the QMP command that puts it there.</summary>
public sealed record AttachStep(PciAddress Address, string Port, string Id, JsonObject DeviceAdd);

/// <summary>What `attach` will do, decided first (shown by --dry-run): the binding, then one device_add per device.</summary>
public sealed record AttachPlan(GuestRecord Guest, BindPlan Binding, IReadOnlyList<AttachStep> Steps);

/// <summary>What `detach` will do: one device_del per device, then the functions given back.</summary>
/// <param name="GiveBack">What custody gives back once the guest lets go of them, planned as for a real detach.</param>
public sealed record DetachPlan(GuestRecord Guest, IReadOnlyList<GuestDevice> Devices, TimeSpan Timeout, BindPlan GiveBack);

/// <summary>
/// Hot-plug for guests `passthru run` started: `attach` binds a device (journaled, whole-group rules as for bind) and
/// asks QEMU over QMP to add it behind a free hot-plug root port, then confirms with query-pci that the guest's bus has
/// it; `detach` asks QEMU to remove it, waits for the guest to let go (DEVICE_DELETED) and gives it back to its host
/// driver. The guest's record (<see cref="GuestRecords"/>) says what it holds, so whatever way it ends, its devices
/// are given back.
/// </summary>
public static class HotplugSession
{
    /// <summary>How long to wait for QMP answers (device_add pins the guest's memory for DMA on the first vfio device: seconds under emulation).</summary>
    public static readonly TimeSpan CommandWait = TimeSpan.FromSeconds(120);
    public static readonly TimeSpan ConnectWait = TimeSpan.FromSeconds(10);

    public static GuestRecord Running(HostRoot host, string stateDir, string name)
    {
        GuestRecords.ValidateName(name);
        var guest = GuestRecords.Load(stateDir, name)
            ?? throw new UserError($"no guest named '{name}' is running{Known(stateDir)}; `passthru run --name {name} ...` starts one", ExitCodes.Usage);
        if (!GuestRecords.IsQemuAlive(host, guest))
            throw new UserError(guest.QemuPid == 0 ? $"guest '{name}' is still starting: try again in a moment"
                : $"guest '{name}' has ended (QEMU pid {guest.QemuPid} is gone): `passthru guests` gives its devices back");
        return guest;
    }

    private static string Known(string stateDir)
    {
        var names = GuestRecords.All(stateDir).Select(g => g.Name).ToList();
        return names.Count == 0 ? " (there are none)" : $" (running: {string.Join(", ", names)})";
    }

    public static AttachPlan PlanAttach(HostRoot host, string stateDir, string name, IReadOnlyList<DeviceSelector> selectors, bool wholeGroup, bool allowUnsafe)
    {
        var guest = Running(host, stateDir, name);
        var inventory = PciInventory.Load(host);
        var addresses = selectors.Select(s => s.ResolveOne(inventory).Address).ToList();
        if (addresses.Distinct().Count() != addresses.Count) throw new UserError("a device is named twice", ExitCodes.Usage);
        var others = GuestRecords.All(stateDir).Where(g => g.Name != name).ToList();
        foreach (var a in addresses)
        {
            if (guest.Devices.Any(d => d.Address == a.ToString())) throw new UserError($"guest '{name}' already has {a}");
            if (others.FirstOrDefault(g => g.Devices.Any(d => d.Address == a.ToString())) is { } other)
                throw new UserError($"{a} belongs to guest '{other.Name}': `passthru detach {other.Name} {a}` first");
        }
        if (guest.Ports.Count == 0)
            throw new UserError($"guest '{name}' has no hot-plug ports (machine {guest.Machine}{(guest.Machine.StartsWith("q35", StringComparison.Ordinal) ? ", started with --hotplug-slots 0" : "")}): "
                + "start it on q35 with --hotplug-slots N (the default is 2)");
        var free = guest.FreePorts.ToList();
        if (free.Count < addresses.Count)
            throw new UserError($"guest '{name}' has no free hot-plug port for {(addresses.Count == 1 ? addresses[0].ToString() : $"{addresses.Count} devices")}: "
                + $"its {guest.Ports.Count} port{(guest.Ports.Count == 1 ? " holds" : "s hold")} {string.Join(", ", guest.Devices.Select(d => $"{d.Address} ({d.Port})"))}{(free.Count > 0 ? $" and {free.Count} is free" : "")}; "
                + "detach one first, or start the guest with more --hotplug-slots");
        var binding = BindPlanner.PlanBind(host, inventory, new BindRequest(selectors, wholeGroup, AllowUnsafeInterrupts: allowUnsafe, Verb: "attach"));
        var steps = addresses.Select((a, i) =>
        {
            var id = QemuCommand.DeviceId(a);
            return new AttachStep(a, free[i], id, new JsonObject
            {
                ["driver"] = "vfio-pci", ["host"] = a.ToString(), ["id"] = id, ["bus"] = free[i], ["addr"] = "0.0",
            });
        }).ToList();
        return new AttachPlan(guest, binding, steps);
    }

    /// <summary>The unprivileged account the guest's QEMU runs as; null when it runs as root (--as-root).</summary>
    public static Account? QemuUserOf(GuestRecord guest) =>
        guest is { User: { } user, Uid: int uid, Gid: int gid } ? new Account(user, uid, gid, []) : null;

    public static IEnumerable<string> Describe(AttachPlan plan)
    {
        foreach (var line in plan.Binding.Describe()) yield return line;
        if (QemuUserOf(plan.Guest) is { } user)
            yield return $"then: hand the vfio node of each device's IOMMU group to {user.Name} ({user.Ids}), the user the guest's QEMU runs as";
        yield return $"then, over QMP ({plan.Guest.Qmp}):";
        foreach (var s in plan.Steps)
        {
            yield return "  " + new JsonObject { ["execute"] = "device_add", ["arguments"] = s.DeviceAdd.DeepClone() }.ToJsonString();
            yield return $"  query-pci: check the guest's bus behind {s.Port} has {s.Id}";
        }
    }

    /// <summary>Carries an attach out; every device that fails is given back (already attached ones stay). Returns what was attached.</summary>
    public static IReadOnlyList<string> Attach(HostRoot host, string stateDir, AttachPlan plan, bool wholeGroup, bool allowUnsafe, TextWriter messages)
    {
        var name = plan.Guest.Name;
        var request = new BindRequest(plan.Steps.Select(s => (DeviceSelector)new DeviceSelector.ByAddress(s.Address.ToString(), s.Address)).ToList(), wholeGroup, AllowUnsafeInterrupts: allowUnsafe, Verb: "attach");
        using (var custody = Custody.Take(host, stateDir))
        {
            // Planned again under the lock, and recorded with the guest before QEMU is asked: if anything ends here
            // (this process, the guest), the guest's end or `passthru guests` gives the devices back.
            var guest = Running(host, stateDir, name);
            if (guest.FreePorts.Count() < plan.Steps.Count || plan.Steps.Any(s => !guest.FreePorts.Contains(s.Port)))
                throw new UserError($"guest '{name}' changed while attaching (another attach?): try again");
            var bind = custody.PlanBind(request);
            custody.Apply(bind);
            foreach (var f in bind.Functions) messages.WriteLine($"bound {f.Address} to vfio-pci (was {f.Driver ?? "no driver"})");
            foreach (var s in plan.Steps)
            {
                var group = bind.Functions.FirstOrDefault(f => f.Address == s.Address)?.Group;
                guest.Devices.Add(new GuestDevice
                {
                    Address = s.Address.ToString(), Id = s.Id, Port = s.Port, Attached = true,
                    // Its group's functions this attach moved (with --group, the mates too): they go back with it.
                    Bound = bind.Functions.Where(f => f.Address == s.Address || (group is not null && f.Group == group))
                        .Select(f => f.Address.ToString()).ToList(),
                });
            }
            custody.Save(guest);
            // An unprivileged QEMU opens the new group's node itself at device_add: it is handed to the guest's user
            // first (journaled; every give-back puts it back once the guest no longer holds the group).
            if (QemuUserOf(guest) is { } user)
            {
                var handOver = custody.PlanHandOver(plan.Steps.Select(s => s.Address), user);
                custody.Apply(handOver);
                foreach (var h in handOver.Steps.OfType<HandOverNode>()) messages.WriteLine($"handed /{h.Path} to {h.User} ({h.Uid}:{h.Gid}), the guest's QEMU user");
            }
        }
        var attached = new List<string>();
        string? failure = null;
        try
        {
            using var qmp = QmpClient.Connect(plan.Guest.Qmp, ConnectWait);
            foreach (var s in plan.Steps)
            {
                try { qmp.Execute("device_add", (JsonObject)s.DeviceAdd.DeepClone(), CommandWait); }
                catch (QmpError e)
                {
                    var why = QemuFailure.Explain(e.Description, [], host, 0);
                    failure = $"QEMU refused to add {s.Address} to guest '{name}': \"{e.Description}\"{(why is null ? "" : $" ({why})")}";
                    break;
                }
                // query-pci walks the buses by the numbers the guest's firmware gave its bridges: a guest still in its
                // firmware has not numbered the new port's bus yet, so look again for a while before calling it missing.
                var seen = FindInGuest(qmp.Execute("query-pci", null, CommandWait), s.Id);
                for (int i = 0; seen is null && i < 20; i++)
                {
                    Thread.Sleep(500);
                    seen = FindInGuest(qmp.Execute("query-pci", null, CommandWait), s.Id);
                }
                if (seen is null)
                {
                    failure = $"QEMU accepted {s.Address} but the guest's PCI bus does not show it (query-pci): removed it again";
                    try { qmp.Execute("device_del", new JsonObject { ["id"] = s.Id }, CommandWait); } catch (QmpError) { }
                    break;
                }
                attached.Add(s.Id);
                messages.WriteLine($"attached {s.Address} to guest '{name}' behind {s.Port} (guest bus {seen.Value.Bus:x2}, slot {seen.Value.Slot:x2}, as {s.Id})");
            }
        }
        catch (UserError e) { failure = e.Message; }
        if (failure is null) return attached;
        // Whatever was not attached goes back to its host driver, unless the guest's QEMU holds its group after all (a
        // device_add that did not answer in time may still complete): vfio-pci would not let go of it, and an unbind
        // would wait for QEMU. Such a device stays recorded with the guest and goes back when the guest ends.
        var notAttached = plan.Steps.Where(s => !attached.Contains(s.Id)).ToList();
        var held = notAttached.Where(s => QemuHoldsGroupOf(host, plan.Guest, s.Address)).Select(s => s.Address.ToString()).ToHashSet();
        var back = ForgetAndGiveBack(host, stateDir, name, d => notAttached.Any(s => s.Id == d.Id) && !held.Contains(d.Address), messages).Given;
        throw new UserError(failure + (back.Count > 0 ? $"; gave {string.Join(", ", back.Select(f => f.Address))} back" : "")
            + (held.Count > 0 ? $"; QEMU holds {string.Join(", ", held)} nonetheless: it stays with guest '{name}' (passthru detach {name} ..., or it is given back when the guest ends)" : ""));
    }

    /// <summary>Whether the guest's QEMU has the function's vfio group open (/proc/PID/fd).</summary>
    private static bool QemuHoldsGroupOf(HostRoot host, GuestRecord guest, PciAddress address)
    {
        var group = host.ReadLinkName($"sys/bus/pci/devices/{address}/iommu_group");
        if (group is null || guest.QemuPid <= 0) return false;
        foreach (var fd in host.List($"proc/{guest.QemuPid}/fd"))
            if (host.ReadLink($"proc/{guest.QemuPid}/fd/{fd}") == $"/dev/vfio/{group}") return true;
        return false;
    }

    /// <summary>Where query-pci shows a device with this QEMU id (bridges' buses searched too).</summary>
    public static (int Bus, int Slot)? FindInGuest(JsonNode? queryPci, string id)
    {
        if (queryPci is not JsonArray buses) return null;
        foreach (var bus in buses.OfType<JsonObject>())
            if (Find(bus["devices"] as JsonArray) is { } hit) return hit;
        return null;

        (int, int)? Find(JsonArray? devices)
        {
            foreach (var d in devices?.OfType<JsonObject>() ?? [])
            {
                if (QmpMessages.Text(d["qdev_id"]) == id) return (QmpMessages.Int(d["bus"]) ?? 0, QmpMessages.Int(d["slot"]) ?? 0);
                if (Find((d["pci_bridge"] as JsonObject)?["devices"] as JsonArray) is { } below) return below;
            }
            return null;
        }
    }

    public static DetachPlan PlanDetach(HostRoot host, string stateDir, string name, IReadOnlyList<DeviceSelector> selectors, TimeSpan timeout)
    {
        var guest = Running(host, stateDir, name);
        var inventory = PciInventory.Load(host);
        var devices = new List<GuestDevice>();
        foreach (var s in selectors)
        {
            // A device the guest holds is named by its address even when the host's inventory would match others by ID.
            var held = s is DeviceSelector.ByAddress a ? guest.Devices.FirstOrDefault(d => d.Address == a.Address.ToString())
                : s.Resolve(inventory).Select(f => guest.Devices.FirstOrDefault(d => d.Address == f.Address.ToString())).OfType<GuestDevice>().FirstOrDefault();
            if (held is null)
                throw new UserError($"guest '{name}' does not hold {s.Text}{(guest.Devices.Count == 0 ? " (it holds no devices)" : $" (it holds {string.Join(", ", guest.Devices.Select(d => d.Address))})")}", ExitCodes.Usage);
            if (!devices.Contains(held)) devices.Add(held);
        }
        using var custody = Custody.Look(host, stateDir);
        return new DetachPlan(guest, devices, timeout, custody.PlanRelease(name, d => devices.Any(x => x.Id == d.Id)));
    }

    public static IEnumerable<string> Describe(DetachPlan plan)
    {
        yield return $"over QMP ({plan.Guest.Qmp}):";
        foreach (var d in plan.Devices)
        {
            yield return "  " + new JsonObject { ["execute"] = "device_del", ["arguments"] = new JsonObject { ["id"] = d.Id } }.ToJsonString();
            yield return $"  wait up to {plan.Timeout.TotalSeconds:0} s for the event DEVICE_DELETED of {d.Id} (the guest lets go of it)";
        }
        yield return "then, once the guest let go of them:";
        foreach (var line in plan.GiveBack.Describe()) yield return line;
        if (plan.GiveBack.IsEmpty) yield return "nothing to give back (Passthru did not bind them, or the guest holds them still)";
    }

    /// <summary>
    /// Detaches each device in turn; one the guest does not let go of in time stays with it (and fails the command), as
    /// does one that did not come back to its host driver cleanly (each problem said in <paramref name="messages"/>).
    /// </summary>
    public static void Detach(HostRoot host, string stateDir, DetachPlan plan, TextWriter messages)
    {
        var name = plan.Guest.Name;
        var problems = new List<string>();
        using (var qmp = QmpClient.Connect(plan.Guest.Qmp, ConnectWait))
        {
            foreach (var d in plan.Devices)
            {
                try { qmp.Execute("device_del", new JsonObject { ["id"] = d.Id }, CommandWait); }
                catch (QmpError e) when (e.Class == "DeviceNotFound") { } // already gone (an earlier request the guest completed late)
                catch (QmpError e)
                {
                    throw new UserError($"QEMU refused to remove {d.Address} from guest '{name}': \"{e.Description}\"; it stays with the guest");
                }
                bool gone = qmp.WaitForEvent("DEVICE_DELETED", data => QmpMessages.Text(data?["device"]) == d.Id, plan.Timeout) is not null
                    || FindInGuest(qmp.Execute("query-pci", null, CommandWait), d.Id) is null;
                if (!gone)
                    throw new UserError($"guest '{name}' did not let go of {d.Address} within {plan.Timeout.TotalSeconds:0} s: its OS must accept the unplug request "
                        + "(a guest without PCIe hot-plug support, or one that is hung, ignores it); the device stays with the guest and is given back when it ends (--timeout waits longer)");
                messages.WriteLine($"detached {d.Address} from guest '{name}'");
                problems.AddRange(ForgetAndGiveBack(host, stateDir, name, x => x.Id == d.Id, messages).Problems);
            }
        }
        if (problems.Count > 0)
            throw new UserError($"{problems.Count} function{(problems.Count == 1 ? "" : "s")} did not come back cleanly after the guest (said above)");
    }

    /// <summary>Drops devices from the guest's claims and gives back the functions bound for them, the one way custody gives back.</summary>
    private static GiveBackResult ForgetAndGiveBack(HostRoot host, string stateDir, string name, Func<GuestDevice, bool> which, TextWriter messages)
    {
        using var custody = Custody.Take(host, stateDir);
        var result = custody.GiveBack(custody.PlanGiveBack(custody.Release(name, which)));
        foreach (var line in result.Lines) messages.WriteLine(line);
        foreach (var problem in result.Problems) messages.WriteLine($"passthru: after the guest: {problem}");
        return result;
    }
}
