using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Binding;

/// <summary>What a give-back did, in lines for the user, and what the check afterwards found wrong (one line each, with its fix).</summary>
public sealed record GiveBackResult(IReadOnlyList<string> Lines, IReadOnlyList<string> Problems, IReadOnlyList<FunctionState> Given);

/// <summary>
/// The one owner of what Passthru changed on a host and who holds it now: the journal (functions moved, module
/// parameters, VF counts, each with what puts it back), the running guests' claims on functions (their records), the
/// reservation of guest names, and the lock that keeps two Passthru processes from interleaving. Every command goes
/// through here: bind and vfs apply a plan; run and attach claim functions for a guest; run's end, detach, unbind,
/// restore and `guests` cleaning up after a killed guest all give back the one way, <see cref="GiveBack"/>: a plan of
/// the journaled inverses, applied by the binding engine, then the same health check of every function given back.
/// Modelled on libvirt's virhostdev (one manager for domain start and hot-plug), with its plans as data.
/// </summary>
public sealed class Custody : IDisposable
{
    /// <summary>How long a command waits for another Passthru to finish its change of the host.</summary>
    public static readonly TimeSpan LockWait = TimeSpan.FromSeconds(30);

    private readonly StateLock? _lock;
    private Journal? _journal;

    public HostRoot Host { get; }
    public string StateDir { get; }

    /// <summary>What Passthru changed and has not given back, as of when this custody was opened (kept current by its own changes).</summary>
    public Journal Journal => _journal ??= Journal.Load(StateDir, Host);

    private Custody(HostRoot host, string stateDir, StateLock? held)
    {
        Host = host; StateDir = stateDir; _lock = held;
    }

    /// <summary>Opens the host's state for a change: takes the lock, waiting up to <see cref="LockWait"/> for another Passthru.</summary>
    public static Custody Take(HostRoot host, string stateDir)
    {
        var custody = new Custody(host, stateDir, StateLock.Acquire(stateDir, LockWait));
        custody.RemoveStaleTemporaries();
        return custody;
    }

    /// <summary>
    /// Temporary files a process killed mid-save left beside the journal or a guest record (the file itself is whole:
    /// the old or the new one). Every writer there holds the lock, so under it any such file is stale.
    /// </summary>
    private void RemoveStaleTemporaries()
    {
        // One directory read each, names matched by hand (".*.passthru-*.tmp", NativeFiles.WriteTemporary's): the
        // runtime's pattern enumeration cost every bind and restore ~1 ms under emulation. unlink(2) refuses a
        // directory of that name, which nothing of ours made.
        foreach (var dir in new[] { StateDir, GuestRecords.Directory(StateDir) })
            foreach (var name in NativeFiles.ListDirectory(dir) ?? [])
                if (name.Length > 1 && name[0] == '.' && name.EndsWith(".tmp", StringComparison.Ordinal) && name.IndexOf(".passthru-", 1, StringComparison.Ordinal) >= 0)
                    NativeFiles.Unlink(Path.Combine(dir, name));
    }

    /// <summary>Opens the host's state to look only (dry runs, listings): no lock, and nothing may be changed through it.</summary>
    public static Custody Look(HostRoot host, string stateDir) => new(host, stateDir, null);

    public static string DefaultDirectory(HostRoot host) => Journal.DefaultDirectory(host);

    public void Dispose() => _lock?.Dispose();

    private void RequireLock()
    {
        if (_lock is null) throw new InvalidOperationException("a change of the host's state needs Custody.Take (the lock)");
    }

    // ---- Moving functions to vfio-pci ------------------------------------------------------------------------------

    /// <summary>A bind as the host is now (planned under the lock, when taken: another Passthru may just have moved these devices).</summary>
    public BindPlan PlanBind(BindRequest request, PciInventory? inventory = null) =>
        BindPlanner.PlanBind(Host, inventory ?? PciInventory.Load(Host), request);

    /// <summary>
    /// Applies a plan: journaled before its first write, rolled back whole if a step fails or <paramref name="interrupted"/>
    /// (asked before each step) says a signal came.
    /// </summary>
    public void Apply(BindPlan plan, TextWriter? progress = null, Func<bool>? interrupted = null)
    {
        RequireLock();
        new BindApplier(Host, Journal, progress ?? TextWriter.Null).Apply(plan, interrupted);
    }

    /// <summary>
    /// Hands the vfio nodes of the functions' groups to the account a guest's QEMU runs as (before QEMU starts, or
    /// before a hot-plug's device_add): a plan of the binding engine, journaled before each change, its inverse put back
    /// by every give-back once no running guest holds the group. Groups not on vfio-pci yet are named by the check.
    /// </summary>
    public BindPlan PlanHandOver(IEnumerable<PciAddress> functions, Account user)
    {
        var steps = new List<BindStep>();
        foreach (var byGroup in functions.Distinct().GroupBy(a => ReadGroup(a) ?? throw new UserError($"{a} is in no IOMMU group")).OrderBy(g => g.Key))
        {
            var owner = Host.Owner(SysfsPaths.VfioGroup(byGroup.Key));
            if (owner is { } o && o.Uid == user.Uid && o.Gid == user.Gid && o.Mode == HandOverNode.Mode && Journal.FindNode(SysfsPaths.VfioGroup(byGroup.Key)) is null)
                continue; // the node is the user's already, not by Passthru's doing: nothing to hand over or put back
            steps.Add(new HandOverNode(byGroup.Key, user.Uid, user.Gid, user.Name, byGroup.Order().ToList()));
        }
        return new BindPlan(PlanKind.Bind, [], steps, []);
    }

    private int? ReadGroup(PciAddress a) => int.TryParse(Host.ReadLinkName(SysfsPaths.IommuGroup(a)), out var g) ? g : null;

    /// <summary>
    /// The nodes to put back in a give-back: every handed-over node whose group no running guest holds any more (the
    /// guest ended, was killed, or its devices of that group were detached). A node is never left with a user no
    /// guest runs as; it goes back before its group's functions leave vfio-pci (the node goes with them).
    /// </summary>
    private List<BindStep> NodePutBacks(Dictionary<PciAddress, string> held)
    {
        if (Journal.Nodes.Count == 0) return [];
        var heldGroups = held.Keys.Select(ReadGroup).OfType<int>().ToHashSet();
        return Journal.Nodes.Where(n => !heldGroups.Contains(n.Group))
            .Select(n => (BindStep)new PutBackNode(n.Path, n.Uid, n.Gid, n.Mode)).ToList();
    }

    private static BindPlan WithNodes(BindPlan plan, List<BindStep> nodes) =>
        nodes.Count == 0 ? plan : plan with { Steps = [.. nodes, .. plan.Steps] };

    // ---- Giving back ------------------------------------------------------------------------------------------------

    /// <summary>
    /// The give-back of those of <paramref name="functions"/> the journal holds (others went back already, or Passthru
    /// never bound them), with each module parameter put back once no function it was set for stays held:
    /// <paramref name="claimsEnding"/> names functions whose claim ends here even if they stay bound (a run's devices
    /// that an earlier bind put on vfio-pci: the unsafe interrupts allowed for the run end with it). A function another
    /// running guest holds stays with it, and so do the parameters it needs (vfio-pci would wait for its QEMU to let go).
    /// </summary>
    public BindPlan PlanGiveBack(IEnumerable<PciAddress> functions, IEnumerable<PciAddress>? claimsEnding = null) =>
        PlanGiveBack(functions, claimsEnding, HeldByGuests(cleanUp: false));

    private BindPlan PlanGiveBack(IEnumerable<PciAddress> functions, IEnumerable<PciAddress>? claimsEnding, Dictionary<PciAddress, string> held)
    {
        var holder = HolderOf(held);
        var journaled = functions.Distinct().Where(a => Journal.Find(a) is not null).ToList();
        var back = journaled.Where(a => holder(a) is null).ToList();
        var plan = BindPlanner.PlanReturn(PciInventory.LoadFor(Host, [], groupMates: false, back), Journal, back,
            released: claimsEnding?.Where(a => holder(a) is null));
        var notes = new List<string>(); // a loop, not Where().Select(): see PlanRestore
        foreach (var a in journaled)
            if (holder(a) is { } guest) notes.Add($"{a} stays on vfio-pci: the running guest '{guest}' holds it or its IOMMU group");
        plan = WithNodes(plan, NodePutBacks(held));
        return notes.Count == 0 ? plan : plan with { Notes = [.. notes, .. plan.Notes] };
    }

    /// <summary>
    /// What `unbind` (<paramref name="restore"/> false) or `restore` gives back: the journaled functions named (all of
    /// them for a restore without names; with <paramref name="wholeGroup"/> their journaled group mates), a restore's
    /// VF counts with their VFs, and the parameters nothing needs any more. Functions a running guest holds cannot
    /// go back under it (vfio-pci would wait for QEMU to let go): named ones are refused, the rest stay, with a note.
    /// Under the lock, records of guests that are gone are dropped (their functions are in the journal and go back).
    /// </summary>
    public BindPlan PlanRestore(IReadOnlyList<DeviceSelector> selectors, bool wholeGroup, bool restore)
    {
        var journal = Journal;
        var inventory = PciInventory.LoadFor(Host, selectors, groupMates: false,
            journal.Functions.Select(f => f.Address).Concat(journal.Sriov.Select(x => x.Pf)));
        var addresses = Select(selectors, journal, inventory, wholeGroup && !restore);
        var notes = new List<string>();
        var held = HeldByGuests(cleanUp: _lock is not null);
        var holder = HolderOf(held);
        // restore puts back the VF counts Passthru changed: all of them, or those of the PFs named (with their VFs).
        var sriov = !restore ? [] : journal.Sriov.Where(x => selectors.Count == 0 || addresses.Contains(x.Pf)).ToList();
        foreach (var x in sriov.ToList())
        {
            if (journal.Find(x.Pf) is null) addresses.Remove(x.Pf); // named for its count only; a PF Passthru bound goes back too
            foreach (var vf in x.Created) if (journal.Find(vf) is not null && !addresses.Contains(vf)) addresses.Add(vf);
            // A count change removes the VFs: not under a guest that holds one (or the PF).
            if (PciInventory.VirtualFunctionsOf(Host, x.Pf).Prepend(x.Pf).Where(f => holder(f) is not null).Take(1).ToList() is not [var busy]) continue;
            if (selectors.Count > 0)
                throw new UserError($"{busy} is in use by the running guest '{holder(busy)}': `passthru detach {holder(busy)} {busy}` or stop the guest first; {x.Pf}'s VF count would remove it");
            notes.Add($"{x.Pf} keeps its VF count: the running guest '{holder(busy)}' holds {busy} (restore puts the count back once the guest ends)");
            sriov.Remove(x);
        }
        foreach (var a in addresses.Where(a => holder(a) is not null).ToList())
        {
            if (selectors.Count > 0)
                throw new UserError($"{a} is in use by the running guest '{holder(a)}': `passthru detach {holder(a)} {a}` or stop the guest first");
            notes.Add($"{a} stays on vfio-pci: the running guest '{holder(a)}' holds it (it goes back when the guest ends)");
            addresses.Remove(a);
        }
        var plan = WithNodes(BindPlanner.PlanReturn(inventory, journal, addresses, sriov), NodePutBacks(held));
        // ROMs a killed `passthru rom` left readable: restore turns them off (all, or those of the devices named).
        // A loop, not Where().Select(): Select on LINQ's own iterators is a generic virtual method, resolved by the
        // static binary's type loader on first use (~1 ms of every restore under emulation).
        var roms = new List<BindStep>();
        if (restore)
            foreach (var r in journal.Roms)
                if (selectors.Count == 0 || selectors.Any(s => s is DeviceSelector.ByAddress a ? a.Address == r : s.Resolve(inventory).Any(d => d.Address == r)))
                    roms.Add(new DisableRom(r));
        if (roms.Count > 0) plan = plan with { Steps = [.. roms, .. plan.Steps] };
        return plan with { Notes = [.. notes, .. plan.Notes] };
    }

    /// <summary>
    /// The one way back: applies a give-back plan, says what went back, then checks every function given back (its
    /// config space answers, it is not in D3cold, its own driver holds it again).
    /// </summary>
    public GiveBackResult GiveBack(BindPlan plan, TextWriter? progress = null)
    {
        RequireLock();
        if (plan.Kind != PlanKind.Return) throw new ArgumentException("a give-back plan is a return plan", nameof(plan));
        // The functions the plan moves (each ends in a check of its driver); ones it only forgets are said in its notes.
        var moving = plan.Steps.OfType<VerifyDriver>().Select(v => v.Function).ToHashSet();
        var present = plan.Functions.Where(f => moving.Contains(f.Address) && Host.Exists(SysfsPaths.Device(f.Address))).ToList();
        var pfs = plan.Sriov.Where(x => Host.Exists(SysfsPaths.Device(x.Pf))).ToList();
        var lines = new List<string>(plan.Notes);
        // Without a step, a plan may still drop journal entries that need none (functions gone, a VF count already back).
        if (plan.IsEmpty && plan.Functions.Count == 0 && plan.Sriov.Count == 0) return new GiveBackResult(lines, [], []);
        new BindApplier(Host, Journal, progress ?? TextWriter.Null).Apply(plan);
        foreach (var f in present) lines.Add($"gave {f.Address} back to {f.Driver ?? "no driver"}");
        foreach (var x in pfs)
            lines.Add($"put {x.Pf} back to {x.OriginalCount} VF{(x.OriginalCount == 1 ? "" : "s")}"
                + (x.OriginalCount == 0 && x.Created.Count > 0 ? $" (removed {string.Join(", ", x.Created)})" : ""));
        foreach (var c in plan.Steps.OfType<TakeBackConsole>()) lines.Add(TookBack(c.Hold));
        foreach (var p in plan.Steps.OfType<PutBackParameter>()) lines.Add($"put {p.Value} back into /{p.Path}");
        foreach (var r in plan.Steps.OfType<PutBackResetMethod>()) lines.Add($"put {r.Function}'s reset methods back: {r.Value}");
        foreach (var r in plan.Steps.OfType<DisableRom>()) lines.Add($"turned the ROM of {r.Function} off again (0 > /{r.Path})");
        foreach (var n in plan.Steps.OfType<PutBackNode>())
            lines.Add($"gave /{n.Path} back to {Accounts.UserName(Host, n.Uid)}:{Accounts.GroupName(Host, n.Gid)}, mode {Convert.ToString(n.Mode, 8).PadLeft(4, '0')}");
        // VFs a count change removes (or makes anew) are not the functions that were given back: nothing to check.
        var renewed = plan.Sriov.SelectMany(x => x.Created).ToHashSet();
        var problems = DeviceHealth.Check(Host, present.Where(f => !renewed.Contains(f.Address)));
        return new GiveBackResult(lines, problems, present);
    }

    /// <summary>
    /// What taking back a console part did. Since Linux 6.2 (and in kernels that backport it, such as Debian 12's 6.1),
    /// vfio-pci itself removes a firmware framebuffer from a VGA device it takes, and fbcon's virtual terminal with
    /// it: then there is nothing left to bind, and the user is told where the console comes back.
    /// </summary>
    private string TookBack(ConsoleHold hold)
    {
        if (hold.Kind == ConsoleHold.VtConsole)
            return Host.Exists(hold.TakeBackPath) ? $"gave {hold} back to the host's console"
                : $"{hold.Name} is gone (fbcon let go of it with the last framebuffer): the console is on the GPU's own driver once it binds, or on serial";
        return Host.ReadLinkName($"sys/bus/platform/devices/{hold.Name}/driver") is { } driver
            ? $"gave {hold.Name} back to the host's console ({driver})"
            : $"{hold.Name} is gone: the kernel removed it when vfio-pci took the GPU (Linux 6.2 and later do, and kernels that backport it); the host's console comes back with the GPU's own driver or at the next boot";
    }

    // ---- Reading an option ROM -------------------------------------------------------------------------------------

    /// <summary>
    /// The function's option ROM as the kernel reads it through sysfs: made readable (`echo 1 > rom`, a step of the
    /// binding engine journaled before the write), read, and turned off again (`echo 0 > rom`) however the read went;
    /// a kill in between leaves the journal for restore to turn it off. Refused, before any write, for a function a
    /// running guest holds (its QEMU owns the device) and for one without a ROM.
    /// </summary>
    public byte[] ReadRom(PciAddress function, TextWriter? progress = null)
    {
        RequireLock();
        if (!Host.Exists(SysfsPaths.Device(function))) throw new UserError($"{function} is not on the PCI bus");
        if (HolderOf(HeldByGuests(cleanUp: false))(function) is { } guest)
            throw new UserError($"{function} is in use by the running guest '{guest}': its ROM cannot be read under it; stop the guest or `passthru detach {guest} {function}` first");
        var path = SysfsPaths.Rom(function);
        if (!Host.Exists(path))
            throw new UserError($"{function} has no option ROM: the kernel shows no /{path} (the device has no ROM BAR); if its guest needs one, give a ROM file: run --device {function},romfile=FILE");
        var applier = new BindApplier(Host, Journal, progress ?? TextWriter.Null);
        applier.Apply(new BindPlan(PlanKind.Bind, [], [new EnableRom(function)], []));
        byte[] bytes;
        try
        {
            bytes = Host.ReadBinary(path, OptionRom.MaxBytes + 1);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The kernel says EIO when the ROM does not start with 55 aa as it maps it: not readable from the host.
            bytes = [];
            progress?.WriteLine($"reading /{path}: {Shown.Error(e)}");
        }
        finally
        {
            applier.Apply(new BindPlan(PlanKind.Return, [], [new DisableRom(function)], []));
        }
        if (bytes.Length == 0)
            throw new UserError($"{function}'s ROM reads as nothing: the kernel could not read it from the device (some GPUs keep it only in the firmware's shadow copy, or behind a driver); "
                + $"use a ROM file instead (dumped where it is readable, or the vendor's): run --device {function},romfile=FILE");
        return bytes;
    }

    // ---- Guests' claims ---------------------------------------------------------------------------------------------

    public IReadOnlyList<GuestRecord> Guests() => GuestRecords.All(StateDir);

    public GuestRecord? Guest(string name) => GuestRecords.Load(StateDir, name);

    public void Save(GuestRecord guest)
    {
        RequireLock();
        GuestRecords.Save(StateDir, guest);
    }

    /// <summary>
    /// Registers a guest about to start under its name: its own reservation is replaced, a record of a guest that is
    /// gone is cleaned up first (its functions given back, said in <paramref name="cleaned"/>); a running guest of
    /// that name refuses.
    /// </summary>
    public void Register(GuestRecord record, List<string> cleaned)
    {
        RequireLock();
        var existing = GuestRecords.Load(StateDir, record.Name);
        if (existing is not null && GuestRecords.IsOwnReservation(existing))
        {
            GuestRecords.Save(StateDir, record); // the name run chose and took for this guest
            return;
        }
        if (existing is not null)
        {
            if (!GuestRecords.IsGone(Host, existing))
                throw new UserError($"a guest named '{existing.Name}' is already running (QEMU pid {existing.QemuPid}): give another --name", ExitCodes.Usage);
            var result = GiveBack(PlanGiveBack(Forget(existing.Name)));
            cleaned.AddRange(result.Lines.Concat(result.Problems).Select(l => $"(guest '{existing.Name}' had ended) {l}"));
        }
        if (!GuestRecords.TryReserve(StateDir, record))
            throw new UserError($"a guest named '{record.Name}' is already running: give another --name", ExitCodes.Usage);
    }

    /// <summary>
    /// Ends a guest's claims: its record goes; returns the functions Passthru bound for it, by its run at the start
    /// and by attach since. A start device an earlier `bind` put on vfio-pci is not among them: it stays that bind's.
    /// </summary>
    public IReadOnlyList<PciAddress> Forget(string name)
    {
        RequireLock();
        var g = GuestRecords.Load(StateDir, name);
        GuestRecords.Remove(StateDir, name);
        return g is null ? [] : Functions(g.Bound.Concat(g.Devices.Where(d => d.Attached).SelectMany(d => d.Bound)));
    }

    /// <summary>
    /// Drops some of a running guest's devices from its claims (detached, or never attached); returns the functions
    /// bound for them that no other device of the guest still holds.
    /// </summary>
    public IReadOnlyList<PciAddress> Release(string name, Func<GuestDevice, bool> which)
    {
        RequireLock();
        var guest = GuestRecords.Load(StateDir, name);
        if (guest is null) return []; // the guest ended meanwhile, and its end gave everything back
        var functions = Leave(guest, which);
        GuestRecords.Save(StateDir, guest);
        return functions;
    }

    /// <summary>
    /// The give-back a <see cref="Release"/> of these devices would lead to, planned without changing anything (for
    /// detach --dry-run): the guest's claims as they would be after it, the rest of the host as it is.
    /// </summary>
    public BindPlan PlanRelease(string name, Func<GuestDevice, bool> which)
    {
        var guest = GuestRecords.Load(StateDir, name);
        if (guest is null) return PlanGiveBack([]);
        var functions = Leave(guest, which);
        return PlanGiveBack(functions, null, HeldByGuests(cleanUp: false, instead: guest));
    }

    /// <summary>Drops the devices from the record (in memory); the functions bound for them that no other device of the guest still holds.</summary>
    private static IReadOnlyList<PciAddress> Leave(GuestRecord guest, Func<GuestDevice, bool> which)
    {
        var leaving = guest.Devices.Where(which).ToList();
        guest.Devices.RemoveAll(leaving.Contains);
        var functions = Functions(leaving.SelectMany(d => d.Returns).Where(f => guest.Devices.All(d => d.Address != f)));
        // A start device detached is no longer the guest's either: its end must not give it back a second time, and
        // while it runs it does not hold it.
        guest.Bound.RemoveAll(b => functions.Any(f => f.ToString() == b));
        return functions;
    }

    /// <summary>Guests whose QEMU and `passthru run` are both gone (kill -9): their records go and their functions come back.</summary>
    public IReadOnlyList<(string Name, GiveBackResult Result)> CleanUpGone()
    {
        RequireLock();
        var done = new List<(string, GiveBackResult)>();
        foreach (var g in Guests().Where(g => GuestRecords.IsGone(Host, g)))
            done.Add((g.Name, GiveBack(PlanGiveBack(Forget(g.Name)))));
        return done;
    }

    /// <summary>The functions of guests whose QEMU runs, by guest name; with <paramref name="cleanUp"/>, records of guests that are gone are dropped.</summary>
    /// <param name="instead">A guest's record as it would be after a change (detach --dry-run), read in place of the stored one.</param>
    public Dictionary<PciAddress, string> HeldByGuests(bool cleanUp, GuestRecord? instead = null)
    {
        var held = new Dictionary<PciAddress, string>();
        foreach (var stored in Guests())
        {
            var g = instead is not null && stored.Name == instead.Name ? instead : stored;
            if (!GuestRecords.IsQemuAlive(Host, g))
            {
                // restore gives their functions back from the journal.
                if (cleanUp && GuestRecords.IsGone(Host, g)) GuestRecords.Remove(StateDir, g.Name);
                continue;
            }
            foreach (var f in Functions(g.Devices.Select(d => d.Address).Concat(g.Bound).Concat(g.Devices.SelectMany(d => d.Bound))))
                held.TryAdd(f, g.Name);
        }
        return held;
    }

    /// <summary>
    /// Which running guest holds a function: it, or another function of its IOMMU group (while QEMU has the group
    /// open, the kernel lets no host driver take any of its functions).
    /// </summary>
    private Func<PciAddress, string?> HolderOf(Dictionary<PciAddress, string> held)
    {
        // Each function's group link is read once, however often a plan asks who holds it.
        var known = new Dictionary<PciAddress, int?>();
        int? Group(PciAddress a)
        {
            if (!known.TryGetValue(a, out var g))
                known[a] = g = ReadGroup(a);
            return g;
        }
        var groups = new Dictionary<int, string>();
        foreach (var (a, guest) in held) if (Group(a) is int g) groups.TryAdd(g, guest);
        return a => held.GetValueOrDefault(a) ?? (Group(a) is int g ? groups.GetValueOrDefault(g) : null);
    }

    private static List<PciAddress> Functions(IEnumerable<string> addresses) => addresses.Select(PciAddress.Parse).Distinct().ToList();

    /// <summary>The journaled functions named (all of them when none are named).</summary>
    private static List<PciAddress> Select(IReadOnlyList<DeviceSelector> selectors, Journal journal, PciInventory inventory, bool wholeGroup)
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
