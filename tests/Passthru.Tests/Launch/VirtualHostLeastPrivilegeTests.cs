using Passthru.Tests.VirtualHost;
using Xunit.Abstractions;

namespace Passthru.Tests.Launch;

/// <summary>
/// Least privilege against the real kernel (#24): in the virtual host, `passthru run` as root starts QEMU as
/// passthru-qemu under seccomp, the vfio group node is that user's only while the guest holds it (after a normal end,
/// and after kill -9 of QEMU and of the run followed by `guests`/`restore`), hot-plug hands the new group over before
/// device_add, an unreadable kernel is refused before anything is bound, and --as-root says what it costs. The Linux
/// guest's DHCP lease over the passed NIC under the unprivileged QEMU is in RealGuestTests.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host")]
public class VirtualHostLeastPrivilegeTests(VirtualHostFixture vm, ITestOutputHelper output)
{
    private string P => vm.Passthru;
    private string Driver(string address) => vm.RunOk($"basename $(readlink /sys/bus/pci/devices/{address}/driver)").Trim();
    private string Node(int group) => vm.RunOk($"stat -c '%U:%G %a' /dev/vfio/{group}").Trim();
    private string QemuPid => vm.RunOk($"{P} guests --json | sed -n 's/.*\"qemu_pid\": \\([0-9]*\\).*/\\1/p' | head -n 1").Trim();

    private void StartProbe(string name, string options)
    {
        vm.RunOk($"({P} run --kernel {vm.Probe} --memory 64 --name {name} {options} > /tmp/{name}.out 2>&1 &)");
        vm.RunOk($"for i in $(seq 300); do [ -S /run/passthru/guests/{name}.qmp ] && exit 0; sleep 0.5; done; cat /tmp/{name}.out; exit 1", TimeSpan.FromMinutes(4));
    }

    private void CleanUp() => vm.Run($"pkill -9 -f '[q]emu-system-x86_64'; pkill -9 -f '[p]assthru run'; sleep 2; {P} guests; {P} restore");

    [Fact]
    public void Qemu_runs_as_its_own_user_under_seccomp_and_owns_the_group_node_only_while_the_guest_holds_it()
    {
        try
        {
            // Bound first, so the node outlives the run and its owner after it can be seen.
            vm.RunOk($"{P} bind 00:02.0");
            Assert.Equal("root:root 600", Node(2));
            StartProbe("lp1", "--device 00:02.0");
            vm.RunOk("for i in $(seq 240); do grep -q 'probe: done' /tmp/lp1.out && exit 0; sleep 0.5; done; cat /tmp/lp1.out; exit 1", TimeSpan.FromMinutes(3));
            var pid = QemuPid;
            var status = vm.RunOk($"grep -E '^(Uid|Gid|Groups|Seccomp|NoNewPrivs|Cap[A-Za-z]+):' /proc/{pid}/status");
            var uid = vm.RunOk("id -u passthru-qemu").Trim();
            var gid = vm.RunOk("id -g passthru-qemu").Trim();
            Assert.Contains($"Uid:\t{uid}\t{uid}\t{uid}\t{uid}", status);
            Assert.Contains($"Gid:\t{gid}\t{gid}\t{gid}\t{gid}", status);
            Assert.NotEqual("0", uid);
            Assert.Contains("Seccomp:\t2", status);
            Assert.Contains("NoNewPrivs:\t1", status);
            // The drop, done in QEMU's process before its exec (spawn.c): setpriv's --clear-groups --inh-caps=-all
            // --bounding-set=-all --no-new-privs, nothing left in any capability set.
            foreach (var set in new[] { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" }) Assert.Contains($"{set}:\t0000000000000000", status);
            var kvm = vm.Run("getent group kvm | cut -d: -f3").Stdout.Trim(); // kept only when QEMU uses KVM
            Assert.Matches($@"(?m)^Groups:\s*({kvm})?\s*$", status);
            // The limit vfio needs, for this process alone: 64 MiB of guest RAM + 1 GiB; the run's own stays as it was.
            Assert.Matches(@"Max locked memory +1140850688 +1140850688 +bytes", vm.RunOk($"cat /proc/{pid}/limits"));
            Assert.Equal("passthru-qemu:passthru-qemu 600", Node(2));
            Assert.Contains("probe: pci 01:00.0 8086:10d3 class 0200", vm.RunOk("cat /tmp/lp1.out"));
            output.WriteLine(vm.RunOk($"ps -o user,group,pid,args -p {pid} | cut -c1-200")); // for the README's session

            // kill -9 of the run and of QEMU: nothing gave the node back yet; `guests` cleans up the way a give-back does.
            vm.RunOk($"pkill -9 -f '[p]assthru run'; kill -9 {pid}; sleep 1");
            Assert.Equal("passthru-qemu:passthru-qemu 600", Node(2));
            var guests = vm.RunOk($"{P} guests");
            Assert.Contains("guest 'lp1' has ended: gave /dev/vfio/2 back to root:root, mode 0600", guests);
            Assert.Equal("root:root 600", Node(2));
            Assert.Equal("vfio-pci", Driver("0000:00:02.0")); // still the earlier bind's

            // A normal end puts it back too.
            var r = vm.Run($"{P} run --kernel {vm.Probe} --memory 64 --device 00:02.0 --expect 'probe: done' --timeout 120", TimeSpan.FromMinutes(3));
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains("[passthru] handed /dev/vfio/2 to passthru-qemu", r.Stderr);
            Assert.Contains("[passthru] gave /dev/vfio/2 back to root:root, mode 0600", r.Stderr);
            Assert.Equal("root:root 600", Node(2));
            Assert.Contains("gave 0000:00:02.0 back to e1000e", vm.RunOk($"{P} restore"));
        }
        finally { CleanUp(); }
        Assert.Equal("e1000e", Driver("0000:00:02.0"));
    }

    [Fact]
    public void After_kill_9_of_qemu_and_the_run_restore_puts_the_node_back_before_the_device()
    {
        try
        {
            StartProbe("lp2", "--device 00:02.0");
            Assert.Equal("passthru-qemu:passthru-qemu 600", Node(2));
            vm.RunOk($"pkill -9 -f '[p]assthru run'; kill -9 {QemuPid}; sleep 1");
            var restore = vm.RunOk($"{P} restore");
            Assert.Contains("gave /dev/vfio/2 back to root:root, mode 0600", restore);
            Assert.Contains("gave 0000:00:02.0 back to e1000e", restore);
            Assert.Equal("e1000e", Driver("0000:00:02.0"));
            Assert.Contains("nothing to give back", vm.RunOk($"{P} restore"));
        }
        finally { CleanUp(); }
    }

    [Fact]
    public void Attach_hands_the_new_group_to_the_guests_user_before_device_add_and_its_end_takes_it_back()
    {
        try
        {
            StartProbe("lp3", "");
            var dry = vm.RunOk($"{P} attach lp3 00:03.0 --dry-run");
            Assert.Matches(@"then: hand the vfio node of each device's IOMMU group to passthru-qemu \(\d+:\d+\), the user the guest's QEMU runs as", dry);
            var attached = vm.RunOk($"{P} attach lp3 00:03.0");
            Assert.Matches(@"handed /dev/vfio/3 to passthru-qemu \(\d+:\d+\), the guest's QEMU user", attached);
            Assert.Contains("attached 0000:00:03.0 to guest 'lp3'", attached);
            Assert.Equal("passthru-qemu:passthru-qemu 600", Node(3));
            // The unprivileged QEMU opened the node itself at device_add.
            Assert.Contains("/dev/vfio/3", vm.RunOk($"ls -l /proc/{QemuPid}/fd"));
            vm.RunOk($"kill -9 {QemuPid}; for i in $(seq 120); do pgrep -f '[p]assthru run --kernel .* --name lp3' > /dev/null || exit 0; sleep 0.5; done; exit 1", TimeSpan.FromMinutes(2));
            var run = vm.RunOk("cat /tmp/lp3.out");
            Assert.Contains("[passthru] gave /dev/vfio/3 back to root:root, mode 0600", run);
            Assert.Contains("[passthru] gave 0000:00:03.0 back to e1000e", run);
            Assert.Equal("e1000e", Driver("0000:00:03.0"));
        }
        finally { CleanUp(); }
    }

    [Fact]
    public void A_kernel_qemus_user_cannot_read_is_refused_in_one_line_before_anything_is_bound()
    {
        vm.RunOk($"mkdir -p /root/private && chmod 700 /root/private && cp {vm.Probe} /root/private/probe.elf");
        var r = vm.Run($"{P} run --kernel /root/private/probe.elf --memory 64 --device 00:02.0 --timeout 60");
        Assert.Equal(1, r.ExitCode);
        Assert.Matches(@"^passthru: QEMU runs as passthru-qemu, which cannot read the kernel /root/private/probe\.elf: the directory /root(/private)? is not searchable by passthru-qemu \(owner 0:0, mode 0700\); "
            + @"move it where passthru-qemu can read it, grant access \(setfacl -m u:passthru-qemu:r on it, x on its directories\), or run with --as-root\n$", r.Stderr);
        Assert.Equal("e1000e", Driver("0000:00:02.0"));
        Assert.Contains("nothing to give back", vm.RunOk($"{P} restore --dry-run"));
    }

    [Fact]
    public void As_root_is_loud_and_keeps_qemu_root()
    {
        try
        {
            var r = vm.Run($"{P} run --kernel {vm.Probe} --memory 64 --device 00:02.0 --as-root --expect 'probe: done' --timeout 120", TimeSpan.FromMinutes(3));
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains(r.Stderr.Split('\n'), l => l.StartsWith("warning: --as-root: QEMU runs as root without a sandbox while it holds devices that can DMA into the host's memory", StringComparison.Ordinal));
            Assert.Contains("[passthru] QEMU runs as root, without its sandbox (--as-root)", r.Stderr);
            Assert.DoesNotContain("setpriv", r.Stderr);
            Assert.DoesNotContain("handed /dev/vfio", r.Stderr);
        }
        finally { vm.Run($"{P} restore"); }
    }
}
