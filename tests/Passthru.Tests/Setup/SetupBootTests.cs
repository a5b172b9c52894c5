using System.Diagnostics;
using System.Text.RegularExpressions;
using Passthru.Tests.Support;

namespace Passthru.Tests.Setup;

/// <summary>
/// The configuration setup generates, booted on a real kernel: Debian's kernel in QEMU (q35 with an emulated Intel
/// IOMMU and e1000e NICs), an initramfs holding only what the test needs plus the files `passthru setup` wrote, and
/// Debian's own systemd-udevd and kmod doing what they do at boot. No bind step runs: the devices must come up on
/// vfio-pci from the configuration alone.
///
/// It boots its own machine because tests/vm's virtual host boots one fixed command line and loads its drivers
/// itself before anything can configure them. Once vhost.sh can start with extra kernel parameters and /etc files
/// (and load drivers as a real boot does), the kernel, the initramfs and the boot belong there, and this class keeps
/// only the two scenarios and their assertions.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection(Collection)]
public class SetupBootTests
{
    /// <summary>
    /// Run alone, not beside the virtual host's QEMU and the other tests: two emulated machines at once on two shared
    /// cores made a boot miss its marks once.
    /// </summary>
    public const string Collection = "real kernel boots";


    [Fact]
    public void Devices_named_by_ids_boot_on_vfio_pci()
    {
        using var host = VirtualHostTree();
        var setup = host.Setup("--boot-loader", "kernel-install", "--device", "8086:10d3", "--apply");
        Assert.True(setup.ExitCode == 0, setup.Stderr);
        var booted = Results(Boot(host, preload: null));
        Assert.True(booted.Contains("RESULT 0000:00:02.0 0x8086:0x10d3 driver=vfio-pci"), booted);
        Assert.True(booted.Contains("RESULT 0000:00:03.0 0x8086:0x10d3 driver=vfio-pci"), booted);
        Assert.Matches(@"RESULT vfio: \d+ \d+ vfio", booted); // their groups' /dev/vfio/N
    }

    [Fact]
    public void One_of_two_identical_nics_named_by_address_boots_on_vfio_pci_and_the_other_keeps_its_driver()
    {
        using var host = VirtualHostTree();
        var setup = host.Setup("--boot-loader", "kernel-install", "--device", "00:03.0", "--apply");
        Assert.True(setup.ExitCode == 0, setup.Stderr);
        // The worst case: e1000e loaded before udev runs (as from an initramfs), so it holds both NICs at first.
        var booted = Results(Boot(host, preload: "e1000e"));
        Assert.True(booted.Contains("RESULT before udev: 0000:00:03.0 driver=e1000e"), booted);
        Assert.True(booted.Contains("RESULT 0000:00:02.0 0x8086:0x10d3 driver=e1000e"), booted);
        Assert.True(booted.Contains("RESULT 0000:00:03.0 0x8086:0x10d3 driver=vfio-pci"), booted);
    }

    [Fact]
    public void A_function_named_by_address_whose_driver_loads_after_its_add_event_boots_on_vfio_pci()
    {
        using var host = VirtualHostTree();
        var setup = host.Setup("--boot-loader", "kernel-install", "--device", "00:03.0", "--apply");
        Assert.True(setup.ExitCode == 0, setup.Stderr);
        // The usual case on a real boot: no driver holds the NIC when udev's coldplug reaches it (its add event loads
        // e1000e, and vfio-pci came earlier from modules-load.d). Setting driver_override alone probes nothing.
        var booted = Results(Boot(host, preload: null));
        Assert.True(booted.Contains("RESULT 0000:00:02.0 0x8086:0x10d3 driver=e1000e"), booted);
        Assert.True(booted.Contains("RESULT 0000:00:03.0 0x8086:0x10d3 driver=vfio-pci"), booted);
    }

    [Fact]
    public void VFs_are_made_at_boot_and_the_one_named_boots_on_vfio_pci()
    {
        // The SR-IOV virtual host's capture: the NVMe PF at 03:00.0 (behind the root port at 00:07.0), two VFs at most.
        using var host = new ScratchHost("vhost-sriov").With("etc/kernel/cmdline", "");
        var setup = host.Setup("--boot-loader", "kernel-install", "--vfs", "03:00.0=2", "--device", "03:00.2", "--apply");
        Assert.True(setup.ExitCode == 0, setup.Stderr);
        var booted = Results(Boot(host, preload: null, sriov: true));
        Assert.True(booted.Contains("RESULT 0000:03:00.0 0x1b36:0x0010 driver=nvme"), booted);
        Assert.True(booted.Contains("RESULT 0000:03:00.2 0x1b36:0x0010 driver=vfio-pci"), booted);
        Assert.True(booted.Contains("RESULT 0000:03:00.1 0x1b36:0x0010 driver="), booted);        // made at boot too,
        Assert.False(booted.Contains("RESULT 0000:03:00.1 0x1b36:0x0010 driver=vfio-pci"), booted); // and left to the host,
        Assert.Matches(@"RESULT kernel: nvme nvme\d+: pci function 0000:03:00\.1\n", booted);          // which probes it,
        // while nvme never touched the VF named: made with autoprobe off, it met no driver before its driver_override.
        // (Taken from nvme instead, it could lose vfio-pci again to nvme's late clean-up of a VF it could not start.)
        Assert.DoesNotContain("pci function 0000:03:00.2", booted);
    }

    /// <summary>The init script's RESULT lines: what assertions look at, and what a failure shows.</summary>
    private static string Results(string log) =>
        string.Join('\n', log.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith("RESULT ", StringComparison.Ordinal))) + "\n";

    /// <summary>
    /// The virtual host's capture (tests/captures/vhost: two e1000e at 00:02.0 and 00:03.0, an Intel DMAR table), with
    /// an empty etc/kernel/cmdline: setup decides from it as it would on that machine.
    /// </summary>
    private static ScratchHost VirtualHostTree() => new ScratchHost("vhost").With("etc/kernel/cmdline", "");

    private const string Init = """
        #!/bin/sh
        mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs run /run
        mkdir -p /run/udev
        # busybox's sh prefers its own applets to programs found on PATH: kmod is called by its path, and checked.
        echo "RESULT tools: $(/sbin/modprobe --version | tr '\n' ' ')/ udevadm $(udevadm --version)"
        if [ -n "$passthru_preload" ]; then
          /sbin/modprobe "$passthru_preload"
          for d in /sys/bus/pci/devices/*; do echo "RESULT before udev: $(basename $d) driver=$(basename "$(readlink $d/driver)")"; done
        fi
        # What systemd-modules-load does, then udev's coldplug, which loads each device's driver by its modalias.
        for m in $(grep -hv '^#' /etc/modules-load.d/*.conf); do /sbin/modprobe "$m"; done
        /lib/systemd/systemd-udevd --daemon --resolve-names=never
        udevadm trigger --type=devices --action=add --subsystem-match=pci
        udevadm settle -t 60
        # A PF's bind event makes its VFs, whose own add events come after (nvme probes its PF asynchronously, and
        # settle does not wait for events the kernel sent but udevd has not read yet): settle again until the
        # functions and their drivers stay the same across a second, 30 s at most.
        state() { for d in /sys/bus/pci/devices/*; do echo "$(basename $d) $(basename "$(readlink $d/driver)")"; done; }
        i=0; last=$(state)
        while [ $i -lt 30 ]; do sleep 1; udevadm settle -t 60; now=$(state); [ "$now" = "$last" ] && break; last=$now; i=$((i + 1)); done
        for d in /sys/bus/pci/devices/*; do echo "RESULT $(basename $d) $(cat $d/vendor):$(cat $d/device) driver=$(basename "$(readlink $d/driver)")"; done
        # devtmpfs creates /dev/vfio/N in its own thread: wait (5 s at most) for one node per vfio-pci function's group.
        want=$(for d in /sys/bus/pci/devices/*; do [ "$(basename "$(readlink $d/driver)")" = vfio-pci ] && echo; done | wc -l)
        i=0; while [ $i -lt 50 ] && [ "$(ls /dev/vfio 2>/dev/null | wc -l)" -le "$want" ]; do sleep 0.1; i=$((i + 1)); done
        echo "RESULT vfio: $(ls /dev/vfio | tr '\n' ' ')"
        # Which functions nvme probed (it prints "nvme nvmeN: pci function ADDRESS" for each), whatever the loglevel.
        dmesg | grep 'pci function' | while read -r l; do echo "RESULT kernel: ${l#*] }"; done
        poweroff -f
        """;

    /// <summary>Boots Debian's kernel with the command line and files setup wrote under the host; returns the serial log.</summary>
    /// <param name="sriov">Also the SR-IOV virtual host's NVMe PF at 03:00.0 (with the root ports that number its bus 3), and nvme.</param>
    private static string Boot(ScratchHost host, string? preload, bool sriov = false)
    {
        var kernelPackage = DebianPackage.DependencyOf("linux-image-amd64", "linux-image-");
        var release = kernelPackage["linux-image-".Length..];
        string[] members = [
            $"./boot/vmlinuz-{release}", $"./lib/modules/{release}/modules.builtin*", $"./lib/modules/{release}/modules.order",
            $"./lib/modules/{release}/kernel/drivers/vfio/*", $"./lib/modules/{release}/kernel/virt/lib/irqbypass.ko",
            $"./lib/modules/{release}/kernel/drivers/net/ethernet/intel/e1000e/*"];
        // nvme and what modules.dep says it needs (t10-pi and the CRCs), with the CRCs' generic crypto drivers.
        string[] nvme = [$"./lib/modules/{release}/kernel/drivers/nvme/host/*", $"./lib/modules/{release}/kernel/block/t10-pi.ko",
            $"./lib/modules/{release}/kernel/lib/crc*", $"./lib/modules/{release}/kernel/crypto/crc*"];
        var kernel = sriov ? DebianPackage.Extracted(kernelPackage, "vfio-nvme", [.. members, .. nvme]) : DebianPackage.Extracted(kernelPackage, "vfio", members);
        var udev = DebianPackage.Unpacked("udev");

        var tree = Directory.CreateTempSubdirectory("passthru-initramfs-").FullName;
        var initrd = tree + ".cpio";
        try
        {
            foreach (var d in new[] { "bin", "sbin", "proc", "sys", "dev", "run", "lib/systemd", "lib/udev/rules.d" }) Directory.CreateDirectory(Path.Combine(tree, d));
            File.Copy("/bin/busybox", Path.Combine(tree, "bin/busybox"));
            foreach (var applet in new[] { "sh", "mount", "mkdir", "cat", "echo", "ls", "basename", "readlink", "tr", "grep", "dmesg", "poweroff", "wc", "sleep" })
                File.CreateSymbolicLink(Path.Combine(tree, "bin", applet), "busybox");
            CopyWithLibraries("/bin/kmod", tree, "bin/kmod");
            File.CreateSymbolicLink(Path.Combine(tree, "sbin/modprobe"), "/bin/kmod");
            CopyWithLibraries(Path.Combine(udev, "bin/udevadm"), tree, "bin/udevadm");
            File.CreateSymbolicLink(Path.Combine(tree, "lib/systemd/systemd-udevd"), "/bin/udevadm");
            File.Copy(Path.Combine(udev, "lib/udev/rules.d/80-drivers.rules"), Path.Combine(tree, "lib/udev/rules.d/80-drivers.rules"));
            Run("cp", "-a", Path.Combine(kernel, "lib"), tree);
            Run("depmod", "-b", tree, release);
            Run("cp", "-a", Path.Combine(host.Root, "etc"), tree); // what setup wrote: modprobe.d, modules-load.d, udev rules
            File.WriteAllText(Path.Combine(tree, "init"), Init.Replace("\r", "") + "\n");
            Run("chmod", "755", Path.Combine(tree, "init"));
            Cpio(tree, initrd);

            // loglevel=1: kernel messages would interleave with the init script's RESULT lines on the one serial console.
            var cmdline = "console=ttyS0 loglevel=1 panic=-1 " + host.Read("etc/kernel/cmdline").Trim() + (preload is null ? "" : $" passthru_preload={preload}");
            var args = new List<string> { "-M", "q35,kernel-irqchip=split", "-m", "1024", "-smp", "1", "-device", "intel-iommu,intremap=on",
                "-kernel", Path.Combine(kernel, $"boot/vmlinuz-{release}"), "-initrd", initrd, "-append", cmdline,
                "-display", "none", "-serial", "stdio", "-no-reboot", "-nic", "none" };
            // The two e1000e of the virtual host, at the addresses its capture has them.
            args.AddRange(["-device", "e1000e,addr=02.0", "-device", "e1000e,addr=03.0"]);
            if (sriov)
                args.AddRange(["-device", "pcie-root-port,id=rp1,chassis=1,addr=05.0", "-device", "pcie-pci-bridge,id=pbr,bus=rp1",
                    "-device", "pcie-root-port,id=rp9,chassis=9,slot=9,addr=07.0", "-device", "nvme-subsys,id=ss0",
                    "-device", "nvme,serial=pf0,subsys=ss0,bus=rp9,sriov_max_vfs=2,sriov_vq_flexible=4,sriov_vi_flexible=2,max_ioqpairs=6,msix_qsize=4"]);
            var log = RunWithTimeout("qemu-system-x86_64", args, TimeSpan.FromSeconds(180));
            Assert.True(log.Contains("RESULT vfio:"), "the virtual host did not finish its init script:\n" + log);
            Assert.True(Regex.IsMatch(log, @"RESULT tools: kmod version \d+ .*/ udevadm \d+"), "kmod or udevadm did not run:\n" + log[Math.Max(0, log.IndexOf("RESULT", StringComparison.Ordinal))..]);
            return log;
        }
        finally
        {
            File.Delete(initrd);
            if (Environment.GetEnvironmentVariable("PASSTHRU_KEEP_INITRAMFS") is null) Directory.Delete(tree, true);
        }
    }

    /// <summary>A dynamically linked program and the libraries ldd names, at the same paths inside the tree.</summary>
    private static void CopyWithLibraries(string program, string tree, string target)
    {
        File.Copy(program, Path.Combine(tree, target));
        var (code, stdout, stderr) = Repo.Exec("ldd", program);
        Assert.True(code == 0, $"ldd {program}: {stderr}");
        foreach (var lib in stdout.Split('\n').Select(l => l.Trim().Split(' ').FirstOrDefault(w => w.StartsWith('/'))).OfType<string>())
        {
            var copy = Path.Combine(tree, lib.TrimStart('/'));
            if (File.Exists(copy)) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(Path.GetFullPath(new FileInfo(lib).ResolveLinkTarget(true)?.FullName ?? lib), copy);
        }
    }

    private static void Run(string program, params string[] args)
    {
        var (code, stdout, stderr) = Repo.Exec(program, args);
        Assert.True(code == 0, $"{program} {string.Join(' ', args)} failed ({code}): {stdout}{stderr}");
    }

    /// <summary>find . | cpio -o -H newc, without a shell.</summary>
    private static void Cpio(string tree, string output)
    {
        var start = new ProcessStartInfo("cpio", ["-o", "-H", "newc", "--quiet"]) { WorkingDirectory = tree, RedirectStandardInput = true, RedirectStandardOutput = true };
        using var p = Process.Start(start)!;
        var copy = Task.Run(() => { using var f = File.Create(output); p.StandardOutput.BaseStream.CopyTo(f); });
        foreach (var entry in Directory.EnumerateFileSystemEntries(tree, "*", SearchOption.AllDirectories))
            p.StandardInput.Write(Path.GetRelativePath(tree, entry) + "\n");
        p.StandardInput.Close();
        copy.Wait();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    private static string RunWithTimeout(string program, List<string> args, TimeSpan limit)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {program}: install qemu-system-x86");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(limit))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
            Assert.Fail($"QEMU did not power off within {limit.TotalSeconds} s:\n{stdout.Result}{stderr.Result}");
        }
        p.WaitForExit();
        return stdout.Result + stderr.Result;
    }
}

[CollectionDefinition(SetupBootTests.Collection, DisableParallelization = true)]
public sealed class RealKernelBootCollection;
