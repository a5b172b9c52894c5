using Passthru.Tests.VirtualHost;

namespace Passthru.Tests.Binding;

/// <summary>
/// bind --reset-method against the real kernel: QEMU's NVMe physical function (0000:03:00.0, behind a root port) in
/// the SR-IOV virtual host lists two reset methods, "flr bus". The write is journaled, put back by unbind, and by
/// restore after a run holding it was killed with kill -9. Every test leaves it as it found it.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host with SR-IOV")]
public class VirtualHostResetMethodTests(SriovFixture vm)
{
    private string P => vm.Passthru;
    private const string Pf = "0000:03:00.0";
    private const string Methods = $"/sys/bus/pci/devices/{Pf}/reset_method";

    /// <summary>The PF's reset methods and driver, and whether a journal is left: one line.</summary>
    private string State() => vm.RunOk($"""
        printf '%s / %s' "$(cat {Methods})" "$(basename $(readlink /sys/bus/pci/devices/{Pf}/driver) 2>/dev/null || echo none)"
        test -e /run/passthru/state.json && printf ' / journal'; echo
        """).Trim();

    private void CleanUp() => vm.Run($"{P} restore; echo 'flr bus' > {Methods}; true");

    [Fact]
    public void Bind_sets_the_methods_unbind_puts_them_back_and_kill_9_is_undone_by_restore()
    {
        try
        {
            Assert.Equal("flr bus / nvme", State());
            var bind = vm.Run($"{P} bind {Pf} --reset-method bus");
            Assert.True(bind.ExitCode == 0, bind.ToString());
            // As the README shows it.
            Assert.StartsWith($"bound {Pf} to vfio-pci (was nvme); IOMMU group ", bind.Stdout);
            Assert.EndsWith($"\nreset methods of {Pf}: bus until it is given back\n", bind.Stdout);
            Assert.Equal("bus / vfio-pci / journal", State());
            var unbind = vm.Run($"{P} unbind {Pf}");
            Assert.True(unbind.ExitCode == 0, unbind.ToString());
            Assert.Equal($"gave {Pf} back to nvme\nput {Pf}'s reset methods back: flr bus\n", unbind.Stdout);
            Assert.Equal("flr bus / nvme", State());

            // A method the kernel does not list for it: refused before anything changes.
            var refused = vm.Run($"{P} bind {Pf} --reset-method pm");
            Assert.Equal(2, refused.ExitCode);
            Assert.Equal($"passthru: {Pf} does not offer reset method 'pm' (its reset_method lists: flr bus): give methods it lists\n", refused.Stderr);
            Assert.Equal("flr bus / nvme", State());

            // kill -9 of a run that holds it: the journal still knows the methods it had.
            var killed = vm.RunOk($"""
                {P} run --kernel {vm.Probe} --memory 128 --device {Pf} --reset-method bus --timeout 120 > /dev/null 2>&1 & p=$!
                until pgrep -f '[q]emu-system-x86_64 .* -kernel ' > /dev/null; do kill -0 $p 2>/dev/null || break; sleep 0.1; done
                kill -9 $p && echo killed; sleep 1; cat {Methods}; pkill -KILL -f '[q]emu-system-x86_64 .* -kernel '; sleep 1; true
                """, TimeSpan.FromMinutes(2));
            Assert.Equal("killed\nbus\n", killed);
            var restore = vm.Run($"{P} restore");
            Assert.True(restore.ExitCode == 0, restore.ToString());
            Assert.StartsWith($"gave {Pf} back to nvme\nput {Pf}'s reset methods back: flr bus\n", restore.Stdout);
            Assert.Equal("flr bus / nvme", State());
        }
        finally { CleanUp(); }
    }
}
