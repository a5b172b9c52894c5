using System.Text.Json;
using Passthru.Check;
using Passthru.Host;
using Passthru.Tests.Support;

namespace Passthru.Tests.Check;

public class CheckTests
{
    [Fact]
    public void Dev_vm_capture_is_not_ready_and_says_why()
    {
        var r = CliRunner.OnCapture("devvm", "check");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"""
            WARN  CPU virtualization      no vmx or svm flag: this is a virtual machine without nested virtualization, so guests run under slow emulation
                                          fix: enable nested virtualization for this VM in its hypervisor, or run on bare metal
            WARN  KVM                     /dev/kvm is provided by kvm_pvm (a paravirtualized nested hypervisor), which does not run ordinary guests
                                          fix: use software emulation (passthru run --accel tcg) or a host with kvm_intel/kvm_amd
            FAIL  IOMMU hardware          no ACPI DMAR or IVRS table: the firmware announces no IOMMU
                                          fix: enable VT-d in the firmware setup (BIOS/UEFI)
            FAIL  IOMMU enabled           the kernel has no IOMMU groups: the IOMMU is off
                                          fix: add intel_iommu=on to the kernel command line (passthru setup) and reboot
            FAIL  IOMMU kernel parameter  intel_iommu=on is missing from the kernel command line
                                          fix: add intel_iommu=on (passthru setup) and reboot
            NOTE  IOMMU host mode         iommu=pt is not set: host devices use IOMMU translation too
                                          fix: optional: add iommu=pt for host I/O performance (passthru setup --iommu-pt)
            WARN  Interrupt remapping     unknown: no IOMMU unit or readable DMAR table to ask (run as root, enable the IOMMU)
                                          fix: without it vfio refuses devices unless vfio_iommu_type1.allow_unsafe_interrupts=1, which lets a guest's device forge interrupts (MSI) against the host: use that only with trusted guests
            FAIL  vfio modules            not available for kernel 6.18.44-fc-v657: vfio, vfio_iommu_type1, vfio_pci
                                          fix: install the modules package of the running kernel (Debian: linux-image-$(uname -r)), or build with CONFIG_VFIO_PCI
            PASS  QEMU                    {Repo.Capture("devvm")}/usr/bin/qemu-system-x86_64 (version not probed in a captured tree)
            PASS  Locked memory limit     running as root: passthru run raises the limit for each guest's QEMU alone (guest RAM + 1 GiB)
            NOTE  QEMU user               passthru-qemu does not exist yet: the first passthru run creates it (useradd --system), as the Debian package does
                                          fix: create it now: adduser --system --group --no-create-home passthru-qemu
            NOTE  QEMU sandbox            not probed in a captured tree
            2 pass, 3 warn, 4 fail: not ready

            """, r.Stdout);
    }

    [Fact]
    public void Json_has_one_finding_per_check_and_ready_false()
    {
        var r = CliRunner.OnCapture("devvm", "check", "--json");
        Assert.Equal(1, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.False(doc.RootElement.GetProperty("ready").GetBoolean());
        var ids = doc.RootElement.GetProperty("findings").EnumerateArray().Select(f => f.GetProperty("id").GetString() + "=" + f.GetProperty("status").GetString());
        Assert.Equal(["cpu-virt=WARN", "kvm=WARN", "iommu-hw=FAIL", "iommu-on=FAIL", "iommu-param=FAIL", "iommu-pt=NOTE", "intremap=WARN", "vfio=FAIL", "qemu=PASS", "memlock=PASS", "qemu-user=NOTE", "sandbox=NOTE"], ids);
    }

    [Theory]
    [InlineData("quiet intel_iommu=on", "intel_iommu", "on")]
    [InlineData("intel_iommu=off intel_iommu=on,sm_on", "intel_iommu", "on,sm_on")]
    [InlineData("iommu=pt -- intel_iommu=on", "intel_iommu", null)]
    [InlineData("nointremap quiet", "nointremap", "")]
    public void Kernel_parameters_are_read_as_the_kernel_reads_them(string cmdline, string name, string? expected)
    {
        var tree = Directory.CreateTempSubdirectory().FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(tree, "proc"));
            File.WriteAllText(Path.Combine(tree, "proc/cmdline"), cmdline + "\n");
            Assert.Equal(expected, new HostFacts(new HostRoot(tree)).KernelParameter(name));
        }
        finally { Directory.Delete(tree, true); }
    }

    [Theory]
    [InlineData("Max locked memory         8388608              8388608              bytes     ", 8388608L, true)]
    [InlineData("Max locked memory         1073741823           1073741823           bytes     ", 1073741823L, true)]
    [InlineData("Max locked memory         1073741824           1073741824           bytes     ", 1073741824L, false)]
    [InlineData("Max locked memory         unlimited            unlimited            bytes     ", long.MaxValue, false)]
    public void Locked_memory_limit_from_proc_limits(string line, long expected, bool warns)
    {
        // warns: below 1 GiB (1073741824 bytes), written out here rather than taken from the code under test.
        var tree = Directory.CreateTempSubdirectory().FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(tree, "proc/self"));
            File.WriteAllText(Path.Combine(tree, "proc/self/limits"), "Limit                     Soft Limit           Hard Limit           Units     \n" + line + "\n");
            Assert.Equal(expected, new HostFacts(new HostRoot(tree)).LockedMemoryLimit());
            Assert.Equal(warns ? Status.Warn : Status.Pass, HostCheck.LockedMemory(new HostFacts(new HostRoot(tree))).Status);
        }
        finally { Directory.Delete(tree, true); }
    }

    [Fact]
    public void Qemu_version_is_parsed_from_its_banner() =>
        Assert.Equal("7.2.22", HostCheck.QemuVersion("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)\nCopyright (c) 2003-2022 Fabrice Bellard\n"));
}
