using System.Globalization;

namespace Passthru.Host;

/// <summary>
/// The host facts readiness depends on, each read through the host root. In Host rather than Check: check reports
/// them, but bind, run and setup decide by them too (interrupt remapping, modules, the kernel command line), and they
/// need nothing above Host, so every room can ask without depending on Check.
/// </summary>
public sealed class HostFacts(HostRoot host)
{
    public HostRoot Host { get; } = host;

    private string? _cpuinfo;
    private string? Cpuinfo => _cpuinfo ??= Host.ReadText("proc/cpuinfo");

    public string? CpuVendor => CpuinfoField("vendor_id");

    /// <summary>The flags of the first processor; every processor of a host has the same.</summary>
    public IReadOnlySet<string> CpuFlags =>
        (CpuinfoField("flags") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);

    private string? CpuinfoField(string name)
    {
        foreach (var line in (Cpuinfo ?? "").Split('\n'))
        {
            int colon = line.IndexOf(':');
            if (colon > 0 && line[..colon].Trim() == name) return line[(colon + 1)..].Trim();
        }
        return null;
    }

    public bool IsIntel => CpuVendor == "GenuineIntel";
    public bool IsAmd => CpuVendor is "AuthenticAMD" or "HygonGenuine";

    /// <summary>
    /// Whose IOMMU this is, which decides the kernel parameter: the ACPI table says (DMAR: Intel VT-d, IVRS: AMD-Vi);
    /// without either, the CPU vendor is the best guess. (Under QEMU's emulation an AMD-flavoured CPU can sit beside
    /// an emulated Intel IOMMU, so the CPU alone is not enough.)
    /// </summary>
    public bool IommuIsAmd => HasAcpiTable("IVRS") || (!HasAcpiTable("DMAR") && IsAmd);

    private string[]? _cmdline;

    /// <summary>Read once per command: bind asks for several parameters of it (interrupt remapping, unsafe interrupts).</summary>
    public IReadOnlyList<string> KernelCmdline =>
        _cmdline ??= (Host.ReadAttribute("proc/cmdline") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The value of a kernel parameter (the last one wins, as in the kernel), "" for a flag, null when absent.</summary>
    public string? KernelParameter(string name)
    {
        string? value = null;
        foreach (var p in KernelCmdline)
        {
            if (p == "--") break; // what follows goes to init, not to the kernel
            if (p == name) value = "";
            else if (p.StartsWith(name + "=", StringComparison.Ordinal)) value = p[(name.Length + 1)..];
        }
        return value;
    }

    public string? KernelRelease => Host.ReadAttribute("proc/sys/kernel/osrelease");

    public bool ModuleLoaded(string name) => Host.DirectoryExists("sys/module/" + name.Replace('-', '_'));

    /// <summary>Whether the running kernel can load a module: built in, or listed in modules.dep.</summary>
    public bool ModuleAvailable(string name)
    {
        if (KernelRelease is not string release) return false;
        var file = name.Replace('_', '-');
        var under = name.Replace('-', '_');
        foreach (var list in new[] { "modules.builtin", "modules.dep" })
        {
            var text = Host.ReadText($"lib/modules/{release}/{list}");
            if (text is null) continue;
            foreach (var line in text.Split('\n'))
            {
                var path = line.Split(':', 2)[0];
                var base_ = path[(path.LastIndexOf('/') + 1)..];
                int ko = base_.IndexOf(".ko", StringComparison.Ordinal);
                if (ko < 0) continue;
                var mod = base_[..ko];
                if (mod == file || mod == under) return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Whether a module is built into the running kernel: its /sys/module directory has no initstate (only a
    /// loadable module has one), or modules.builtin lists it. A built-in driver binds its devices while the kernel
    /// starts, before any module loads.
    /// </summary>
    public bool ModuleBuiltIn(string name)
    {
        var under = name.Replace('-', '_');
        if (Host.DirectoryExists("sys/module/" + under)) return !Host.Exists($"sys/module/{under}/initstate");
        if (KernelRelease is not string release || Host.ReadText($"lib/modules/{release}/modules.builtin") is not { } builtin) return false;
        foreach (var line in builtin.Split('\n'))
        {
            var base_ = line[(line.LastIndexOf('/') + 1)..];
            int ko = base_.IndexOf(".ko", StringComparison.Ordinal);
            if (ko > 0 && base_[..ko].Replace('-', '_') == under) return true;
        }
        return false;
    }

    public bool HasAcpiTable(string signature) => Host.Exists("sys/firmware/acpi/tables/" + signature);

    /// <summary>DMAR flags bit 0 (INTR_REMAP): the platform supports interrupt remapping. Null when unreadable.</summary>
    public bool? DmarSupportsInterruptRemapping()
    {
        var table = Host.ReadBytes("sys/firmware/acpi/tables/DMAR", 64);
        return table is { Length: > 37 } ? (table[37] & 1) != 0 : null;
    }

    public IReadOnlyList<string> IommuUnits => Host.List("sys/class/iommu");

    /// <summary>Intel units report interrupt remapping in ecap bit 3 (IR).</summary>
    public bool? IntelUnitsSupportInterruptRemapping()
    {
        bool? all = null;
        foreach (var unit in IommuUnits)
        {
            var ecap = Host.ReadAttribute($"sys/class/iommu/{unit}/intel-iommu/ecap");
            if (ecap is null || !ulong.TryParse(ecap, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var bits)) continue;
            all = (all ?? true) && (bits & 0x8) != 0;
        }
        return all;
    }

    /// <summary>
    /// Whether the kernel remaps interrupts through the IOMMU: false when the command line turns it off or the IOMMU
    /// cannot (Intel: every unit's ecap IR bit, else the DMAR table's INTR_REMAP flag); AMD-Vi always can. Null: unknown.
    /// </summary>
    public bool? InterruptRemapping() => InterruptRemappingOffOnCmdline ? false : IommuCanRemapInterrupts();

    /// <summary>intremap=off (or nosid) or nointremap on the running kernel's command line.</summary>
    public bool InterruptRemappingOffOnCmdline => KernelParameter("intremap") is "off" or "nosid" || KernelParameter("nointremap") is not null;

    /// <summary>Whether the IOMMU hardware can remap interrupts, whatever the command line says. Null: unknown.</summary>
    public bool? IommuCanRemapInterrupts() =>
        IntelUnitsSupportInterruptRemapping() ?? DmarSupportsInterruptRemapping() ?? (HasAcpiTable("IVRS") ? true : null); // every AMD-Vi IOMMU can

    /// <summary>
    /// An "options MODULE NAME=VALUE" setting in the modprobe configuration (modprobe.d(5): the first file of a name
    /// wins, /etc over /run over /lib; within the files, the last setting counts): the file and the value, or null.
    /// </summary>
    public (string File, string Value)? ModprobeOption(string module, string name)
    {
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var dir in new[] { "lib/modprobe.d", "usr/lib/modprobe.d", "run/modprobe.d", "etc/modprobe.d" })
            foreach (var f in Host.List(dir))
                if (f.EndsWith(".conf", StringComparison.Ordinal)) files[f] = $"{dir}/{f}";
        (string, string)? found = null;
        var normal = module.Replace('-', '_');
        foreach (var path in files.Values)
            foreach (var line in (Host.ReadText(path) ?? "").Split('\n'))
            {
                var words = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                if (words.Length < 3 || words[0] != "options" || words[1].Replace('-', '_') != normal) continue;
                foreach (var w in words.Skip(2))
                    if (w.StartsWith(name + "=", StringComparison.Ordinal)) found = (path, w[(name.Length + 1)..]);
            }
        return found;
    }

    public int IommuGroupCount => Host.List("sys/kernel/iommu_groups").Length;

    /// <summary>Soft limit from proc/self/limits, in bytes; long.MaxValue for unlimited; null when unknown.</summary>
    public long? LockedMemoryLimit()
    {
        foreach (var line in (Host.ReadText("proc/self/limits") ?? "").Split('\n'))
        {
            if (!line.StartsWith("Max locked memory", StringComparison.Ordinal)) continue;
            var fields = line["Max locked memory".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 0) return null;
            if (fields[0] == "unlimited") return long.MaxValue;
            return long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : null;
        }
        return null;
    }

    /// <summary>Effective user ID from proc/self/status; root (or CAP_IPC_LOCK) is exempt from the memlock limit.</summary>
    public int? EffectiveUid()
    {
        foreach (var line in (Host.ReadText("proc/self/status") ?? "").Split('\n'))
            if (line.StartsWith("Uid:", StringComparison.Ordinal))
            {
                var f = line[4..].Split('\t', ' ').Where(x => x.Length > 0).ToArray();
                return f.Length > 1 && int.TryParse(f[1], CultureInfo.InvariantCulture, out var uid) ? uid : null;
            }
        return null;
    }
}
