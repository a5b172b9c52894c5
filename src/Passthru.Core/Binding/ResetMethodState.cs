using System.Text.RegularExpressions;
using Passthru.Pci;

namespace Passthru.Binding;

/// <summary>A function whose reset_method Passthru changed, and the methods it listed before (what give-back writes).</summary>
public sealed partial record ResetMethodState(PciAddress Function, string Original)
{
    public static string PathOf(PciAddress a) => $"sys/bus/pci/devices/{a}/reset_method";

    /// <summary>
    /// A reset_method value as the kernel lists it: method names (lower case and '_') separated by one space. What the
    /// journal may hold, since restore writes it as root.
    /// </summary>
    public static bool IsMethodList(string value) => value.Length <= 200 && MethodList().IsMatch(value);

    [GeneratedRegex("^[a-z_]{1,32}( [a-z_]{1,32})*$")]
    private static partial Regex MethodList();
}
