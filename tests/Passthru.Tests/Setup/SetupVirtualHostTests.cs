using Passthru.Tests.VirtualHost;

namespace Passthru.Tests.Setup;

/// <summary>
/// `passthru setup` on the virtual host's live root ("/" inside it: this machine's root under a tmpfs overlay, so
/// nothing reaches the real machine), against its real kernel's sysfs. The boot with the generated configuration is
/// <see cref="SetupBootTests"/>: the virtual host boots one fixed command line.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host")]
public class SetupVirtualHostTests(VirtualHostFixture vm)
{
    private const string Files = "/etc/kernel/cmdline /etc/modules-load.d/passthru.conf /etc/modprobe.d/passthru.conf /etc/udev/rules.d/40-passthru-vfio-pci.rules /var/lib/passthru/setup.json";

    [Fact]
    public void Not_root_on_a_live_root_stops_before_changing_anything()
    {
        var r = vm.Run($"setpriv --reuid=65534 --regid=65534 --clear-groups {vm.Passthru} setup --boot-loader kernel-install --device 00:03.0 --apply");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Equal("passthru: passthru setup --apply changes the boot configuration of this host: run it as root (sudo passthru setup ...); nothing was changed\n", r.Stderr);
        Assert.Equal("", vm.RunOk($"ls {Files} 2>/dev/null; true"));
    }

    [Fact]
    public void Apply_and_undo_on_the_live_root_of_a_real_kernel()
    {
        try
        {
            // Read from the real sysfs: the twin e1000e at 00:02.0, e1000e's module link, the DMAR unit's remapping.
            var plan = vm.RunOk($"{vm.Passthru} setup --boot-loader kernel-install --device 00:03.0");
            Assert.Contains("Note: 0000:00:03.0 shares IDs 8086:10d3 with 0000:00:02.0: it is claimed by address", plan);
            Assert.Contains("+softdep e1000e pre: vfio-pci\n", plan);
            Assert.DoesNotContain("allow_unsafe_interrupts", plan);
            Assert.DoesNotContain("Kernel parameters:", plan); // intel_iommu=on is already on its command line

            var apply = vm.RunOk($"{vm.Passthru} setup --boot-loader kernel-install --device 00:03.0 --apply");
            Assert.Contains("recorded in var/lib/passthru/setup.json", apply);
            Assert.Equal("console=ttyS0 intel_iommu=on quiet panic=-1 no_timer_check\n", vm.RunOk("cat /etc/kernel/cmdline"));
            Assert.Contains("Nothing to change", vm.RunOk($"{vm.Passthru} setup --boot-loader kernel-install --device 00:03.0"));

            var undo = vm.RunOk($"{vm.Passthru} setup --undo");
            Assert.Contains("removed etc/kernel/cmdline", undo);
            Assert.Equal("", vm.RunOk($"ls {Files} 2>/dev/null; true"));
        }
        finally
        {
            // Leave the virtual host as the other tests expect it, whatever happened above.
            vm.Run($"rm -f {Files}; rm -rf /var/lib/passthru");
        }
    }
}
