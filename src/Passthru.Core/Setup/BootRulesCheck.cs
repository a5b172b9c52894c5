using Passthru.Check;
using Passthru.Host;

namespace Passthru.Setup;

/// <summary>
/// `check`'s look at the udev rules an earlier `passthru setup` wrote: a rule from an older release claims devices less
/// reliably at boot (before 2026-12-04 it probed only a function a driver held, and let the PF's driver probe a VF
/// named by address first), and nothing else says so until a device comes up without vfio-pci. Here, not in Check:
/// it asks setup's own planner what it would write now, so it can never disagree with `setup --apply`.
/// </summary>
public static class BootRulesCheck
{
    public const string Id = "boot-rules";

    /// <summary>Null on a host where setup wrote no udev rule.</summary>
    public static Finding? Run(HostRoot host)
    {
        string[] rules = [ModuleFiles.UdevRules, ModuleFiles.SriovRules];
        var written = rules.Where(host.Exists).ToList();
        if (written.Count == 0) return null;
        const string title = "Boot-time udev rules";
        IReadOnlyList<FileChange> changes;
        // The decisions of a `setup` that names nothing: the planner keeps every device and count the files hold.
        try { changes = ModuleFiles.Plan(host, new SetupDecisions { Vendor = IommuVendor.Intel }); } // (the vendor matters only to kernel parameters)
        catch (UserError e)
        {
            return new(Id, title, Status.Warn, e.Message, "fix or remove the file, then run passthru setup --apply with the devices it should claim");
        }
        var stale = changes.Where(c => rules.Contains(c.Path) && c.Before is not null).Select(c => host.Path(c.Path)).ToList();
        if (stale.Count == 0)
            return new(Id, title, Status.Pass, $"{string.Join(", ", written.Select(host.Path))}: as this release of passthru setup writes {(written.Count == 1 ? "it" : "them")}");
        return new(Id, title, Status.Warn,
            $"{string.Join(", ", stale)}: written by an older passthru setup, whose rule can leave a device it names without vfio-pci at boot",
            $"passthru setup --apply rewrites {(stale.Count == 1 ? "it" : "them")}, keeping its devices (passthru setup shows the change first)");
    }
}
