using System.Text.RegularExpressions;
using Passthru.Binding;
using Passthru.Check;
using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Launch;

/// <summary>What a run will do, decided before anything happens: shown by --dry-run, carried out by <see cref="RunSession.Execute"/>.</summary>
public sealed record RunPlan(RunOptions Options, GuestBoot Boot, IReadOnlyList<string> Argv, BindPlan Binding, bool Kvm, IReadOnlyList<string> Warnings,
    IReadOnlyList<(PciAddress Address, PassthroughDevice Options)> Devices, ConsoleScript? Script = null)
{
    /// <summary>The QEMU binary (the argument vector may start with the wrapper that drops its privileges).</summary>
    public string Qemu { get; init; } = Argv.Count > 0 ? Argv[0] : "";
    public QemuPrivilege Privilege { get; init; } = QemuPrivilege.Inherited;
    /// <summary>The 64-bit PCI hole set for large BARs (null: QEMU's default holds them).</summary>
    public PciHole64? Hole64 { get; init; }
}

/// <summary>
/// `passthru run`: the devices bound to vfio-pci (managed, like libvirt's managed='yes'), every precondition checked,
/// QEMU started from an argument vector with its console watched, and the devices given back when it ends for any
/// reason (guest shutdown, crash, --timeout, --expect matched, Ctrl-C, SIGTERM).
/// </summary>
public static class RunSession
{
    public static readonly Version MinimumQemu = new(4, 2);

    /// <summary>Where Debian and most distributions install QEMU: what a domain for another host names without a local one.</summary>
    public const string StandardQemu = "/usr/bin/qemu-system-x86_64";

    /// <param name="exporting">For a definition another host may run (export): no local QEMU is needed.</param>
    public static RunPlan Plan(HostRoot host, RunOptions o, bool exporting = false)
    {
        o.Validate();
        // Parsed now: a mistake in the script is reported before anything is bound or booted.
        var script = o.Script is null ? null : ConsoleScript.Load(o.Script);
        var boot = GuestBoot.From(o);
        var warnings = new List<string>();
        var qemu = o.Qemu is not null
            ? (exporting || File.Exists(o.Qemu) ? Path.GetFullPath(o.Qemu) : throw new UserError($"--qemu {o.Qemu}: no such file", ExitCodes.Usage))
            : Programs.Find(host, "qemu-system-x86_64") ?? (exporting ? NoLocalQemu(warnings)
                : throw new UserError("qemu-system-x86_64 not found: install QEMU (Debian: apt-get install qemu-system-x86) or give --qemu PATH"));
        bool kvm = DecideKvm(host, o.Accel, warnings);
        // Measured with the x86_64 build in ../shared/barrelfish: at 512 MiB its SKB runs out of memory at boot.
        if (o.Menu is not null && o.MemoryMiB < 1024)
            warnings.Add($"warning: --memory {o.MemoryMiB}: Barrelfish's x86_64 build needs about 1024 MiB (with 512 its SKB runs out of memory while booting)");

        var (devices, binding) = PlanDevices(host, o, exporting);
        // (Not for an export: another host's Barrelfish build is not this directory's, and only run boots this one.)
        if (!exporting && o.Menu is not null && devices.Count > 0) WarnDriverless(host, o, devices, warnings);
        if (o.Menu is not null && o.Cpus > 1 && OneCoreOnly(BarrelfishMenu.Load(o.Menu)) is { } why)
            warnings.Add($"warning: --cpus {o.Cpus}: {why}, so Barrelfish runs on core 0 only (add `module /x86_64/sbin/corectrl auto` to the menu)");
        var privilege = exporting ? QemuPrivilege.Inherited : DecidePrivilege(host, o, qemu, kvm, devices.Count + ExtraVfio(o).Count, warnings);
        privilege.CheckFiles(GuestFiles(boot, devices));
        // A guest given a display controller has it as its display: QEMU's default emulated VGA beside it would be a
        // second GPU the guest's firmware and driver may pick first (and a second legacy VGA range).
        if (o.Display is null && devices.Select(d => d.Address).Where(a => IsDisplay(host, a)).Take(1).ToList() is [var gpu])
        {
            o = o with { Display = "none" };
            warnings.Add($"note: no emulated display: {gpu} is the guest's (--display std adds QEMU's)");
        }
        var argv = QemuCommand.Build(qemu, o, boot, kvm, devices, privilege);
        var hole64 = LargeBars(host, o, devices, exporting, warnings);
        if (hole64 is not null && !exporting) argv = [.. argv.Take(3), "-global", $"{PciHole64.Q35Property}={hole64.QemuValue}", .. argv.Skip(3)];
        if (privilege.User is not null)
            argv = [.. privilege.Wrapper(Tool(host, "setpriv")), .. argv];
        return new RunPlan(o, boot, argv, binding, kvm, warnings, devices, script) { Qemu = qemu, Privilege = privilege, Hole64 = hole64 };
    }

    /// <summary>
    /// The 64-bit PCI hole the passed devices' large BARs need beyond QEMU's default (null: the default holds them, or
    /// the user set one after --). Only q35's host bridge is sized here; another machine gets a note.
    /// </summary>
    private static PciHole64? LargeBars(HostRoot host, RunOptions o, IReadOnlyList<(PciAddress Address, PassthroughDevice Options)> devices, bool exporting, List<string> warnings)
    {
        if (PciHole64.For(host, devices.Select(d => d.Address).ToList()) is not { } hole) return null;
        if (o.ExtraArgs.Any(a => a.Contains("pci-hole64-size", StringComparison.Ordinal))) return null; // the user's own, after --
        if (!PciHole64.IsQ35(o.Machine))
        {
            warnings.Add($"note: the passed devices' 64-bit prefetchable BARs need {Bytes.Format(hole.Needed)} of 64-bit MMIO: --machine {o.Machine} is not q35, so Passthru sets no hole size; give your host bridge's pci-hole64-size after -- if the guest does not see the BARs");
            return null;
        }
        warnings.Add(hole.Describe(exporting));
        return hole;
    }

    private static string Tool(HostRoot host, string name) =>
        Programs.Find(host, name) ?? throw new UserError($"{name} not found: install util-linux (it starts QEMU unprivileged), or run with --as-root");

    /// <summary>Every file QEMU opens itself: the unprivileged account must be able to (disks for writing).</summary>
    private static IEnumerable<(string Path, string What, bool Write)> GuestFiles(GuestBoot boot, IReadOnlyList<(PciAddress Address, PassthroughDevice Options)> devices)
    {
        if (boot.Kernel is not null) yield return (boot.Kernel, "the kernel", false);
        foreach (var f in RunOptions.InitrdFiles(boot.Initrd)) yield return (f, boot.Initrd!.Contains(',') || boot.Initrd.Contains(' ') ? "the module" : "the initrd", false);
        foreach (var d in boot.Disks) yield return (d, "the disk", true);
        if (boot.Cdrom is not null) yield return (boot.Cdrom, "the ISO", false);
        foreach (var (_, d) in devices) if (d.RomFile is not null) yield return (Path.GetFullPath(d.RomFile), "the ROM file", false);
    }

    /// <summary>
    /// Least privilege: as root, QEMU runs as an unprivileged account (passthru-qemu, or --user), under seccomp, with
    /// the locked memory vfio needs raised for it alone; --as-root keeps root, loudly. Run without root, QEMU is the
    /// caller's already.
    /// </summary>
    private static QemuPrivilege DecidePrivilege(HostRoot host, RunOptions o, string qemu, bool kvm, int devices, List<string> warnings)
    {
        if (o.AsRoot)
        {
            warnings.Add($"warning: --as-root: QEMU runs as root without a sandbox while it holds devices that can DMA into the host's memory: one QEMU escape owns the host (without --as-root it runs as {Accounts.DefaultQemuUser}, sandboxed)");
            return QemuPrivilege.Inherited;
        }
        // A captured tree (--root) has no accounts to run QEMU as: a test of the plan, run as its caller.
        if (!host.IsLive) return QemuPrivilege.Inherited with { Why = $"QEMU runs as the user running passthru (the captured tree {host.Root} has no accounts)" };
        var probe = QemuProbe.Of(qemu, o.StateDir);
        bool sandbox = probe?.Sandbox ?? false;
        if (!Environment.IsPrivilegedProcess)
            return QemuPrivilege.Inherited with { Sandbox = sandbox, Why = "QEMU runs as you (passthru is not root)", QemuVersion = probe?.Version };
        var name = o.QemuUser ?? Accounts.DefaultQemuUser;
        var account = Accounts.Find(host, name);
        if (account is null && o.QemuUser is not null)
            throw new UserError($"--user {name}: no such user: create it (useradd --system --user-group --no-create-home {name}), or leave --user out for {Accounts.DefaultQemuUser}", ExitCodes.Usage);
        if (account is { Uid: 0 }) throw new UserError($"--user {name}: that is root (uid 0): give an unprivileged user, or --as-root", ExitCodes.Usage);
        var groups = kvm && Accounts.GroupId(host, "kvm") is not null ? new[] { "kvm" } : [];
        return new QemuPrivilege(account ?? new Account(name, -1, -1, []), account is null, LockedMemory(o, devices, warnings), sandbox, groups) { QemuVersion = probe?.Version };
    }

    /// <summary>
    /// The locked-memory limit for QEMU alone when vfio may pin its RAM (devices now, or hot-plug ports for later):
    /// guest RAM plus libvirt's 1 GiB allowance. Root raises the hard limit too where it has CAP_SYS_RESOURCE.
    /// </summary>
    private static (ulong, ulong)? LockedMemory(RunOptions o, int devices, List<string> warnings)
    {
        bool hotplug = o.ControlSocket is not null && o.SpareHotplugPorts > 0;
        if (devices == 0 && !hotplug) return null;
        ulong wanted = ((ulong)o.MemoryMiB << 20) + QemuPrivilege.VfioAllowance;
        var (_, hard) = ResourceLimits.LockedMemory();
        if (hard == ResourceLimits.Infinity || hard >= wanted) return (wanted, hard);
        if (ResourceLimits.MayRaiseHardLimits()) return (wanted, wanted);
        var why = $"the locked-memory limit's ceiling here is {hard >> 20} MiB and this process may not raise it (no CAP_SYS_RESOURCE: a container?)";
        if (devices > 0) throw new UserError($"{why}: vfio pins the guest's {o.MemoryMiB} MiB; raise it (memlock in /etc/security/limits.conf) or run on the host itself");
        warnings.Add($"note: {why}: `passthru attach` into this guest would fail");
        return null;
    }

    /// <summary>
    /// Functions passed in extra QEMU arguments (`-- -device vfio-pci,host=ADDR,...`): Passthru does not bind them, but
    /// an unprivileged QEMU can open their groups only once they are handed to its user like --device's.
    /// </summary>
    private static List<PciAddress> ExtraVfio(RunOptions o) =>
        o.ExtraArgs.Where(a => a.StartsWith("vfio-pci,", StringComparison.Ordinal))
            .SelectMany(a => a.Split(',')).Where(p => p.StartsWith("host=", StringComparison.Ordinal))
            .Select(p => PciAddress.TryParse(p.Substring(5), out var address) ? address : (PciAddress?)null).OfType<PciAddress>().ToList();

    /// <summary>
    /// The devices named by --device, resolved on this host, with the binding that would put them (and with --group
    /// their group mates) on vfio-pci: every check bind makes (one device named once, whole groups, no host-critical
    /// device). Shared by run and every export, so a device one refuses, all refuse.
    /// </summary>
    /// <param name="exporting">For another host: the binding is only checked, and a missing interrupt remapping here is not an error.</param>
    public static (IReadOnlyList<(PciAddress Address, PassthroughDevice Options)> Devices, BindPlan Binding) PlanDevices(HostRoot host, RunOptions o, bool exporting)
    {
        var devices = new List<(PciAddress, PassthroughDevice)>();
        var binding = new BindPlan(PlanKind.Bind, [], [], []);
        if (o.Devices.Count == 0) return (devices, binding);
        var inventory = PciInventory.Load(host);
        foreach (var d in o.Devices)
        {
            var device = d.Selector.ResolveOne(inventory);
            if (d.RomFile is not null) CheckRomFile(d.RomFile, device);
            devices.Add((device.Address, d));
        }
        if (devices.Select(d => d.Item1).Distinct().Count() != devices.Count)
            throw new UserError("a device is named twice in --device", ExitCodes.Usage);
        var notes = OtherFunctions(inventory, o, devices);
        binding = BindPlanner.PlanBind(host, inventory, exporting ? Request(o, devices) with { AllowUnsafeInterrupts = true } : Request(o, devices));
        return (devices, notes.Count == 0 ? binding : binding with { Notes = [.. notes, .. binding.Notes] });
    }

    /// <summary>A display controller (PCI base class 03: VGA, XGA, 3D), by its sysfs class.</summary>
    private static bool IsDisplay(HostRoot host, PciAddress a) =>
        host.ReadAttribute($"sys/bus/pci/devices/{a}/class")?.Trim() is { } c && c.StartsWith("0x03", StringComparison.Ordinal) && c.Length == 8;

    /// <summary>
    /// A multifunction device passes whole: with --all-functions every function of each named device, with --group
    /// those of its functions its IOMMU group takes along anyway (bound to vfio-pci, so no host driver has them), join
    /// the guest at their own function numbers of the same device (a GPU's HDMI audio as function 1 beside its VGA as
    /// 0, where the guest's driver looks for it). Added to <paramref name="devices"/>, with a note each.
    /// </summary>
    private static List<string> OtherFunctions(PciInventory inventory, RunOptions o, List<(PciAddress, PassthroughDevice)> devices)
    {
        var notes = new List<string>();
        if (!o.AllFunctions && !o.WholeGroup) return notes;
        foreach (var (named, _) in devices.ToList())
        {
            var group = inventory.Find(named)?.IommuGroup;
            foreach (var f in inventory.Devices.Where(f => f.Address.Domain == named.Domain && f.Address.Bus == named.Bus && f.Address.Device == named.Device
                         && f.Address != named && f.IsEndpoint && f.PhysicalFunction is null).OrderBy(f => f.Address))
            {
                if (devices.Any(d => d.Item1 == f.Address) || (!o.AllFunctions && f.IommuGroup != group)) continue;
                devices.Add((f.Address, new PassthroughDevice(new DeviceSelector.ByAddress(f.Address.ToString(), f.Address))));
                notes.Add($"{f.Address} goes to the guest with {named} as one device ({(o.AllFunctions ? "--all-functions" : "--group: the same device, in its IOMMU group")})");
            }
        }
        return notes;
    }

    /// <summary>
    /// A romfile= is checked as `passthru rom` checks a ROM it read, before anything is bound or QEMU starts: a ROM of
    /// another device, a truncated or damaged one, would otherwise surface as a guest with a dark screen or a
    /// firmware that skips the device.
    /// </summary>
    private static void CheckRomFile(string file, PciDevice device)
    {
        var path = InputFile.FullPath("romfile", file);
        var what = $"romfile {Shown.Value(path)} for {device.Address}";
        var bytes = InputFile.ReadBytes("romfile", path);
        try
        {
            OptionRom.Parse(bytes, what).RequireFor(device.Address, device.VendorId, device.DeviceId, what);
        }
        catch (UserError e)
        {
            throw new UserError(e.Message, ExitCodes.Usage);
        }
    }

    /// <summary>
    /// One warning per passed device that the build's device database (or the menu) leaves without a driver: kaluga
    /// would leave it alone and the guest would never use it. A menu that loads no SKB RAM disk is not checked.
    /// </summary>
    private static void WarnDriverless(HostRoot host, RunOptions o, IReadOnlyList<(PciAddress Address, PassthroughDevice Options)> devices, List<string> warnings)
    {
        // Advice, not a precondition: a RAM disk run cannot read is said in a warning, and Barrelfish still boots
        // (`show --build-dir` is where a damaged database is an error).
        BarrelfishDrivers? drivers;
        try { drivers = BarrelfishDrivers.ForMenu(BarrelfishMenu.Load(o.Menu!), o.Menu!, o.BuildDir); }
        catch (UserError e)
        {
            warnings.Add($"warning: cannot tell which Barrelfish drivers take the devices: {e.Message}");
            return;
        }
        if (drivers is null) return;
        var inventory = PciInventory.Load(host);
        foreach (var (address, _) in devices)
        {
            var device = inventory.Find(address);
            if (device is null) continue;
            var verdict = drivers.For(device.VendorId, device.DeviceId);
            if (!verdict.Taken)
                warnings.Add($"warning: {address} [{device.VendorId:x4}:{device.DeviceId:x4}] gets no Barrelfish driver: {verdict.Detail}");
        }
    }

    /// <summary>
    /// Why a Barrelfish menu boots no core but the first, or null. Barrelfish boots the others itself: kaluga sees each
    /// processor ACPI reports (QEMU's -smp) and starts corectrl to boot a CPU driver there, but only when the menu loads
    /// corectrl with `auto` (usr/kaluga/start_cpu.c). A menu without kaluga is not a Barrelfish one to judge.
    /// </summary>
    public static string? OneCoreOnly(BarrelfishMenu menu)
    {
        static string File(MenuModule m) => m.Path.Split('/')[^1];
        if (!menu.Modules.Any(m => File(m) == "kaluga")) return null;
        var corectrl = menu.Modules.Where(m => File(m) == "corectrl").ToList();
        if (corectrl.Count == 0) return "the menu loads no corectrl, which kaluga needs to boot the other cores";
        if (!corectrl.Any(m => m.Arguments.Split(' ').Contains("auto")))
            return $"the menu loads corectrl without `auto` (line {corectrl[0].Line}), so kaluga does not start it to boot the other cores";
        return null;
    }

    private static string NoLocalQemu(List<string> warnings)
    {
        warnings.Add($"note: no qemu-system-x86_64 on this machine: the definition names {StandardQemu}, where Debian and most distributions install it (--qemu PATH names another)");
        return StandardQemu;
    }

    private static BindRequest Request(RunOptions o, IEnumerable<(PciAddress Address, PassthroughDevice Options)> devices) =>
        new(devices.Select(d => (DeviceSelector)new DeviceSelector.ByAddress(d.Address.ToString(), d.Address)).ToList(), o.WholeGroup,
            AllowUnsafeInterrupts: o.AllowUnsafeInterrupts, Verb: "run", ReleaseConsole: o.ReleaseConsole, ResetMethods: o.ResetMethods);

    /// <summary>KVM only where it really runs guests: /dev/kvm alone proves little (a nested PVM hypervisor has one too).</summary>
    private static bool DecideKvm(HostRoot host, Accel accel, List<string> warnings)
    {
        if (accel == Accel.Tcg) return false;
        var finding = HostCheck.Kvm(new HostFacts(host));
        if (finding.Status == Status.Pass) return true;
        if (accel == Accel.Kvm)
            throw new UserError($"--accel kvm: KVM is not usable here ({finding.Message}): {finding.Fix}, or use --accel tcg");
        warnings.Add($"warning: KVM is not usable here ({finding.Message}): running under TCG, which is much slower");
        return false;
    }

    /// <summary>Carries a plan out; returns the exit code (QEMU's, or 0/1 for --expect).</summary>
    public static int Execute(HostRoot host, RunPlan planned, string stateDir, TextWriter console, TextWriter messages, bool progress)
    {
        var o = planned.Options;
        foreach (var w in planned.Warnings) messages.WriteLine(w);
        var plan = Prepared(host, planned, stateDir, messages);
        // The guest's record (name, QMP socket, devices), so attach/detach and `passthru guests` find it.
        var guest = o.ControlSocket is null ? null : Register(host, stateDir, plan, messages);
        var notBack = new List<string>();
        int code = Session(host, plan, stateDir, guest, console, messages, progress, notBack);
        // A device that did not come back after the guest fails a run that otherwise succeeded.
        return notBack.Count > 0 && code == ExitCodes.Ok ? ExitCodes.Failure : code;
    }

    /// <summary>The plan with its QEMU account made and read; on failure the name this run reserved is let go.</summary>
    private static RunPlan Prepared(HostRoot host, RunPlan plan, string stateDir, TextWriter messages)
    {
        try { return WithAccount(host, plan, messages); }
        catch (UserError)
        {
            if (plan.Options is { ControlSocket: not null, Name: { } name }) GuestRecords.ForgetReservation(stateDir, name);
            throw;
        }
    }

    /// <summary>
    /// The QEMU account as it exists: made first when it does not (useradd --system, as the Debian package's postinst
    /// does; an account is not a device's state, so nothing gives it back), then read for its ids.
    /// </summary>
    private static RunPlan WithAccount(HostRoot host, RunPlan plan, TextWriter messages)
    {
        // An account that existed when the run was planned was read then, ids and all: no second read of passwd and group.
        if (plan.Privilege is not { User: { } user, Create: true }) return plan;
        if (!host.IsLive) throw new UserError($"the QEMU user {user.Name} does not exist in {host.Root}, and users are only created on the live host");
        var useradd = Programs.Find(host, "useradd") ?? throw new UserError($"useradd not found: create the user {user.Name} (adduser --system --group {user.Name}), or run with --as-root");
        var command = Accounts.CreateCommand(user.Name);
        var r = Programs.Run(useradd, command.Skip(1), TimeSpan.FromSeconds(60));
        if (r is not { ExitCode: 0 } && Accounts.Find(host, user.Name) is null) // (another run may have made it meanwhile)
            throw new UserError($"could not create the QEMU user {user.Name} ({(r is null ? "useradd did not finish" : r.Stderr.Trim().Split('\n')[0])}): create it (adduser --system --group {user.Name}), or run with --as-root");
        messages.WriteLine($"[passthru] created the system user {user.Name} for QEMU ({string.Join(" ", command)})");
        var account = Accounts.Find(host, user.Name) ?? throw new UserError($"the QEMU user {user.Name} does not exist");
        return plan with { Privilege = plan.Privilege with { User = account, Create = false } };
    }

    /// <summary>Binds, starts and watches the guest; gives everything back however it ends, and checks it came back (into <paramref name="notBack"/>).</summary>
    private static int Session(HostRoot host, RunPlan plan, string stateDir, GuestRecord? guest, TextWriter console, TextWriter messages, bool progress, List<string> notBack)
    {
        var o = plan.Options;
        IReadOnlyList<FunctionState> moved = [];
        IReadOnlyList<PciAddress> unsafeFor = [];
        IReadOnlyList<PciAddress> resetFor = []; // functions whose reset_method the run set: put back at its end
        bool handedOver = false;
        // From the first change to the last: Ctrl-C, SIGTERM or SIGHUP stop the run the orderly way, so the devices are
        // given back whether the signal comes while binding, during the preflight or while the guest runs.
        // .NET's registration, not Host.InterruptHold's polled flag: run must wake at once from waiting on QEMU.
        using var interrupt = new CancellationTokenSource();
        void Stop(System.Runtime.InteropServices.PosixSignalContext c) { c.Cancel = true; interrupt.Cancel(); }
        bool Interrupted() => interrupt.IsCancellationRequested;   // what custody asks before each step it applies
        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, Stop);
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, Stop);
        using var sighup = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGHUP, Stop);
        try
        {
            // The devices QEMU opens: --device's, and vfio-pci ones given in extra arguments that are on vfio-pci now.
            var opened = plan.Devices.Select(d => d.Address)
                .Concat(ExtraVfio(o).Where(a => host.ReadLinkName(SysfsPaths.Driver(a)) == BindPlanner.Vfio)).Distinct().ToList();
            var user = opened.Count > 0 ? plan.Privilege.User : null;
            if (!plan.Binding.IsEmpty || user is not null)
            {
                if (host.IsLive && !Environment.IsPrivilegedProcess)
                    throw new UserError("run binds devices to vfio-pci, which needs root (sudo passthru run ...); nothing was changed");
                using (var custody = Custody.Take(host, stateDir))
                {
                    // Planned again under the lock: the devices may have moved since. (Nothing to plan when the plan
                    // had nothing to bind: the devices were on vfio-pci already, or come only in extra arguments.)
                    var bind = plan.Binding.IsEmpty ? plan.Binding : custody.PlanBind(Request(o, plan.Devices));
                    unsafeFor = bind.Steps.OfType<SetModuleParameter>().SelectMany(m => m.For).ToList();
                    resetFor = bind.Steps.OfType<SetResetMethod>().Select(r => r.Function).ToList();
                    custody.Apply(bind, interrupted: Interrupted);
                    moved = bind.Functions;
                    foreach (var warning in bind.Notes.Where(n => n.StartsWith("warning: ", StringComparison.Ordinal))) messages.WriteLine("[passthru] " + warning);
                    if (guest is not null)
                    {
                        guest.Bound = moved.Select(f => f.Address.ToString()).ToList();
                        custody.Save(guest);
                    }
                    if (user is not null)
                    {
                        // QEMU, never root, opens the groups' nodes itself: they are its user's while the guest runs.
                        var handOver = custody.PlanHandOver(opened, user);
                        handedOver = true;
                        custody.Apply(handOver, interrupted: Interrupted);
                        foreach (var h in handOver.Steps.OfType<HandOverNode>()) messages.WriteLine($"[passthru] handed /{h.Path} to {h.User} ({h.Uid}:{h.Gid}) until the guest ends");
                    }
                }
                foreach (var f in moved) messages.WriteLine($"[passthru] bound {f.Address} to vfio-pci (was {f.Driver ?? "no driver"})");
                foreach (var f in resetFor) messages.WriteLine($"[passthru] reset methods of {f}: {string.Join(' ', o.ResetMethods ?? [])} until the guest ends");
                if (unsafeFor.Count > 0)
                    messages.WriteLine($"[passthru] allowed unsafe interrupts (/{InterruptSafety.ParameterPath}) until the guest ends: {InterruptSafety.Risk}");
            }
            Preflight(host, plan);
            if (interrupt.IsCancellationRequested) return Report(messages, "[passthru] interrupted before the guest started", 130);
            messages.WriteLine($"[passthru] {plan.Privilege.Describe()}");
            // What is exec'd: QEMU itself where Passthru drops to its account in QEMU's process (the line above says
            // as whom); setpriv in front of it where that is not built in. --dry-run shows the setpriv form, which a
            // user can run as it is.
            var runAs = plan.Privilege.Credentials(host);
            messages.WriteLine($"[passthru] starting: {QemuArgs.ShellJoin(runAs is not null && ChildProcess.DropsInProcess ? plan.Argv.Skip(runAs.Wrapper) : plan.Argv)}");
            messages.Flush();
            return Watch(host, plan, runAs, console, messages, progress, interrupt.Token,
                guest is null ? null : pid => Update(host, stateDir, guest.Name, g => g.QemuPid = pid));
        }
        finally
        {
            // Whichever way the guest ended: its claims end, and what was bound for it (at its start, attached since)
            // goes back, checked afterwards.
            if (guest is not null || moved.Count > 0 || unsafeFor.Count > 0 || resetFor.Count > 0 || handedOver)
                notBack.AddRange(End(host, plan, stateDir, guest?.Name, moved, [.. unsafeFor, .. resetFor], messages));
        }
    }

    /// <summary>The guest's end: its record goes and, unless --keep-bound, everything bound for it goes back the one way custody gives back.</summary>
    private static IReadOnlyList<string> End(HostRoot host, RunPlan plan, string stateDir, string? guest, IReadOnlyList<FunctionState> moved,
        IReadOnlyList<PciAddress> unsafeFor, TextWriter messages)
    {
        try
        {
            using var custody = Custody.Take(host, stateDir);
            var functions = moved.Select(f => f.Address).Concat(guest is null ? [] : custody.Forget(guest)).Distinct().ToList();
            if (plan.Options.KeepBound)
            {
                if (functions.Count > 0)
                    messages.WriteLine($"[passthru] --keep-bound: {string.Join(", ", functions)} stay on vfio-pci (passthru restore gives them back)");
                return [];
            }
            // The unsafe interrupts this run allowed end with it, even for devices an earlier bind left on vfio-pci; ones
            // an earlier bind allowed stay for as long as that bind holds its devices.
            var result = custody.GiveBack(custody.PlanGiveBack(functions, claimsEnding: unsafeFor));
            foreach (var line in result.Lines) messages.WriteLine("[passthru] " + line);
            foreach (var problem in result.Problems) messages.WriteLine($"passthru: after the guest: {problem}");
            return result.Problems;
        }
        catch (UserError e)
        {
            messages.WriteLine($"[passthru] could not give the devices back: {e.Message}; run `passthru restore`");
            return [];
        }
    }

    /// <summary>Every precondition QEMU would otherwise fail on, each as one line with its fix.</summary>
    private static void Preflight(HostRoot host, RunPlan plan)
    {
        if (plan.Devices.Count > 0)
        {
            // Checked again after the bind (the host may have changed since the plan): vfio would refuse the devices.
            if (InterruptSafety.Of(new HostFacts(host)).Blocks) throw new UserError(InterruptSafety.Refusal("run"));
            var inventory = PciInventory.Load(host);
            foreach (var (address, _) in plan.Devices)
            {
                var d = inventory.Find(address) ?? throw new UserError($"{address} disappeared from the PCI bus");
                if (!d.IsBoundToVfio) throw new UserError($"{address} is bound to {d.Driver ?? "no driver"}, not vfio-pci: `passthru bind {address}`");
                var group = inventory.GroupOf(d)!;
                if (!group.IsViable)
                    throw new UserError($"IOMMU group {group.Number} is not viable: {ListBlockers(group)} still held by host drivers; add --group");
                var node = host.Path(SysfsPaths.VfioGroup(group.Number));
                try { using var _ = File.OpenHandle(node, FileMode.Open, FileAccess.ReadWrite); }
                catch (IOException e) when (e.Message.Contains("busy", StringComparison.OrdinalIgnoreCase))
                {
                    // A vfio group opens once: someone else has it (another guest of these devices).
                    var holders = ProcessScan.Holders(host, $"/dev/vfio/{group.Number}");
                    throw new UserError($"{node} is already open{(holders.Count > 0 ? $" by {string.Join(", ", holders)}" : " by another process")}: "
                        + $"another guest has IOMMU group {group.Number}; stop it first, or pass a different device");
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new UserError($"cannot open {node} ({Shown.Error(e)}): run as root or give your user access to it");
                }
            }
            ulong guestBytes = (ulong)plan.Options.MemoryMiB << 20;
            if (host.IsLive && !Environment.IsPrivilegedProcess && !ResourceLimits.EnsureLockedMemory(guestBytes + (64UL << 20)))
                throw new UserError($"the locked-memory limit ({ResourceLimits.LockedMemory().Soft >> 20} MiB) is below the guest's {plan.Options.MemoryMiB} MiB, which vfio pins: raise it (ulimit -l unlimited as root, or memlock in /etc/security/limits.conf)");
            // The minimum is vfio passthrough's (vfio-pci behind pcie-root-ports): a guest without devices does not
            // pay for starting QEMU once more just to ask its version (about 50 ms, as much as the rest of run).
            // (The sandbox probe read it already when QEMU runs unprivileged.)
            if (host.IsLive && (plan.Privilege.QemuVersion ?? (Programs.Run(plan.Qemu, ["--version"], TimeSpan.FromSeconds(30)) is { ExitCode: 0 } r ? HostCheck.QemuVersion(r.Stdout) : null))
                is string v && Version.TryParse(v, out var version) && version < MinimumQemu)
                throw new UserError($"QEMU {v} is too old for vfio passthrough as Passthru drives it: install {MinimumQemu} or newer");
        }
    }

    private static string ListBlockers(IommuGroup g) => string.Join(", ", g.Blockers.Select(b => $"{b.Address} ({b.Driver})"));

    /// <summary>Takes the guest's name and writes its record; a record left by a guest that is gone is cleaned up first.</summary>
    private static GuestRecord Register(HostRoot host, string stateDir, RunPlan plan, TextWriter messages)
    {
        var o = plan.Options;
        var layout = QemuCommand.Layout(o, plan.Devices);
        var record = new GuestRecord
        {
            Name = o.Name!, RunnerPid = Environment.ProcessId, Qmp = o.ControlSocket!, Machine = o.Machine,
            Started = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
            Ports = layout.Ports.Select(p => p.Id).ToList(),
            Devices = layout.Devices.Select(d => new GuestDevice { Address = d.Address.ToString(), Id = d.Id, Port = d.Bus }).ToList(),
            User = plan.Privilege.User?.Name, Uid = plan.Privilege.User?.Uid, Gid = plan.Privilege.User?.Gid,
        };
        var cleaned = new List<string>();
        using (var custody = Custody.Take(host, stateDir)) custody.Register(record, cleaned);
        foreach (var line in cleaned) messages.WriteLine("[passthru] " + line);
        var ports = record.Ports.Where(p => record.Devices.All(d => d.Port != p)).ToList();
        messages.WriteLine($"[passthru] guest '{record.Name}' (control: {record.Qmp}{(ports.Count > 0 ? $"; hot-plug ports {string.Join(", ", ports)}" : "")})");
        return record;
    }

    private static void Update(HostRoot host, string stateDir, string name, Action<GuestRecord> change)
    {
        using var custody = Custody.Take(host, stateDir);
        if (custody.Guest(name) is not { } g) return;
        change(g);
        custody.Save(g);
    }

    private static int Watch(HostRoot host, RunPlan plan, ChildCredentials? runAs, TextWriter console, TextWriter messages, bool terminal, CancellationToken interrupt, Action<int>? started)
    {
        var o = plan.Options;
        var expect = o.Expect is null ? null : new Regex(o.Expect);
        // While waiting for --expect or a --timeout on a terminal: one status line, redrawn in place (nothing when
        // stderr is a pipe or a file, or with NO_COLOR, so logs and scripts see only the console and Passthru's lines).
        var status = terminal && (expect is not null || o.TimeoutSeconds is not null || plan.Script is not null) && Environment.GetEnvironmentVariable("NO_COLOR") is null
            ? new StatusLine(messages) : null;
        // The kernel's log from here on: what vfio says while QEMU sets the devices up explains QEMU's failures.
        bool vfio = plan.Argv.Any(a => a.Contains("vfio-pci", StringComparison.Ordinal)); // --device, or in -- extra arguments
        using var kernelLog = vfio ? KernelLog.From(host) : null;
        var outcome = GuestProcess.Run(plan.Argv, new GuestWatch
        {
            Expect = expect,
            Started = started,
            ListenOn = plan.Privilege.User is not null ? o.ControlSocket : null,
            LockedMemory = plan.Privilege.User is not null ? plan.Privilege.LockedMemory : null,
            RunAs = runAs,
            Timeout = o.TimeoutSeconds is int t ? TimeSpan.FromSeconds(t) : null,
            SerialLog = o.SerialLog,
            Console = o.Quiet ? null : console,
            Script = plan.Script,
            KeepRunningInput = o.KeepRunning ? Console.OpenStandardInput() : null,
            HoldStderrUntilConsole = vfio,
            BeforeConsoleWrite = status is null ? null : status.Clear,
            Progress = status is null ? null : (elapsed, atLineStart) =>
            {
                if (!atLineStart) { status.Clear(); return; }
                var limit = o.TimeoutSeconds is int s ? $" of {s} s" : "";
                status.Show($"[passthru] {(int)elapsed.TotalSeconds} s{limit}{(expect is null ? "" : $": waiting for /{o.Expect}/")}");
            },
        }, interrupt);
        status?.Clear();
        if (outcome.HeldStderr is { Length: > 0 } said)
        {
            // QEMU ended before the guest printed anything: its words, after the cause when it is a known one.
            if (outcome.ExitCode != 0 && QemuFailure.Explain(said, kernelLog?.ReadNew() ?? [], host, o.MemoryMiB) is string why)
                messages.WriteLine($"passthru: why QEMU failed: {why}");
            messages.Write(said);
            messages.Flush();
        }
        string Tail() => string.Join("\n", outcome.LastLines.TakeLast(10).Select(l => "  | " + l));
        var signal = QemuFailure.Signal(outcome.ExitCode, plan.Argv);
        var ended = QemuFailure.Ended(outcome.ExitCode, signal);
        if (outcome.Script is { } script) return ScriptEnd(o, outcome, script, messages, Tail(), ended);
        return outcome.End switch
        {
            GuestEnd.Matched => Report(messages, $"[passthru] /{o.Expect}/ seen after {outcome.Elapsed.TotalSeconds:0.0} s: stopped the guest", ExitCodes.Ok),
            GuestEnd.TimedOut => throw new UserError($"{(expect is null ? "the guest" : $"no /{o.Expect}/")} within {o.TimeoutSeconds} s; last console lines:\n{Tail()}"),
            GuestEnd.Interrupted => Report(messages, "[passthru] interrupted: stopped the guest", 130),
            _ when expect is not null => throw new UserError($"QEMU {ended} before /{o.Expect}/ showed; last console lines:\n{Tail()}"),
            // A crashed QEMU says nothing itself; the run keeps its status (128 + the signal, as a shell gives it).
            _ when signal is not null => Report(messages,
                $"passthru: QEMU {ended} after {outcome.Elapsed.TotalSeconds:0.0} s{(outcome.LastLines.Count > 0 ? $"; last console lines:\n{Tail()}" : "")}", outcome.ExitCode),
            _ => outcome.ExitCode,
        };
    }

    /// <summary>How a --script run ended: its JUnit report first (a failure is reported there too), then the exit code.</summary>
    private static int ScriptEnd(RunOptions o, GuestOutcome outcome, ScriptResult script, TextWriter messages, string tail, string ended)
    {
        string? failure = null;
        if (script.Failed is { } step)
        {
            var at = $"{script.Script.File}:{step.Line}: `{step.Text}`";
            var taken = script.Steps[^1].Duration;
            failure = outcome.End switch
            {
                GuestEnd.TimedOut when taken >= step.Timeout => $"{at} timed out after {step.Timeout.TotalSeconds:0.###} s",
                GuestEnd.TimedOut => $"{at} was still running when --timeout {o.TimeoutSeconds} s ended the run",
                GuestEnd.Interrupted => $"{at} was interrupted",
                _ => $"{at}: QEMU {ended} before it completed",
            };
        }
        if (o.Junit is not null) JUnitReport.Write(o.Junit, JUnitReport.Build(script, outcome.Elapsed, outcome.LastLines, failure));
        if (outcome.End == GuestEnd.Interrupted) return Report(messages, "[passthru] interrupted: stopped the guest", 130);
        if (failure is not null) throw new UserError($"{failure}; last console lines:\n{tail}");
        if (outcome.End == GuestEnd.Completed)
            return Report(messages, $"[passthru] {script.Script.File}: {script.Steps.Count} step{(script.Steps.Count == 1 ? "" : "s")} done after {outcome.Elapsed.TotalSeconds:0.0} s: stopped the guest", ExitCodes.Ok);
        return outcome.ExitCode; // --keep-running: the user's session ended when QEMU exited
    }

    private static int Report(TextWriter messages, string line, int code)
    {
        messages.WriteLine(line);
        return code;
    }
}
