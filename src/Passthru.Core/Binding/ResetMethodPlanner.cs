using Passthru.Host;
using Passthru.Pci;

namespace Passthru.Binding;

/// <summary>
/// --reset-method: which reset methods the kernel may use on a function while Passthru holds it, written into its
/// reset_method and put back when it is given back. The case it is for: a GPU of vendor-reset's table, which needs
/// device_specific first (the AMD reset bug).
/// </summary>
public static class ResetMethodPlanner
{
    /// <summary>The kernel's reset method names (drivers/pci/pci.c, pci_reset_fn_methods).</summary>
    public static readonly IReadOnlyList<string> KnownMethods = ["device_specific", "acpi", "flr", "af_flr", "pm", "bus", "cxl_bus"];

    /// <summary>--reset-method's value: METHOD[,METHOD...], each a method the kernel knows, none twice.</summary>
    public static IReadOnlyList<string> ParseOption(string text, string option = "--reset-method")
    {
        var methods = text.Split(',').Select(m => m.Trim()).ToList();
        foreach (var m in methods)
            if (!KnownMethods.Contains(m))
                throw new UserError($"{option} {Shown.Value(text)}: '{Shown.Value(m)}' is not a reset method (the kernel's are {string.Join(", ", KnownMethods)})", ExitCodes.Usage);
        if (methods.Distinct().Count() != methods.Count) throw new UserError($"{option} {Shown.Value(text)}: a method is named twice", ExitCodes.Usage);
        return methods;
    }

    /// <summary>
    /// The writes for the named functions, refused in one line when a function has no reset_method or does not list a
    /// method. The one exception: device_specific on a GPU of vendor-reset's table while vendor_reset is loaded, which
    /// the kernel lists only once it is written (the kernel probed the methods before vendor-reset hooked it).
    /// </summary>
    public static IEnumerable<BindStep> Steps(HostRoot host, IReadOnlyList<PciDevice> functions, IReadOnlyList<string> methods, string verb)
    {
        var steps = new List<BindStep>();
        bool vendorReset = host.DirectoryExists($"sys/module/{ResetQuirks.Module}");
        foreach (var d in functions)
        {
            if (d.ResetMethods is not { } listed)
                throw new UserError($"{d.Address} has no reset_method (a kernel older than 5.15, or a function with no reset at all): nothing to set; {verb} it without --reset-method", ExitCodes.Usage);
            foreach (var m in methods)
            {
                if (listed.Contains(m)) continue;
                if (m == ResetQuirks.DeviceSpecific && vendorReset && ResetQuirks.Find(d) is not null) continue;
                var hint = m == ResetQuirks.DeviceSpecific && ResetQuirks.Find(d) is not null
                    ? $": load vendor-reset first (modprobe {ResetQuirks.Module})" : ": give methods it lists";
                throw new UserError($"{d.Address} does not offer reset method '{m}' (its reset_method lists: {(listed.Count == 0 ? "none" : string.Join(" ", listed))}){hint}", ExitCodes.Usage);
            }
            if (listed.SequenceEqual(methods)) continue; // already so: nothing to write or put back
            steps.Add(new SetResetMethod(d.Address, methods));
        }
        return steps;
    }

    /// <summary>
    /// The reset methods to put back once <paramref name="leaving"/> are given back (or their claim ends): those of
    /// functions leaving, and of functions the journal no longer holds (set on a function an earlier bind had not moved).
    /// </summary>
    public static IEnumerable<BindStep> PutBacks(Journal journal, IReadOnlyList<PciAddress> leaving)
    {
        foreach (var r in journal.ResetMethods)
            if (leaving.Contains(r.Function) || journal.Find(r.Function) is null)
                yield return new PutBackResetMethod(r.Function, r.Original);
    }
}
