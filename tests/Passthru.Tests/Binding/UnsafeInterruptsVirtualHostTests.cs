using Passthru.Binding;
using Passthru.Host;
using Passthru.Tests.VirtualHost;

namespace Passthru.Tests.Binding;

/// <summary>
/// A host whose IOMMU does not remap interrupts (the virtual host with intel-iommu,intremap=off), against the real
/// kernel: vfio_iommu_type1 refuses such devices (QEMU: "Failed to set iommu for container: Operation not
/// permitted") unless allow_unsafe_interrupts is set. Passthru stops before changing anything, sets it only when asked,
/// journaled, and puts it back when the devices are given back, also after kill -9 and `restore`.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host without interrupt remapping")]
public class UnsafeInterruptsVirtualHostTests(NoInterruptRemappingFixture vm)
{
    private string P => vm.Passthru;
    private const string Param = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";
    private const string Drv = "basename $(readlink /sys/bus/pci/devices/0000:00:02.0/driver)";

    /// <summary>The parameter as the kernel has it now ("absent" while vfio_iommu_type1 is not loaded).</summary>
    private string ParameterNow() => vm.RunOk($"cat {Param} 2>/dev/null || echo absent").Trim();

    private void AssertNoJournal() =>
        Assert.Equal("no journal", vm.RunOk("test -e /run/passthru/state.json && echo journal || echo no journal").Trim());

    /// <summary>Back to how the virtual host booted: devices on their drivers, the parameter off, no journal.</summary>
    private void Reset()
    {
        vm.Run($"pkill -KILL -x qemu-system-x86; {P} restore; [ -e {Param} ] && echo N > {Param}; rm -rf /run/passthru /etc/kernel/cmdline /var/lib/passthru; true");
    }

    /// <summary>The refusal, written out here: the expectation is not computed by the code under test.</summary>
    private static string Refusal(string verb) =>
        "passthru: this host's IOMMU does not remap interrupts, and vfio refuses devices until unsafe interrupts are allowed "
        + "(vfio_iommu_type1.allow_unsafe_interrupts): a guest's device can then forge MSI interrupts against the host, so allow it only for guests you trust. "
        + $"To allow them: passthru {verb} --allow-unsafe-interrupts (undone when the devices are given back), "
        + "or passthru setup --allow-unsafe-interrupts (from the next boot on); nothing was changed\n";

    [Fact]
    public void Check_says_vfio_needs_unsafe_interrupts_and_when_they_are_allowed()
    {
        try
        {
            var check = vm.Run($"{P} check").Stdout;
            Assert.Contains("WARN  Interrupt remapping     the IOMMU does not remap interrupts: vfio refuses devices until unsafe interrupts are allowed\n", check);
            Assert.Contains("fix: passthru run --allow-unsafe-interrupts (for one run) or passthru setup --allow-unsafe-interrupts (for good)", check);
            vm.RunOk($"modprobe vfio_iommu_type1 && echo Y > {Param}");
            check = vm.Run($"{P} check").Stdout;
            Assert.Contains($"WARN  Interrupt remapping     the IOMMU does not remap interrupts; unsafe interrupts are allowed ({Param} is Y): passthrough works, and that is a trust decision\n", check);
            Assert.Contains("fix: pass devices only to guests you trust: a guest's device can forge interrupts (MSI) against the host", check);
        }
        finally { Reset(); }
    }

    [Theory]
    [InlineData("run", "run --kernel {probe} --memory 128 --device 0000:00:02.0 --timeout 60")]
    [InlineData("bind", "bind 0000:00:02.0")]
    public void Run_and_bind_stop_with_the_cause_the_risk_and_the_opt_in_before_changing_anything(string verb, string args)
    {
        try
        {
            var r = vm.Run($"{P} {args.Replace("{probe}", vm.Probe)}");
            Assert.True(r.ExitCode == 1, r.ToString());
            Assert.Equal(Refusal(verb), r.Stderr);
            Assert.Contains("does not remap interrupts", r.Stderr);
            Assert.Contains("forge MSI interrupts against the host", r.Stderr);
            Assert.Equal("e1000e", vm.RunOk(Drv).Trim());
            AssertNoJournal();
            Assert.NotEqual("Y", ParameterNow());
        }
        finally { Reset(); }
    }

    [Fact]
    public void The_opt_in_run_gives_the_guest_the_device_and_puts_the_parameter_back()
    {
        try
        {
            var plan = vm.RunOk($"{P} run --kernel {vm.Probe} --memory 128 --device 0000:00:02.0 --allow-unsafe-interrupts --dry-run");
            Assert.Contains("warning: allowing unsafe interrupts (--allow-unsafe-interrupts): this IOMMU does not remap interrupts", plan);
            Assert.Contains($"write Y > {Param} (put back when 0000:00:02.0 is given back)", plan);

            var r = vm.Run($"{P} run --kernel {vm.Probe} --memory 128 --device 0000:00:02.0 --allow-unsafe-interrupts --expect 'pci 01:00.0 8086:10d3' --timeout 120",
                TimeSpan.FromMinutes(4));
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains("probe: pci 01:00.0 8086:10d3 class 0200", r.Stdout);
            Assert.Contains($"[passthru] allowed unsafe interrupts ({Param}) until the guest ends", r.Stderr);
            Assert.Contains("[passthru] gave 0000:00:02.0 back to e1000e", r.Stderr);
            Assert.Contains($"[passthru] put N back into {Param}", r.Stderr);
            Assert.Equal("N", ParameterNow());
            Assert.Equal("e1000e", vm.RunOk(Drv).Trim());
            AssertNoJournal();
        }
        finally { Reset(); }
    }

    [Fact]
    public void After_kill_9_of_the_run_restore_gives_the_device_and_the_parameter_back()
    {
        try
        {
            var killed = vm.RunOk($"""
                {P} run --kernel {vm.Probe} --memory 128 --device 0000:00:02.0 --allow-unsafe-interrupts --timeout 120 > /dev/null 2>&1 & p=$!
                until pgrep -f '[q]emu-system-x86_64 .* -kernel ' > /dev/null; do kill -0 $p 2>/dev/null || break; sleep 0.1; done
                kill -9 $p && echo killed; sleep 1; cat {Param}; pkill -KILL -x qemu-system-x86; true
                """);
            Assert.Equal("killed\nY\n", killed);
            var restore = vm.Run($"{P} restore");
            Assert.True(restore.ExitCode == 0, restore.ToString());
            // The group node the killed run handed to QEMU's user comes back too (#24).
            Assert.Equal($"gave 0000:00:02.0 back to e1000e\nput N back into {Param}\ngave /dev/vfio/2 back to root:root, mode 0600\n", restore.Stdout);
            Assert.Equal("N", ParameterNow());
            Assert.Equal("e1000e", vm.RunOk(Drv).Trim());
            AssertNoJournal();
        }
        finally { Reset(); }
    }

    [Fact]
    public void Bind_with_the_opt_in_keeps_the_parameter_until_the_device_is_given_back()
    {
        try
        {
            var bind = vm.RunOk($"{P} bind 0000:00:02.0 --allow-unsafe-interrupts");
            Assert.Contains($"allowed unsafe interrupts: {Param} is Y until 0000:00:02.0 is given back", bind);
            Assert.Equal("Y", ParameterNow());
            // A run of the already-bound device needs no opt-in now: the host allows them.
            var r = vm.Run($"{P} run --kernel {vm.Probe} --memory 128 --device 0000:00:02.0 --expect 'pci 01:00.0 8086:10d3' --timeout 120", TimeSpan.FromMinutes(4));
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Equal("Y", ParameterNow());
            Assert.Equal($"gave 0000:00:02.0 back to e1000e\nput N back into {Param}\n", vm.RunOk($"{P} unbind 0000:00:02.0"));
            Assert.Equal("N", ParameterNow());
        }
        finally { Reset(); }
    }

    [Fact]
    public void Setup_makes_it_permanent_only_when_asked_and_undo_removes_it()
    {
        try
        {
            var plan = vm.RunOk($"{P} setup --boot-loader kernel-install");
            Assert.Contains("this IOMMU does not remap interrupts, so vfio refuses every device until unsafe interrupts are allowed: passthru setup --allow-unsafe-interrupts adds", plan);
            Assert.DoesNotContain("add vfio_iommu_type1.allow_unsafe_interrupts=1", plan);

            plan = vm.RunOk($"{P} setup --boot-loader kernel-install --allow-unsafe-interrupts");
            Assert.Contains("  add vfio_iommu_type1.allow_unsafe_interrupts=1: vfio may use devices although this IOMMU does not remap interrupts", plan);
            Assert.Contains("+console=ttyS0 intel_iommu=on quiet panic=-1 no_timer_check vfio_iommu_type1.allow_unsafe_interrupts=1", plan);

            vm.RunOk($"{P} setup --boot-loader kernel-install --allow-unsafe-interrupts --apply");
            Assert.Equal("console=ttyS0 intel_iommu=on quiet panic=-1 no_timer_check vfio_iommu_type1.allow_unsafe_interrupts=1\n", vm.RunOk("cat /etc/kernel/cmdline"));
            vm.RunOk($"{P} setup --undo");
            Assert.Equal("gone", vm.RunOk("test -e /etc/kernel/cmdline && echo left || echo gone").Trim());
        }
        finally { Reset(); }
    }

    [Fact]
    public void When_qemu_is_refused_anyway_run_explains_it_before_qemus_message()
    {
        try
        {
            // Allowed for the bind, then taken back by hand: QEMU meets the kernel's refusal (past run's preflight,
            // since the device comes in extra QEMU arguments).
            var r = vm.Run($"""
                {P} bind 00:02.0 --allow-unsafe-interrupts > /dev/null && echo N > {Param}
                {P} run --kernel {vm.Probe} --memory 128 --timeout 60 -- -device pcie-root-port,id=x9,chassis=9 -device vfio-pci,host=0000:00:02.0,bus=x9; echo "exit $?"
                """, TimeSpan.FromMinutes(3));
            Assert.Contains("exit 1", r.Stdout.Split('\n')); // the whole line: not exit 124, 130 or 137
            Assert.Contains("passthru: why QEMU failed: the IOMMU does not remap interrupts and vfio_iommu_type1 does not allow unsafe interrupts, so vfio refused the device; "
                + "fix: passthru run --allow-unsafe-interrupts (for this run) or passthru setup --allow-unsafe-interrupts (for good)", r.Stderr);
            Assert.Contains("qemu-system-x86_64: -device vfio-pci,host=0000:00:02.0,bus=x9: vfio 0000:00:02.0: failed to setup container for group 2: Failed to set iommu for container: Operation not permitted\n", r.Stderr);
        }
        finally { Reset(); }
    }
}
