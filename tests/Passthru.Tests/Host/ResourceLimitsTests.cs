using System.Diagnostics;
using Passthru.Host;

namespace Passthru.Tests.Host;

/// <summary>The locked-memory limit a child started inside <see cref="ResourceLimits.SetLockedMemoryFor"/> keeps.</summary>
public sealed class ResourceLimitsTests
{
    private static string ChildLimit()
    {
        // A child's own view of its limit, in KiB as ulimit says it (or "unlimited").
        var start = new ProcessStartInfo("sh", ["-c", "echo $(ulimit -S -l) $(ulimit -H -l)"]) { RedirectStandardOutput = true };
        using var child = Process.Start(start)!;
        var line = child.StandardOutput.ReadToEnd().Trim();
        child.WaitForExit();
        return line;
    }

    private static string Kib(ulong bytes) => bytes == ResourceLimits.Infinity ? "unlimited" : (bytes >> 10).ToString(System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void A_child_started_inside_the_scope_keeps_the_limit_and_the_process_gets_its_own_back()
    {
        // Below the hard limit, which only CAP_SYS_RESOURCE could raise again: the test process keeps its own.
        var (soft, hard) = ResourceLimits.LockedMemory();
        var lower = Math.Min(soft, 1UL << 30) / 2 & ~1023UL;   // (unlimited is ulong.MaxValue)
        Assert.Equal($"{Kib(soft)} {Kib(hard)}", ChildLimit());
        string inside;
        using (ResourceLimits.SetLockedMemoryFor((lower, hard))) inside = ChildLimit();
        Assert.Equal($"{Kib(lower)} {Kib(hard)}", inside);
        Assert.Equal((soft, hard), ResourceLimits.LockedMemory());
        Assert.Equal($"{Kib(soft)} {Kib(hard)}", ChildLimit());
    }

    [Fact]
    public void Above_the_ceiling_it_needs_the_right_to_raise_it_and_without_it_the_refusal_is_one_line_and_changes_nothing()
    {
        var (soft, hard) = ResourceLimits.LockedMemory();
        if (hard == ResourceLimits.Infinity) return; // no ceiling to go above
        var above = hard + (1UL << 20);
        if (ResourceLimits.MayRaiseHardLimits())
        {
            // Root with CAP_SYS_RESOURCE (the virtual host's runs): raised for the scope, and the old ceiling comes back.
            using (ResourceLimits.SetLockedMemoryFor((above, above))) Assert.Equal((above, above), ResourceLimits.LockedMemory());
        }
        else
        {
            var e = Assert.Throws<UserError>(() => ResourceLimits.SetLockedMemoryFor((above, above)));
            Assert.Equal($"cannot set the locked-memory limit to {above >> 20} MiB for QEMU (Operation not permitted): vfio pins the guest's memory; run as root with CAP_SYS_RESOURCE", e.Message);
        }
        Assert.Equal((soft, hard), ResourceLimits.LockedMemory());
    }
}
