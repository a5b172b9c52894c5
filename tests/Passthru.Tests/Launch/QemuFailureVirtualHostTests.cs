using Passthru.Tests.VirtualHost;

namespace Passthru.Tests.Launch;

/// <summary>
/// QEMU failing for real in the virtual host, with devices passed the way users also do it (in `-- -device vfio-pci`
/// after a bind, past run's own preflight): run says the cause and the fix in one line before QEMU's message.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host")]
public class QemuFailureVirtualHostTests(VirtualHostFixture vm)
{
    private string P => vm.Passthru;

    /// <summary>A vfio-pci device for QEMU after --, behind a root port of its own.</summary>
    private static string Extra(string host) => $"-- -device pcie-root-port,id=x9,chassis=9 -device vfio-pci,host={host},bus=x9";

    private const string HoldGroup3 = """
        qemu-system-x86_64 -M q35 -accel tcg -m 64 -nographic -nic none -kernel {probe} -device pcie-root-port,id=r,chassis=1 -device vfio-pci,host=0000:00:03.0,bus=r > /dev/null 2>&1 < /dev/null & q=$!
        until ls -l /proc/$q/fd 2>/dev/null | grep -q /dev/vfio/3; do kill -0 $q || exit 9; sleep 0.2; done
        """;

    [Fact]
    public void A_group_another_guest_holds_is_named_with_its_process()
    {
        try
        {
            var r = vm.Run($"""
                {P} bind 00:03.0 > /dev/null
                {HoldGroup3.Replace("{probe}", vm.Probe)}
                {P} run --kernel {vm.Probe} --memory 128 --timeout 60 {Extra("0000:00:03.0")}; echo "extra: exit $?"
                {P} run --kernel {vm.Probe} --memory 128 --timeout 60 --device 00:03.0; echo "device: exit $?"
                echo "holder $q"; kill $q; wait
                """, TimeSpan.FromMinutes(3));
            var holder = r.Stdout.Split('\n').First(l => l.StartsWith("holder ")).Split(' ')[1];
            Assert.Contains("extra: exit 1", r.Stdout.Split('\n'));
            Assert.Contains($"passthru: why QEMU failed: IOMMU group 3 is already open by qemu-system-x86 (pid {holder}) (another guest has its devices); fix: stop that guest first, or pass a different device\n"
                + "qemu-system-x86_64: -device vfio-pci,host=0000:00:03.0,bus=x9: vfio 0000:00:03.0: failed to open /dev/vfio/3: Device or resource busy\n", r.Stderr);
            // With --device, run's preflight finds it before QEMU starts.
            Assert.Contains("device: exit 1", r.Stdout.Split('\n'));
            Assert.Contains($"passthru: /dev/vfio/3 is already open by qemu-system-x86 (pid {holder}): another guest has IOMMU group 3; stop it first, or pass a different device\n", r.Stderr);
        }
        finally { vm.Run($"pkill -KILL -x qemu-system-x86; {P} restore"); }
    }

    [Fact]
    public void A_group_not_viable_names_the_function_still_on_its_driver()
    {
        try
        {
            var r = vm.Run($"""
                {P} bind 02:01.0 --group > /dev/null
                echo 0000:02:02.0 > /sys/bus/pci/drivers/vfio-pci/unbind; echo > /sys/bus/pci/devices/0000:02:02.0/driver_override; echo 0000:02:02.0 > /sys/bus/pci/drivers_probe
                {P} run --kernel {vm.Probe} --memory 128 --timeout 60 {Extra("0000:02:01.0")}; echo "exit $?"
                """, TimeSpan.FromMinutes(3));
            Assert.Contains("exit 1", r.Stdout.Split('\n')); // the whole line: not exit 124, 130 or 137
            Assert.Contains("passthru: why QEMU failed: IOMMU group 8 of 0000:02:01.0 is not viable: 0000:02:02.0 (e1000) is still on a host driver, and a group passes through whole; "
                + "fix: passthru run --group (or passthru bind --group 0000:02:01.0), or name every function of the group with --device\n"
                + "qemu-system-x86_64: -device vfio-pci,host=0000:02:01.0,bus=x9: vfio 0000:02:01.0: group 8 is not viable\n", r.Stderr);
        }
        finally { vm.Run($"{P} restore"); }
    }

    [Fact]
    public void Too_little_locked_memory_says_how_much_is_needed()
    {
        try
        {
            // As an unprivileged user (root is exempt from the limit), with the group's nodes opened up to it.
            var r = vm.Run($"""
                {P} bind 00:02.0 > /dev/null && chmod 666 /dev/vfio/2 /dev/vfio/vfio
                setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'ulimit -l 1024; {P} run --kernel {vm.Probe} --memory 128 --timeout 60 {Extra("0000:00:02.0")}; echo "exit $?"'
                """, TimeSpan.FromMinutes(3));
            Assert.Contains("exit 1", r.Stdout.Split('\n')); // the whole line: not exit 124, 130 or 137
            // Not root: the guest runs without a control socket, and says so in words (not a resource key).
            Assert.Contains("[passthru] note: no control socket for attach/detach: /run/passthru/guests is not writable here (run as root for hot-plug)\n", r.Stderr);
            Assert.Contains("passthru: why QEMU failed: QEMU could not pin the guest's memory for DMA: the locked-memory limit (1024 KiB) is below the 128 MiB the guest needs", r.Stderr);
            Assert.Contains("fix: raise it to at least 192 MiB (ulimit -l 196608, or unlimited; memlock in /etc/security/limits.conf), or run as root\n"
                + "qemu-system-x86_64: -device vfio-pci,host=0000:00:02.0,bus=x9: VFIO_MAP_DMA failed: Cannot allocate memory\n", r.Stderr);
        }
        finally { vm.Run($"{P} restore"); }
    }
}
