namespace Passthru.Host;

/// <summary>
/// Whether vfio will let a guest use a device on this host's IOMMU. vfio_iommu_type1 refuses to set up a container
/// (QEMU: "Failed to set iommu for container: Operation not permitted") when the IOMMU does not remap interrupts,
/// unless its allow_unsafe_interrupts parameter is set: then a guest's device can write MSI messages that the host
/// takes as its own interrupts. Passthru never sets it unasked; it stops before changing anything and names the opt-in.
/// In Host, beside <see cref="HostFacts"/>, because check reports it, bind and run refuse by it, and QEMU's failures are
/// explained with it: it is read from the kernel only (no PCI model), so it sits below all of them.
/// </summary>
public sealed class InterruptSafety
{
    public const string ParameterPath = "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";
    public const string KernelParameter = "vfio_iommu_type1.allow_unsafe_interrupts";
    public const string Risk = "a guest's device can then forge MSI interrupts against the host, so allow it only for guests you trust";

    private readonly Lazy<string?> _allowedBy;

    private InterruptSafety(bool? remapping, HostFacts facts)
    {
        Remapping = remapping;
        // Asked for only where it can matter: on a host that remaps interrupts (the usual case) bind and run never
        // read it, and finding it means listing and reading every modprobe.d file.
        _allowedBy = new(() => AllowedByWhat(facts), LazyThreadSafetyMode.None);
    }

    /// <summary>Whether the IOMMU remaps interrupts (the command line included); null when unknown.</summary>
    public bool? Remapping { get; }

    /// <summary>What allows unsafe interrupts, said for users; null when nothing does.</summary>
    public string? AllowedBy => _allowedBy.Value;

    public bool Allowed => AllowedBy is not null;

    /// <summary>vfio will refuse every device: remapping is known to be off and nothing allows unsafe interrupts.</summary>
    public bool Blocks => Remapping == false && !Allowed;

    public static InterruptSafety Of(HostFacts f) => new(f.InterruptRemapping(), f);

    /// <summary>What allows unsafe interrupts, said for users; null when nothing does.</summary>
    private static string? AllowedByWhat(HostFacts f)
    {
        // Loaded (or built in), the module's own parameter is the truth; options elsewhere only apply at load time.
        if (f.Host.ReadAttribute(ParameterPath) is string value) return IsTrue(value) ? $"/{ParameterPath} is {value}" : null;
        if (f.KernelParameter(KernelParameter) is string p && IsTrue(p)) return $"{KernelParameter}={p} on the kernel command line";
        if (f.ModprobeOption("vfio_iommu_type1", "allow_unsafe_interrupts") is var (file, v) && IsTrue(v))
            return $"options vfio_iommu_type1 allow_unsafe_interrupts={v} in /{file}";
        return null;
    }

    /// <summary>The kernel's bool parameters (kstrtobool): y, Y, 1 and on are true.</summary>
    public static bool IsTrue(string value) => value.Trim() is "1" or "Y" or "y" or "on" or "yes";

    /// <summary>The one line that stops bind and run, with the cause, the risk and the opt-in.</summary>
    public static string Refusal(string verb) =>
        "this host's IOMMU does not remap interrupts, and vfio refuses devices until unsafe interrupts are allowed "
        + $"({KernelParameter}): {Risk}. To allow them: passthru {verb} --allow-unsafe-interrupts (undone when the devices are given back), "
        + "or passthru setup --allow-unsafe-interrupts (from the next boot on); nothing was changed";
}
