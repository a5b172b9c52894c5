using System.Diagnostics;
using CsCheck;
using Passthru.Binding;
using Passthru.Host;
using Passthru.Hotplug;
using Passthru.Launch;
using Passthru.Pci;
using Xunit.Abstractions;

namespace Passthru.Tests.Binding;

/// <summary>
/// Custody as a property (#21): random sequences of what the commands do to a host (bind, vfs, run's claim and end,
/// attach, detach, a guest killed, unbind, restore), some of them killed at a random sysfs write (kill -9: nothing
/// after it runs, no rollback, the lock dropped by the kernel), end with everything given back: after the final restore
/// the host is as it was before (each function's driver and driver_override, allow_unsafe_interrupts, the PF's VF count
/// and autoprobe, the vfio group nodes), and no journal or guest record is left. The kernel is simulated on a small
/// scratch tree (<see cref="Kernel"/>), reacting synchronously to each write through <see cref="HostRoot.AfterWrite"/>.
/// </summary>
public sealed class CustodyPropertyTests(ITestOutputHelper output)
{
    // ---- The host: two NICs alone in their groups, two functions sharing one, an SR-IOV PF with up to 3 VFs ----------

    private const string Pf = "0000:04:00.0";
    private static readonly string[] Vfs = ["0000:04:10.0", "0000:04:10.1", "0000:04:10.2"]; // offset 0x80, stride 1
    /// <summary>What the ops pick devices from: the fixed functions, then the VFs (which may not exist).</summary>
    private static readonly string[] Pool = ["0000:01:00.0", "0000:02:00.0", "0000:03:00.0", "0000:03:00.1", Pf, .. Vfs];

    // ---- Operations ----------------------------------------------------------------------------------------------------

    public abstract record Op;
    public sealed record Bind(int[] Devices, bool Group, bool Unsafe) : Op;
    public sealed record SetVfs(int Count, bool BindThem) : Op;
    public sealed record RunClaim(int Guest, int[] Devices, bool Group, bool Unsafe) : Op;
    public sealed record Attach(int Guest, int Device, bool Group, bool Unsafe, bool QemuRefuses) : Op;
    public sealed record Detach(int Guest, int Which) : Op;
    public sealed record RunEnd(int Guest) : Op;
    public sealed record GuestKilled(int Guest, bool CleanUp) : Op;
    public sealed record Unbind(int[] Devices, bool Group) : Op;
    /// <summary>No devices: restore everything.</summary>
    public sealed record Restore(int[] Devices) : Op;

    /// <summary>An operation, and the sysfs write of it after which its process is killed (0: it runs to its end).</summary>
    public sealed record Step(Op Op, int KillAt)
    {
        public override string ToString() => Describe(Op) + (KillAt > 0 ? $", killed after write {KillAt}" : "");

        private static string Describe(Op op) => op switch
        {
            Bind b => $"bind {Names(b.Devices)}{Flag(b.Group, "--group")}{Flag(b.Unsafe, "--allow-unsafe-interrupts")}",
            SetVfs v => $"vfs {Pf} --count {v.Count}{Flag(v.BindThem, "--bind")}",
            RunClaim r => $"run --name g{r.Guest} {Names(r.Devices)}{Flag(r.Group, "--group")}{Flag(r.Unsafe, "--allow-unsafe-interrupts")}",
            Attach a => $"attach g{a.Guest} {Pool[a.Device]}{Flag(a.Group, "--group")}{Flag(a.Unsafe, "--allow-unsafe-interrupts")}{Flag(a.QemuRefuses, "(QEMU refuses)")}",
            Detach d => $"detach g{d.Guest} (its device #{d.Which})",
            RunEnd e => $"g{e.Guest} shuts down",
            GuestKilled k => $"g{k.Guest} killed{Flag(k.CleanUp, "; passthru guests")}",
            Unbind u => $"unbind {Names(u.Devices)}{Flag(u.Group, "--group")}",
            Restore r => $"restore {Names(r.Devices)}",
            _ => op.ToString(),
        };

        private static string Names(int[] devices) => string.Join(" ", devices.Select(i => Pool[i][5..]));
        private static string Flag(bool on, string text) => on ? " " + text : "";
    }

    private static readonly Gen<int[]> Devices = Gen.Int[0, Pool.Length - 1].ArrayUnique[1, 3];
    private static readonly Gen<int> GuestSlot = Gen.Int[0, 1];
    /// <summary>--allow-unsafe-interrupts, mostly given: without it this host refuses every bind.</summary>
    private static readonly Gen<bool> Unsafe = Gen.Frequency((3, Gen.Const(true)), (1, Gen.Const(false)));

    private static readonly Gen<Op> AnyOp = Gen.Frequency(
        (4, Gen.Select(Devices, Gen.Bool, Unsafe, (d, g, u) => (Op)new Bind(d, g, u))),
        (3, Gen.Select(Gen.Int[0, 3], Gen.Bool, (n, b) => (Op)new SetVfs(n, b))),
        (4, Gen.Select(GuestSlot, Devices, Gen.Bool, Unsafe, (s, d, g, u) => (Op)new RunClaim(s, d, g, u))),
        (3, Gen.Select(GuestSlot, Gen.Int[0, Pool.Length - 1], Gen.Bool, Unsafe, Gen.Int[0, 3], (s, d, g, u, r) => (Op)new Attach(s, d, g, u, r == 0))),
        (2, Gen.Select(GuestSlot, Gen.Int[0, 3], (s, w) => (Op)new Detach(s, w))),
        (2, GuestSlot.Select(s => (Op)new RunEnd(s))),
        (2, Gen.Select(GuestSlot, Gen.Bool, (s, c) => (Op)new GuestKilled(s, c))),
        (2, Gen.Select(Devices, Gen.Bool, (d, g) => (Op)new Unbind(d, g))),
        (1, Gen.Select(Gen.Int[0, Pool.Length - 1].ArrayUnique[0, 2], d => (Op)new Restore(d))));

    private static readonly Gen<Step> AnyStep = Gen.Select(AnyOp, Gen.Frequency((3, Gen.Const(0)), (2, Gen.Int[1, 8])), (op, k) => new Step(op, k));

    public static readonly Gen<Step[]> Sequences = AnyStep.Array[1, 12];

    [Fact]
    public void After_any_sequence_with_kills_a_restore_puts_the_host_back_as_it_was()
    {
        const int count = 1000; // about 17 s on 2 busy cores; CsCheck_Seed=... reproduces a failure it prints
        var clock = Stopwatch.StartNew();
        Sequences.Sample(Run, iter: count, threads: 1, print: steps => string.Join("\n  ", steps.Select(s => s.ToString())));
        output.WriteLine($"{count} sequences in {clock.Elapsed.TotalSeconds:0.0} s: {Outcomes["done"]} steps done, {Outcomes["refused"]} refused, {Outcomes["killed"]} killed");
        foreach (var (what, n) in Outcomes.Where(o => o.Key.StartsWith("  ")).OrderByDescending(o => o.Value)) output.WriteLine($"{n,6} {what}");
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> Outcomes = new() { ["done"] = 0, ["refused"] = 0, ["killed"] = 0 };
    private static void Count(string what) => Outcomes.AddOrUpdate(what, 1, (_, n) => n + 1);

    // ---- What the property found, as examples ----------------------------------------------------------------------------

    private static Step S(Op op, int killAt = 0) => new(op, killAt);
    private const int Nic1 = 0, Nic2 = 1, Shared0 = 2, Shared1 = 3, PfIndex = 4, Vf0 = 5;

    [Fact]
    public void A_PF_bound_after_its_VF_count_changed_goes_back_on_restore()
    {
        // restore dropped the PF from its functions because it had a VF count to put back: it stayed on vfio-pci, and
        // the count could not be written without its driver.
        Run([S(new SetVfs(0, false)), S(new Bind([PfIndex], false, true))]);
    }

    [Fact]
    public void A_VF_count_already_back_after_a_kill_leaves_no_journal()
    {
        // Killed right after the count was written back to its original: restore's plan had no step, so nothing dropped
        // the journal's entry, and every restore after said there was something to give back.
        Run([S(new SetVfs(0, false)), S(new SetVfs(1, false), killAt: 1)]);
    }

    [Fact]
    public void VFs_made_anew_and_bound_at_the_original_count_come_back_to_their_host_driver()
    {
        // vfs --bind back at the PF's first count dropped the count from the journal, though the VF it made was bound:
        // restore gave it back to "no driver" (as it was made, autoprobe held off), not to igbvf as it was before.
        Run([S(new Bind([Nic1], false, true)), S(new SetVfs(0, false)), S(new SetVfs(1, true))]);
    }

    [Fact]
    public void A_VF_made_anew_by_a_killed_count_change_goes_back_to_its_host_driver()
    {
        // Bound (killed before its first write: only the journal), then the count change that removes it killed right
        // after its write (the journal kept the VF), then made anew by vfs --bind, killed with autoprobe held off: restore
        // probed it for igbvf, as journaled, before putting autoprobe back, so the probe did nothing and the check failed.
        Run([S(new Bind([Vf0], false, true), killAt: 2), S(new SetVfs(0, true), killAt: 1), S(new SetVfs(3, true), killAt: 2)]);
    }

    [Fact]
    public void A_VF_made_anew_at_the_address_of_one_the_count_change_removed_stays_journaled()
    {
        // The VF bound first is removed by the count change, and the journal forgot it after the write; but the change
        // makes and binds a VF at the same address: it was on vfio-pci unknown to the journal (unbind refused it).
        Run([S(new Bind([Nic1], false, true)), S(new SetVfs(1, true)), S(new SetVfs(2, true)), S(new Unbind([Vf0], false))]);
    }

    [Fact]
    public void VFs_a_killed_count_change_removed_leave_no_stale_entry_for_VFs_made_later()
    {
        // Killed right after the write that removed the bound VFs, before the journal forgot them; a later count change
        // made a VF at the same address for its host driver, and restore gave it the removed one's "no driver".
        Run([S(new Bind([Nic1], false, true)), S(new SetVfs(2, true)), S(new SetVfs(0, false), killAt: 1), S(new SetVfs(1, false))]);
    }

    [Fact]
    public void A_device_bound_before_a_run_stays_bound_after_it()
    {
        // The run's end gave back every start device the journal held, the one `passthru bind` had put there too (the
        // run before custody gave back only what it bound itself). Not a restore property: restore gives it back anyway.
        var kernel = new Kernel();
        try
        {
            var world = new World(kernel);
            world.Do(new Bind([Nic1], false, true));
            world.Do(new RunClaim(0, [Nic1], false, true));
            world.Do(new RunEnd(0));
            Assert.Equal(BindPlanner.Vfio, kernel.DriverOf(Pool[Nic1]));
            world.RestoreAll();
            Assert.Equal("e1000e", kernel.DriverOf(Pool[Nic1]));
        }
        finally { kernel.Dispose(); }
    }

    [Fact]
    public void A_run_that_fails_gives_back_nothing_another_guest_holds()
    {
        // g1's run fails (g0 has the group open); its end gave back its start devices, g0's device among them: vfio-pci
        // would have waited for g0's QEMU.
        Run([S(new RunClaim(0, [Nic1], false, true)), S(new RunClaim(1, [Nic1], false, true))]);
    }

    [Fact]
    public void Restore_leaves_the_VF_count_of_a_PF_whose_VF_a_guest_holds()
    {
        Run([S(new SetVfs(2, false)), S(new RunClaim(0, [Vf0], false, true)), S(new Restore([]))]);
    }

    [Fact]
    public void Detaching_one_function_of_a_group_the_guest_still_has_leaves_it_on_vfio()
    {
        // While QEMU has the group open no host driver may take its functions: the give-back failed half-way (e1000's
        // probe refused, the function left with no driver) and detach failed after waiting out the check.
        var kernel = new Kernel();
        try
        {
            var world = new World(kernel);
            world.Do(new RunClaim(0, [Shared0, Shared1], false, true));
            world.Do(new Detach(0, 0));
            Assert.Equal(BindPlanner.Vfio, kernel.DriverOf(Pool[Shared0]));
            world.RestoreAll();
            Assert.Equal("e1000", kernel.DriverOf(Pool[Shared0]));
            Assert.Null(kernel.DriverOf(Pool[Shared1]));
        }
        finally { kernel.Dispose(); }
    }

    // ---- One sequence --------------------------------------------------------------------------------------------------

    private static void Run(Step[] steps)
    {
        var kernel = new Kernel();
        try
        {
            var before = kernel.Snapshot();
            var world = new World(kernel);
            var trace = new List<string>();
            try
            {
                foreach (var step in steps)
                {
                    kernel.KillAt = step.KillAt;
                    try { world.Do(step.Op); trace.Add($"{step}: done"); Count("done"); }
                    catch (UserError e) // a refusal, or a failure said to the user: fine
                    {
                        trace.Add($"{step}: {e.Message}");
                        Count("refused");
                        Count("  " + string.Concat(e.Message.Split(' ').Take(6).Select(w => w.Any(char.IsDigit) ? "X " : w + " ")));
                    }
                    catch (Killed) { world.Killed(); trace.Add($"{step}: killed"); Count("killed"); } // kill -9: the custody was disposed on the way out (the kernel drops the lock)
                    kernel.KillAt = 0;
                    // Whatever happened, nothing is on vfio-pci that the journal does not know (restore could not give it back).
                    var known = Journal.Load(world.StateDir);
                    var untracked = kernel.OnVfio().Where(a => known.Find(PciAddress.Parse(a)) is null).ToList();
                    if (untracked.Count > 0) throw new InvalidOperationException($"{string.Join(", ", untracked)} on vfio-pci but not in the journal");
                }
                world.RestoreAll();
                Assert.Equal(before, kernel.Snapshot());
                var journal = Path.Combine(world.StateDir, Journal.FileName);
                if (File.Exists(journal)) Assert.Fail("the journal is left: " + File.ReadAllText(journal));
                Assert.Empty(GuestRecords.All(world.StateDir));
            }
            catch (Exception e)
            {
                throw new InvalidOperationException($"{e.GetType().Name}: {e.Message}\n  after:\n    {string.Join("\n    ", trace)}", e);
            }
        }
        finally { kernel.Dispose(); }
    }

    /// <summary>A guest `run` started: its runner and QEMU as fake processes, what its run bound, what it holds.</summary>
    private sealed class SimGuest
    {
        public required string Name;
        public int RunnerPid, QemuPid;
        public bool Running;
        public List<FunctionState> Moved = [];
        public List<PciAddress> StartDevices = [];
        public List<PciAddress> Held = []; // what QEMU has (start devices and attached ones)
    }

    /// <summary>The commands, driving custody as RunSession, HotplugSession and the command files do.</summary>
    private sealed class World(Kernel kernel)
    {
        public string StateDir { get; } = Path.Combine(kernel.Tree, "run/passthru");
        private HostRoot Host => kernel.Host;
        private readonly SimGuest?[] _guests = new SimGuest?[2];
        private int _nextPid = 1000;

        private static List<DeviceSelector> Selectors(IEnumerable<int> devices) =>
            devices.Select(i => (DeviceSelector)new DeviceSelector.ByAddress(Pool[i], PciAddress.Parse(Pool[i]))).ToList();

        public void Do(Op op)
        {
            _runner = 0;
            switch (op)
            {
                case Bind b:
                {
                    using var custody = Custody.Take(Host, StateDir);
                    var plan = custody.PlanBind(new BindRequest(Selectors(b.Devices), b.Group, AllowUnsafeInterrupts: b.Unsafe));
                    if (!plan.IsEmpty) custody.Apply(plan);
                    break;
                }
                case SetVfs v:
                {
                    using var custody = Custody.Take(Host, StateDir);
                    var plan = VfPlanner.Plan(Host, custody.Journal, new VfRequest(Selectors([Array.IndexOf(Pool, Pf)])[0], v.Count, v.BindThem));
                    if (!plan.IsEmpty) custody.Apply(plan);
                    break;
                }
                case RunClaim r: RunClaim(r); break;
                case Attach a: Attach(a); break;
                case Detach d: Detach(d); break;
                case RunEnd e:
                    if (_guests[e.Guest] is not { Running: true } g) break;
                    kernel.EndProcess(g.QemuPid); // the guest shut down; its run gives everything back
                    g.Running = false;
                    _runner = g.RunnerPid;
                    End(g);
                    kernel.EndProcess(g.RunnerPid);
                    break;
                case GuestKilled k:
                    if (_guests[k.Guest] is { } killed)
                    {
                        kernel.EndProcess(killed.QemuPid);
                        kernel.EndProcess(killed.RunnerPid);
                        killed.Running = false;
                    }
                    if (k.CleanUp) CleanUp();
                    break;
                case Unbind u: GiveBackSelected(Selectors(u.Devices), u.Group, restore: false); break;
                case Restore r: GiveBackSelected(Selectors(r.Devices), false, restore: true); break;
            }
        }

        /// <summary>The `passthru run` the op is part of (0: none): killed with it, while its QEMU, if started, keeps running.</summary>
        private int _runner;

        public void Killed() => kernel.EndProcess(_runner);

        /// <summary>`passthru guests`: records of guests that are gone go, and their functions come back.</summary>
        private void CleanUp()
        {
            using var custody = Custody.Take(Host, StateDir);
            foreach (var (_, result) in custody.CleanUpGone()) Healthy(result);
        }

        /// <summary>unbind and restore, as UnbindCommand does.</summary>
        private void GiveBackSelected(List<DeviceSelector> selectors, bool group, bool restore)
        {
            using var custody = Custody.Take(Host, StateDir);
            var plan = custody.PlanRestore(selectors, group, restore);
            if (plan.IsEmpty && plan.Functions.Count == 0 && plan.Sriov.Count == 0) return;
            Healthy(custody.GiveBack(plan));
        }

        private static void Healthy(GiveBackResult result) =>
            Assert.True(result.Problems.Count == 0, "after a give-back: " + string.Join("; ", result.Problems));

        /// <summary>RunSession.Execute up to QEMU's start: register, bind under the lock, record, preflight, start.</summary>
        private void RunClaim(RunClaim r)
        {
            var name = $"g{r.Guest}";
            var devices = r.Devices.Select(i => PciAddress.Parse(Pool[i])).ToList();
            var inventory = PciInventory.Load(Host);
            foreach (var a in devices) if (inventory.Find(a) is null) throw new UserError($"no PCI function at {a}");
            var g = new SimGuest { Name = name, RunnerPid = _nextPid++, StartDevices = devices };
            kernel.StartProcess(g.RunnerPid, $"passthru\0run\0--name\0{name}\0", []);
            _runner = g.RunnerPid;
            var record = new GuestRecord
            {
                Name = name, RunnerPid = g.RunnerPid, Qmp = GuestRecords.SocketOf(StateDir, name), Machine = "q35",
                Ports = [.. devices.Select((_, i) => $"rp{i}"), "hp0", "hp1"],
                Devices = devices.Select((a, i) => new GuestDevice { Address = a.ToString(), Id = QemuCommand.DeviceId(a), Port = $"rp{i}" }).ToList(),
            };
            try
            {
                var cleaned = new List<string>();
                using (var custody = Custody.Take(Host, StateDir)) custody.Register(record, cleaned);
            }
            catch (UserError) { kernel.EndProcess(g.RunnerPid); throw; }
            _guests[r.Guest] = g;
            try
            {
                using (var custody = Custody.Take(Host, StateDir))
                {
                    var bind = custody.PlanBind(new BindRequest(Selectors(r.Devices), r.Group, AllowUnsafeInterrupts: r.Unsafe, Verb: "run"));
                    custody.Apply(bind);
                    g.Moved = [.. bind.Functions];
                    record.Bound = bind.Functions.Select(f => f.Address.ToString()).ToList();
                    custody.Save(record);
                }
                // Preflight: on vfio-pci, groups viable, interrupts allowed.
                if (InterruptSafety.Of(new HostFacts(Host)).Blocks) throw new UserError(InterruptSafety.Refusal("run"));
                var now = PciInventory.Load(Host);
                foreach (var a in devices)
                {
                    var d = now.Find(a) ?? throw new UserError($"{a} disappeared from the PCI bus");
                    if (!d.IsBoundToVfio) throw new UserError($"{a} is not on vfio-pci");
                    if (!now.GroupOf(d)!.IsViable) throw new UserError($"{a}'s group is not viable");
                    if (kernel.HeldOpen(d.IommuGroup!.Value)) throw new UserError($"{a}'s group is open by another guest");
                }
                g.QemuPid = _nextPid++;
                g.Held = [.. devices];
                kernel.StartProcess(g.QemuPid, $"qemu-system-x86_64\0-name\0{name}\0-qmp\0unix:{record.Qmp},server=on,wait=off\0", g.Held);
                g.Running = true;
                using (var custody = Custody.Take(Host, StateDir))
                {
                    var saved = custody.Guest(name)!;
                    saved.QemuPid = g.QemuPid;
                    custody.Save(saved);
                }
            }
            catch (UserError)
            {
                // The run fails before its guest: whatever was bound for it goes back (RunSession's finally).
                End(g);
                kernel.EndProcess(g.RunnerPid);
                throw;
            }
        }

        /// <summary>RunSession.End: the guest's claims end and what was bound for it goes back.</summary>
        private void End(SimGuest g)
        {
            using var custody = Custody.Take(Host, StateDir);
            var functions = g.Moved.Select(f => f.Address).Concat(custody.Forget(g.Name)).Distinct().ToList();
            Healthy(custody.GiveBack(custody.PlanGiveBack(functions, claimsEnding: functions.Concat(g.StartDevices))));
        }

        /// <summary>HotplugSession.PlanAttach and Attach: bound and recorded under the lock, then device_add.</summary>
        private void Attach(Attach a)
        {
            if (_guests[a.Guest] is not { } g) return;
            var address = PciAddress.Parse(Pool[a.Device]);
            var selectors = Selectors([a.Device]);
            var plan = HotplugSession.PlanAttach(Host, StateDir, g.Name, selectors, a.Group, a.Unsafe);
            var step = plan.Steps.Single();
            using (var custody = Custody.Take(Host, StateDir))
            {
                var guest = HotplugSession.Running(Host, StateDir, g.Name);
                if (!guest.FreePorts.Contains(step.Port)) throw new UserError("guest changed while attaching");
                var bind = custody.PlanBind(new BindRequest(selectors, a.Group, AllowUnsafeInterrupts: a.Unsafe, Verb: "attach"));
                custody.Apply(bind);
                var group = bind.Functions.FirstOrDefault(f => f.Address == address)?.Group;
                guest.Devices.Add(new GuestDevice
                {
                    Address = address.ToString(), Id = step.Id, Port = step.Port, Attached = true,
                    Bound = bind.Functions.Where(f => f.Address == address || (group is not null && f.Group == group)).Select(f => f.Address.ToString()).ToList(),
                });
                custody.Save(guest);
            }
            if (a.QemuRefuses || kernel.HeldOpenByOther(address, g.QemuPid))
            {
                // device_add refused (or the group is another guest's): what was bound for it goes back.
                ReleaseAndGiveBack(g, d => d.Id == step.Id);
                throw new UserError($"QEMU refused to add {address}");
            }
            g.Held.Add(address);
            kernel.SetDevices(g.QemuPid, g.Held);
        }

        /// <summary>HotplugSession.PlanDetach and Detach: device_del, the guest lets go, then the give-back.</summary>
        private void Detach(Detach d)
        {
            if (_guests[d.Guest] is not { Running: true } g || g.Held.Count == 0) return;
            var address = g.Held[d.Which % g.Held.Count];
            var plan = HotplugSession.PlanDetach(Host, StateDir, g.Name, Selectors([Array.IndexOf(Pool, address.ToString())]), TimeSpan.FromSeconds(1));
            var device = plan.Devices.Single();
            g.Held.Remove(address);
            kernel.SetDevices(g.QemuPid, g.Held); // DEVICE_DELETED: QEMU closed the device
            ReleaseAndGiveBack(g, x => x.Id == device.Id);
        }

        private void ReleaseAndGiveBack(SimGuest g, Func<GuestDevice, bool> which)
        {
            using var custody = Custody.Take(Host, StateDir);
            Healthy(custody.GiveBack(custody.PlanGiveBack(custody.Release(g.Name, which))));
        }

        /// <summary>The end: every guest's QEMU and run gone, `passthru guests` cleans up, then `passthru restore`.</summary>
        public void RestoreAll()
        {
            foreach (var g in _guests.OfType<SimGuest>())
            {
                kernel.EndProcess(g.QemuPid);
                kernel.EndProcess(g.RunnerPid);
            }
            CleanUp();
            GiveBackSelected([], false, restore: true);
        }
    }

    // ---- The simulated kernel ------------------------------------------------------------------------------------------

    /// <summary>kill -9 of the command at a sysfs write: nothing after it runs (not an IOException: no rollback catches it).</summary>
    private sealed class Killed : Exception;

    /// <summary>A write the real kernel would block on (vfio-pci asked to let go of a device a running QEMU has open).</summary>
    private sealed class WouldHang(string message) : Exception(message);

    /// <summary>
    /// A minimal sysfs (and procfs) tree, built in a few milliseconds, and the kernel's synchronous reactions to the
    /// writes Passthru makes: driver_override, drivers/D/unbind and bind, drivers_probe (honouring driver_override and
    /// the PF's sriov_drivers_autoprobe for VFs), sriov_numvfs (VFs created and removed, each in a new IOMMU group),
    /// and allow_unsafe_interrupts. /dev/vfio/N exists while a function of group N is on vfio-pci.
    /// </summary>
    private sealed class Kernel : IDisposable
    {
        /// <summary>In memory where there is a tmpfs: the journal and guest records are fsynced on every change.</summary>
        public string Tree { get; } = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), "passthru-custody-" + Guid.NewGuid().ToString("n")[..10]);
        public HostRoot Host { get; }
        /// <summary>The write of the current command after which it is killed (0: none); counted from when it is set.</summary>
        public int KillAt
        {
            get => _killAt;
            set { _killAt = value; _writes = 0; }
        }
        private int _killAt, _writes, _nextGroup = 6, _numVfs = 1;

        private static readonly Dictionary<string, string?> NativeDriver = new()
        {
            ["0000:01:00.0"] = "e1000e", ["0000:02:00.0"] = "e1000e", ["0000:03:00.0"] = "e1000", ["0000:03:00.1"] = "e1000", [Pf] = "igb",
        };

        public Kernel()
        {
            Directory.CreateDirectory(Tree);
            Host = new HostRoot(Tree) { AfterWrite = OnWrite };
            foreach (var d in new[] { "e1000e", "e1000", "igb", "igbvf", BindPlanner.Vfio })
            {
                Directory.CreateDirectory(At($"sys/bus/pci/drivers/{d}"));
                File.WriteAllText(At($"sys/bus/pci/drivers/{d}/bind"), "");
                File.WriteAllText(At($"sys/bus/pci/drivers/{d}/unbind"), "");
            }
            File.WriteAllText(At("sys/bus/pci/drivers_probe"), "");
            Directory.CreateDirectory(At("sys/module/vfio_pci"));
            Directory.CreateDirectory(At("sys/module/vfio_iommu_type1/parameters"));
            File.WriteAllText(At(InterruptSafety.ParameterPath), "N\n");
            Directory.CreateDirectory(At("proc"));
            File.WriteAllText(At("proc/cmdline"), "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on intremap=off\n"); // no interrupt remapping
            Directory.CreateDirectory(At("dev/vfio"));
            Function("0000:01:00.0", 1, "e1000e", null);
            Function("0000:02:00.0", 2, "e1000e", "e1000e"); // an override of the user's own, kept
            Function("0000:03:00.0", 3, "e1000", null);
            Function("0000:03:00.1", 3, null, null);         // its group mate, with no driver
            Function(Pf, 4, "igb", null);
            foreach (var (name, value) in new[] { ("sriov_totalvfs", "3"), ("sriov_numvfs", "1"), ("sriov_offset", "128"), ("sriov_stride", "1"), ("sriov_drivers_autoprobe", "1") })
                File.WriteAllText(At($"sys/bus/pci/devices/{Pf}/{name}"), value + "\n");
            CreateVf(0, 5);
        }

        public void Dispose() { try { Directory.Delete(Tree, true); } catch (IOException) { } }

        private string At(string relative) => Path.Combine(Tree, relative);
        private static string Dev(string a) => $"sys/bus/pci/devices/{a}";

        private void Function(string a, int group, string? driver, string? driverOverride, bool vf = false)
        {
            Directory.CreateDirectory(At(Dev(a)));
            File.WriteAllText(At($"{Dev(a)}/vendor"), "0x8086\n");
            File.WriteAllText(At($"{Dev(a)}/device"), vf ? "0x10ca\n" : "0x10c9\n");
            File.WriteAllText(At($"{Dev(a)}/class"), "0x020000\n");
            File.WriteAllText(At($"{Dev(a)}/driver_override"), (driverOverride ?? "(null)") + "\n");
            Directory.CreateDirectory(At($"sys/kernel/iommu_groups/{group}/devices"));
            File.CreateSymbolicLink(At($"sys/kernel/iommu_groups/{group}/devices/{a}"), $"../../../../bus/pci/devices/{a}");
            File.CreateSymbolicLink(At($"{Dev(a)}/iommu_group"), $"../../../../kernel/iommu_groups/{group}");
            if (driver is not null) SetDriver(a, driver);
        }

        private void CreateVf(int i, int group)
        {
            var a = Vfs[i];
            Function(a, group, null, null, vf: true);
            File.CreateSymbolicLink(At($"{Dev(a)}/physfn"), $"../{Pf}");
            File.CreateSymbolicLink(At($"{Dev(Pf)}/virtfn{i}"), $"../{a}");
            if (Read($"{Dev(Pf)}/sriov_drivers_autoprobe") == "1") Probe(a);
        }

        private void RemoveVf(int i)
        {
            var a = Vfs[i];
            if (InUse(a)) throw new WouldHang($"sriov_numvfs: removing {a} waits for the QEMU that has it to let go");
            var group = GroupOf(PciAddress.Parse(a));
            SetDriver(a, null);
            Directory.Delete(At(Dev(a)), true);
            File.Delete(At($"{Dev(Pf)}/virtfn{i}"));
            if (group is int n) Directory.Delete(At($"sys/kernel/iommu_groups/{n}"), true);
        }

        private string? Read(string relative) => File.Exists(At(relative)) ? File.ReadAllText(At(relative)).Trim() : null;

        public string? DriverOf(string a)
        {
            var target = new FileInfo(At($"{Dev(a)}/driver")).LinkTarget;
            return target is null ? null : Path.GetFileName(target);
        }

        public int? GroupOf(PciAddress a)
        {
            var link = new FileInfo(At($"{Dev(a.ToString())}/iommu_group"));
            return link.LinkTarget is { } t ? int.Parse(Path.GetFileName(t)) : null;
        }

        private void SetDriver(string a, string? driver)
        {
            var link = At($"{Dev(a)}/driver");
            if (new FileInfo(link).LinkTarget is not null) File.Delete(link);
            if (driver is not null) File.CreateSymbolicLink(link, $"../../drivers/{driver}");
            // The group's vfio node: there while any of its functions is on vfio-pci.
            if (GroupOf(PciAddress.Parse(a)) is int g)
            {
                var node = At($"dev/vfio/{g}");
                bool any = Directory.EnumerateFileSystemEntries(At($"sys/kernel/iommu_groups/{g}/devices"))
                    .Any(m => DriverOf(Path.GetFileName(m)) == BindPlanner.Vfio);
                if (any && !File.Exists(node)) File.WriteAllText(node, "");
                if (!any && File.Exists(node)) File.Delete(node);
            }
        }

        private void OnWrite(string path, string value)
        {
            React(path, value.Trim());
            if (KillAt > 0 && ++_writes == KillAt) throw new Killed();
        }

        private void React(string path, string value)
        {
            var parts = path.Split('/');
            if (path == SysfsPaths.DriversProbe) { Exists(value); Probe(value); return; }
            if (parts is ["sys", "bus", "pci", "drivers", var driver, "unbind"])
            {
                Exists(value);
                if (DriverOf(value) != driver) throw new IOException("No such device");
                if (InUse(value)) throw new WouldHang($"unbinding {value} from vfio-pci waits for the QEMU that has it to let go");
                SetDriver(value, null);
                return;
            }
            if (parts is ["sys", "bus", "pci", "drivers", var target, "bind"])
            {
                Exists(value);
                if (DriverOf(value) is not null) throw new IOException("Device or resource busy");
                if (target != (Override(value) ?? Native(value))) throw new IOException("No such device");
                SetDriver(value, target);
                return;
            }
            if (path == InterruptSafety.ParameterPath)
            {
                var on = value is "Y" or "y" or "1";
                if (!on && value is not ("N" or "n" or "0")) { File.WriteAllText(At(path), "N\n"); throw new IOException("Invalid argument"); }
                File.WriteAllText(At(path), on ? "Y\n" : "N\n");
                return;
            }
            if (parts is ["sys", "bus", "pci", "devices", var a, var attribute])
            {
                switch (attribute)
                {
                    case "driver_override":
                        File.WriteAllText(At(path), (value.Length == 0 ? "(null)" : value) + "\n");
                        return;
                    case "sriov_drivers_autoprobe" when a == Pf:
                        File.WriteAllText(At(path), (value == "0" ? "0" : "1") + "\n");
                        return;
                    case "sriov_numvfs" when a == Pf:
                        try { SetNumVfs(value); }
                        finally { File.WriteAllText(At(path), _numVfs + "\n"); }
                        return;
                }
            }
            throw new InvalidOperationException($"the simulated kernel does not know the write {value} > /{path}");
        }

        private void Exists(string a)
        {
            if (!Directory.Exists(At(Dev(a)))) throw new IOException("No such device");
        }

        private string? Override(string a) => Read($"{Dev(a)}/driver_override") is { } o && o != "(null)" && o.Length > 0 ? o : null;

        private static string? Native(string a) => Vfs.Contains(a) ? "igbvf" : NativeDriver[a];

        /// <summary>drivers_probe: its driver_override's driver, else its own; a VF only when autoprobe is on or it has an override.</summary>
        private void Probe(string a)
        {
            if (DriverOf(a) is not null) return;
            var over = Override(a);
            if (Vfs.Contains(a) && over is null && Read($"{Dev(Pf)}/sriov_drivers_autoprobe") != "1") return;
            var driver = over ?? Native(a);
            if (driver is null || !Directory.Exists(At($"sys/bus/pci/drivers/{driver}"))) return;
            // A group a process has open belongs to user space: a host driver's probe fails (-EBUSY, DMA ownership).
            if (driver != BindPlanner.Vfio && GroupOf(PciAddress.Parse(a)) is int g && HeldOpen(g)) return;
            SetDriver(a, driver);
        }

        /// <summary>sriov_numvfs_store: the same count is a no-op; else the PF's driver must be there, and one count changes only through 0.</summary>
        private void SetNumVfs(string value)
        {
            if (!int.TryParse(value, out var n) || n < 0 || n > 3) throw new IOException("Numerical result out of range");
            if (n == _numVfs) return;
            if (DriverOf(Pf) != "igb") throw new IOException("No such file or directory");
            if (n == 0)
            {
                for (int i = _numVfs - 1; i >= 0; i--) RemoveVf(i);
                _numVfs = 0;
                return;
            }
            if (_numVfs != 0) throw new IOException("Device or resource busy");
            for (int i = 0; i < n; i++) CreateVf(i, _nextGroup++);
            _numVfs = n;
        }

        // ---- Processes ------------------------------------------------------------------------------------------

        public void StartProcess(int pid, string cmdline, IReadOnlyList<PciAddress> devices)
        {
            Directory.CreateDirectory(At($"proc/{pid}/fd"));
            File.WriteAllText(At($"proc/{pid}/cmdline"), cmdline);
            File.WriteAllText(At($"proc/{pid}/comm"), cmdline.Split('\0')[0] + "\n");
            SetDevices(pid, devices);
        }

        /// <summary>
        /// The devices a QEMU has: their vfio group nodes open (what /proc/PID/fd shows), and the devices themselves
        /// (the simulation's own record, not read by Passthru: vfio-pci lets go of a device only once its user did).
        /// </summary>
        public void SetDevices(int pid, IReadOnlyList<PciAddress> devices)
        {
            var fd = At($"proc/{pid}/fd");
            if (!Directory.Exists(fd)) return;
            foreach (var f in Directory.GetFileSystemEntries(fd)) File.Delete(f);
            int n = 10;
            foreach (var g in devices.Select(GroupOf).OfType<int>().Distinct()) File.CreateSymbolicLink(Path.Combine(fd, (n++).ToString()), $"/dev/vfio/{g}");
            File.WriteAllLines(At($"proc/{pid}/vfio-devices"), devices.Select(a => a.ToString()));
        }

        private bool InUse(string a) =>
            Directory.EnumerateFiles(At("proc"), "vfio-devices", SearchOption.AllDirectories).Any(f => File.ReadAllLines(f).Contains(a));

        public void EndProcess(int pid)
        {
            if (pid > 0 && Directory.Exists(At($"proc/{pid}"))) Directory.Delete(At($"proc/{pid}"), true);
        }

        public bool HeldOpen(int group) => ProcessScan.Holders(Host, $"/dev/vfio/{group}").Count > 0;

        /// <summary>Whether a process other than <paramref name="pid"/> has the function's group open.</summary>
        public bool HeldOpenByOther(PciAddress a, int pid) =>
            GroupOf(a) is int g && Directory.EnumerateDirectories(At("proc")).Where(p => Path.GetFileName(p) != pid.ToString())
                .Any(p => Directory.Exists(Path.Combine(p, "fd")) && Directory.EnumerateFileSystemEntries(Path.Combine(p, "fd")).Any(f => new FileInfo(f).LinkTarget == $"/dev/vfio/{g}"));

        public IEnumerable<string> OnVfio() =>
            Directory.GetDirectories(At("sys/bus/pci/devices")).Select(Path.GetFileName).OfType<string>().Where(a => DriverOf(a) == BindPlanner.Vfio);

        // ---- What must come back ----------------------------------------------------------------------------------

        /// <summary>Each function's driver and override, the PF's VF count and autoprobe, the module parameter, the vfio nodes.</summary>
        public string Snapshot()
        {
            var lines = new List<string>();
            foreach (var dir in Directory.GetDirectories(At("sys/bus/pci/devices")).Order(StringComparer.Ordinal))
            {
                var a = Path.GetFileName(dir);
                lines.Add($"{a} driver={DriverOf(a) ?? "none"} driver_override={Read($"{Dev(a)}/driver_override")}"
                    + (a == Pf ? $" sriov_numvfs={Read($"{Dev(a)}/sriov_numvfs")} autoprobe={Read($"{Dev(a)}/sriov_drivers_autoprobe")}" : ""));
            }
            lines.Add($"allow_unsafe_interrupts={Read(InterruptSafety.ParameterPath)}");
            lines.Add($"vfio nodes: {string.Join(" ", Directory.GetFileSystemEntries(At("dev/vfio")).Select(Path.GetFileName).Order(StringComparer.Ordinal))}");
            return string.Join("\n", lines);
        }
    }
}
