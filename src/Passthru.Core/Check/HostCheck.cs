using System.Text.RegularExpressions;
using Passthru.Host;

namespace Passthru.Check;

/// <summary>
/// The readiness report of `passthru check`, in the spirit of libvirt's virt-host-validate but about passthrough:
/// each finding says what is wrong and the one thing to do about it.
/// </summary>
public static partial class HostCheck
{
    public const long MinimumLockedMemoryForGuests = 1L << 30;

    public static IReadOnlyList<Finding> Run(HostRoot host)
    {
        var facts = new HostFacts(host);
        var findings = new List<Finding>();
        findings.Add(CpuVirtualization(facts));
        findings.Add(Kvm(facts));
        findings.Add(IommuHardware(facts));
        findings.Add(IommuEnabled(facts));
        findings.Add(IommuKernelParameter(facts));
        findings.Add(IommuPassthroughMode(facts));
        findings.Add(InterruptRemapping(facts));
        findings.Add(VfioModules(facts));
        findings.Add(Qemu(facts));
        findings.Add(LockedMemory(facts));
        findings.Add(QemuUser(facts));
        findings.Add(QemuSandbox(facts));
        // Only where it matters: a host without a firmware framebuffer in a GPU has nothing to say here.
        if (BootFramebuffer(host) is { } framebuffer) findings.Add(framebuffer);
        return findings;
    }

    /// <summary>
    /// A firmware framebuffer (efifb, vesafb, simplefb) inside a GPU's BAR: vfio cannot reserve that BAR while it is
    /// held (QEMU's "BAR 0: can't reserve"), so the GPU passes only once the console lets go of it.
    /// </summary>
    public static Finding? BootFramebuffer(HostRoot host)
    {
        var held = new List<Pci.FirmwareFramebuffer>();
        foreach (var name in host.List("sys/bus/pci/devices"))
            if (Pci.PciAddress.TryParse(name, out var a) && host.ReadAttribute($"sys/bus/pci/devices/{name}/class")?.Trim() is { Length: 8 } c && c.StartsWith("0x03", StringComparison.Ordinal))
                held.AddRange(Pci.BootConsole.Of(host, a).Framebuffers);
        if (held.Count == 0) return null;
        var gpus = string.Join(" ", held.Select(f => f.Function).Distinct());
        return new("boot-framebuffer", "Boot framebuffer", Status.Note, string.Join("; ", held.Select(f => f.Describe())) + ": the host's console is on that GPU",
            $"to pass it: passthru run --device {gpus} --all-functions --release-console (taken back after), or keep it off at boot: passthru setup --no-boot-framebuffer");
    }

    public static Finding CpuVirtualization(HostFacts f)
    {
        const string t = "CPU virtualization";
        var flags = f.CpuFlags;
        if (flags.Contains("vmx")) return new("cpu-virt", t, Status.Pass, "Intel VT-x (vmx)");
        if (flags.Contains("svm")) return new("cpu-virt", t, Status.Pass, "AMD-V (svm)");
        // Passthrough itself needs the IOMMU, not these: without them guests still run, under slow emulation (TCG).
        return flags.Contains("hypervisor")
            ? new("cpu-virt", t, Status.Warn, "no vmx or svm flag: this is a virtual machine without nested virtualization, so guests run under slow emulation",
                "enable nested virtualization for this VM in its hypervisor, or run on bare metal")
            : new("cpu-virt", t, Status.Warn, "no vmx or svm flag in /proc/cpuinfo: guests run under slow emulation",
                "enable Intel VT-x or AMD-V (SVM) in the firmware setup (BIOS/UEFI)");
    }

    public static Finding Kvm(HostFacts f)
    {
        const string t = "KVM";
        var vendorModule = f.IsAmd ? "kvm_amd" : "kvm_intel";
        if (!f.Host.Exists("dev/kvm"))
            return new("kvm", t, Status.Warn, "/dev/kvm does not exist: guests run under slow emulation (TCG)", $"load KVM: modprobe {vendorModule}");
        // /dev/kvm alone proves little: a paravirtualized nested hypervisor (kvm_pvm) provides it too, and ordinary
        // guests hang on it. Trust KVM only when the vendor module that runs hardware-assisted guests is loaded.
        if (f.ModuleLoaded("kvm_pvm") && !f.ModuleLoaded("kvm_intel") && !f.ModuleLoaded("kvm_amd"))
            return new("kvm", t, Status.Warn, "/dev/kvm is provided by kvm_pvm (a paravirtualized nested hypervisor), which does not run ordinary guests",
                "use software emulation (passthru run --accel tcg) or a host with kvm_intel/kvm_amd");
        if (f.Host.IsLive && !CanOpen(f.Host.Path("dev/kvm")))
            return new("kvm", t, Status.Warn, "/dev/kvm exists but cannot be opened for reading and writing: guests run under slow emulation",
                "add your user to the kvm group (usermod -aG kvm $USER) and log in again, or run as root");
        if (!f.ModuleLoaded("kvm_intel") && !f.ModuleLoaded("kvm_amd"))
            return new("kvm", t, Status.Warn, "/dev/kvm exists, but neither kvm_intel nor kvm_amd is loaded", $"modprobe {vendorModule}");
        return new("kvm", t, Status.Pass, $"/dev/kvm usable ({(f.ModuleLoaded("kvm_amd") ? "kvm_amd" : "kvm_intel")})");
    }

    private static bool CanOpen(string path)
    {
        try { using var h = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    public static Finding IommuHardware(HostFacts f)
    {
        const string t = "IOMMU hardware";
        if (f.HasAcpiTable("DMAR")) return new("iommu-hw", t, Status.Pass, "Intel VT-d (ACPI DMAR table)");
        if (f.HasAcpiTable("IVRS")) return new("iommu-hw", t, Status.Pass, "AMD-Vi (ACPI IVRS table)");
        if (f.IommuUnits.Count > 0) return new("iommu-hw", t, Status.Pass, $"IOMMU units: {string.Join(", ", f.IommuUnits)}");
        return new("iommu-hw", t, Status.Fail, "no ACPI DMAR or IVRS table: the firmware announces no IOMMU",
            f.IommuIsAmd ? "enable AMD-Vi / IOMMU in the firmware setup (BIOS/UEFI)" : "enable VT-d in the firmware setup (BIOS/UEFI)");
    }

    public static Finding IommuEnabled(HostFacts f)
    {
        const string t = "IOMMU enabled";
        int groups = f.IommuGroupCount;
        var units = f.IommuUnits;
        if (groups > 0 && units.Count > 0)
            return new("iommu-on", t, Status.Pass, $"{units.Count} IOMMU unit{(units.Count == 1 ? "" : "s")}, {groups} IOMMU groups");
        if (groups > 0)
            return new("iommu-on", t, Status.Pass, $"{groups} IOMMU groups");
        return new("iommu-on", t, Status.Fail, "the kernel has no IOMMU groups: the IOMMU is off",
            f.IommuIsAmd ? "enable the IOMMU in the firmware setup; remove amd_iommu=off from the kernel command line"
                    : "add intel_iommu=on to the kernel command line (passthru setup) and reboot");
    }

    public static Finding IommuKernelParameter(HostFacts f)
    {
        const string t = "IOMMU kernel parameter";
        if (f.IommuIsAmd)
        {
            return f.KernelParameter("amd_iommu") == "off"
                ? new("iommu-param", t, Status.Fail, "amd_iommu=off is on the kernel command line", "remove amd_iommu=off from the kernel command line and reboot")
                : new("iommu-param", t, Status.Pass, "AMD's IOMMU is on by default (no amd_iommu=off)");
        }
        var value = f.KernelParameter("intel_iommu");
        var settings = (value ?? "").Split(',');
        if (settings.Contains("on")) return new("iommu-param", t, Status.Pass, $"intel_iommu={value}");
        if (settings.Contains("off"))
            return new("iommu-param", t, Status.Fail, "intel_iommu=off is on the kernel command line", "replace it with intel_iommu=on (passthru setup) and reboot");
        return f.IommuGroupCount > 0
            ? new("iommu-param", t, Status.Pass, "intel_iommu=on is not set, but the kernel enables the IOMMU by default")
            : new("iommu-param", t, Status.Fail, "intel_iommu=on is missing from the kernel command line", "add intel_iommu=on (passthru setup) and reboot");
    }

    public static Finding IommuPassthroughMode(HostFacts f)
    {
        const string t = "IOMMU host mode";
        var value = f.KernelParameter("iommu");
        return value == "pt"
            ? new("iommu-pt", t, Status.Pass, "iommu=pt: host devices skip IOMMU translation")
            : new("iommu-pt", t, Status.Note, "iommu=pt is not set: host devices use IOMMU translation too",
                "optional: add iommu=pt for host I/O performance (passthru setup --iommu-pt)");
    }

    public static Finding InterruptRemapping(HostFacts f)
    {
        const string t = "Interrupt remapping";
        const string risk = "without it vfio refuses devices unless vfio_iommu_type1.allow_unsafe_interrupts=1, which lets a guest's device forge interrupts (MSI) against the host: use that only with trusted guests";
        var safety = InterruptSafety.Of(f);
        bool offOnCmdline = f.InterruptRemappingOffOnCmdline;
        if (safety.Remapping == false && safety.Allowed)
            return new("intremap", t, Status.Warn,
                $"{(offOnCmdline ? "turned off on the kernel command line" : "the IOMMU does not remap interrupts")}; unsafe interrupts are allowed ({safety.AllowedBy}): passthrough works, and that is a trust decision",
                "pass devices only to guests you trust: a guest's device can forge interrupts (MSI) against the host");
        if (offOnCmdline)
            return new("intremap", t, Status.Warn, "disabled on the kernel command line (intremap=off or nointremap)", "remove it and reboot; " + risk);
        if (safety.Allowed)
            return new("intremap", t, Status.Warn, $"unsafe interrupts are allowed ({safety.AllowedBy}): guests' devices can forge interrupts",
                safety.Remapping == true ? "this IOMMU remaps interrupts, so nothing needs it: remove it" : "remove it if this host has interrupt remapping");
        return safety.Remapping switch
        {
            true => new("intremap", t, Status.Pass, "supported by the IOMMU"),
            false => new("intremap", t, Status.Warn, "the IOMMU does not remap interrupts: vfio refuses devices until unsafe interrupts are allowed",
                "passthru run --allow-unsafe-interrupts (for one run) or passthru setup --allow-unsafe-interrupts (for good); a guest's device can then forge interrupts (MSI) against the host: only for trusted guests"),
            null => new("intremap", t, Status.Warn, "unknown: no IOMMU unit or readable DMAR table to ask (run as root, enable the IOMMU)", risk),
        };
    }

    public static Finding VfioModules(HostFacts f)
    {
        const string t = "vfio modules";
        string[] modules = ["vfio", "vfio_iommu_type1", "vfio_pci"];
        var loaded = modules.Where(f.ModuleLoaded).ToList();
        if (loaded.Count == modules.Length) return new("vfio", t, Status.Pass, "vfio, vfio_iommu_type1 and vfio_pci loaded");
        var missing = modules.Except(loaded).Where(m => !f.ModuleAvailable(m)).ToList();
        if (missing.Count == 0)
            return new("vfio", t, Status.Pass, $"available for kernel {f.KernelRelease} (loaded on demand by passthru bind)");
        return new("vfio", t, Status.Fail, $"not available for kernel {f.KernelRelease ?? "(unknown)"}: {string.Join(", ", missing)}",
            "install the modules package of the running kernel (Debian: linux-image-$(uname -r)), or build with CONFIG_VFIO_PCI");
    }

    public static Finding Qemu(HostFacts f)
    {
        const string t = "QEMU";
        var path = Programs.Find(f.Host, "qemu-system-x86_64");
        if (path is null)
            return new("qemu", t, Status.Fail, "qemu-system-x86_64 not found", "install QEMU (Debian/Ubuntu: apt-get install qemu-system-x86; Fedora: dnf install qemu-kvm)");
        if (!f.Host.IsLive) return new("qemu", t, Status.Pass, $"{path} (version not probed in a captured tree)");
        var version = Programs.Run(path, ["--version"], TimeSpan.FromSeconds(30)) is { ExitCode: 0 } r ? QemuVersion(r.Stdout) : null;
        return version is null
            ? new("qemu", t, Status.Warn, $"{path} does not report a version", "reinstall QEMU")
            : new("qemu", t, Status.Pass, $"{path}, version {version}");
    }

    /// <summary>What QEMU's -help says in one start: its version (the first line) and whether it has -sandbox (seccomp).</summary>
    public static (string? Version, bool Sandbox)? ProbeQemu(string qemu) =>
        Programs.Run(qemu, ["-help"], TimeSpan.FromSeconds(30)) is { ExitCode: 0 } r
            ? (QemuVersion(r.Stdout), r.Stdout.Contains("\n-sandbox ", StringComparison.Ordinal)) : null;

    public static string? QemuVersion(string output) => QemuVersionPattern().Match(output) is { Success: true } m ? m.Groups[1].Value : null;

    [GeneratedRegex(@"QEMU emulator version (\d+\.\d+(?:\.\d+)?)")]
    private static partial Regex QemuVersionPattern();

    public static Finding LockedMemory(HostFacts f)
    {
        const string t = "Locked memory limit";
        var limit = f.LockedMemoryLimit();
        if (f.EffectiveUid() == 0)
            return ResourceLimits.MayRaiseHardLimits() || !f.Host.IsLive
                ? new("memlock", t, Status.Pass, "running as root: passthru run raises the limit for each guest's QEMU alone (guest RAM + 1 GiB)")
                : limit is long l && l < MinimumLockedMemoryForGuests
                    ? new("memlock", t, Status.Warn, $"{Mib(l)}, and this root may not raise it (no CAP_SYS_RESOURCE: a container?): QEMU cannot pin guest memory for vfio",
                        "run passthru on the host itself, or raise the container's memlock limit")
                    : new("memlock", t, Status.Pass, $"{(limit == long.MaxValue ? "unlimited" : Mib(limit ?? 0))} (this root may not raise it further)");
        if (limit is null) return new("memlock", t, Status.Warn, "unknown (no /proc/self/limits)", "check `ulimit -l`");
        if (limit == long.MaxValue) return new("memlock", t, Status.Pass, "unlimited");
        return limit >= MinimumLockedMemoryForGuests
            ? new("memlock", t, Status.Pass, $"{Mib(limit.Value)}: guests up to that size can be pinned")
            : new("memlock", t, Status.Warn, $"{Mib(limit.Value)}: vfio pins all guest memory, so larger guests fail to start",
                "raise it: `ulimit -l unlimited` as root, or a memlock line in /etc/security/limits.conf");
    }

    /// <summary>The unprivileged account `passthru run` starts QEMU as (as libvirt's libvirt-qemu).</summary>
    public static Finding QemuUser(HostFacts f)
    {
        const string t = "QEMU user";
        var name = Accounts.DefaultQemuUser;
        return Accounts.Find(f.Host, name) is { } a
            ? a.Uid == 0
                ? new("qemu-user", t, Status.Fail, $"{name} has uid 0: QEMU would run as root", $"make {name} an unprivileged system user (userdel {name}; passthru run creates it again)")
                : new("qemu-user", t, Status.Pass, $"{name} ({a.Ids}): passthru run starts QEMU as it, never as root")
            : new("qemu-user", t, Status.Note, $"{name} does not exist yet: the first passthru run creates it (useradd --system), as the Debian package does",
                $"create it now: adduser --system --group --no-create-home {name}");
    }

    /// <summary>Whether QEMU was built with seccomp: its -help lists -sandbox only then.</summary>
    public static Finding QemuSandbox(HostFacts f)
    {
        const string t = "QEMU sandbox";
        var path = Programs.Find(f.Host, "qemu-system-x86_64");
        if (path is null) return new("sandbox", t, Status.Note, "no QEMU to ask (see the QEMU line)");
        if (!f.Host.IsLive) return new("sandbox", t, Status.Note, "not probed in a captured tree");
        return ProbeQemu(path) is { Sandbox: true }
            ? new("sandbox", t, Status.Pass, "seccomp available: passthru run starts QEMU with -sandbox on (obsolete, elevateprivileges, spawn, resourcecontrol denied)")
            : new("sandbox", t, Status.Warn, $"{path} has no -sandbox (built without seccomp): guests run unsandboxed",
                "install a QEMU built with seccomp (Debian's qemu-system-x86 is)");
    }

    private static string Mib(long bytes) => bytes >= 1 << 20 ? $"{bytes >> 20} MiB" : $"{bytes >> 10} KiB";
}
