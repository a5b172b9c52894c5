using System.Text;
using Passthru.Tests.Support;

namespace Passthru.Tests.Setup;

/// <summary>What setup decides for a host (CPU vendor, interrupt remapping, devices) and how each boot loader gets it.</summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public class SetupPlanTests
{
    private static byte[] Grub(string defaultLine) => Encoding.UTF8.GetBytes($"GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT={defaultLine}\nGRUB_CMDLINE_LINUX=\"\"\n");

    [Fact]
    public void The_plan_users_see_on_a_Debian_host_with_one_device()
    {
        using var host = ScratchHost.DebianGrub(Grub("\"quiet\""));
        var r = host.Setup("--device", "1af4:1053");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal($"""
            Boot loader: GRUB (etc/default/grub)
            Kernel parameters:
              add intel_iommu=on: turns on the Intel IOMMU (VT-d), which vfio needs
              add vfio-pci.ids=1af4:1053: vfio-pci claims these devices at boot, before their usual drivers
            Note: the firmware announces no IOMMU (no ACPI DMAR or IVRS table): also enable VT-d in the firmware setup (BIOS/UEFI), or these parameters change nothing
            Note: interrupt remapping: unknown (no IOMMU unit or readable DMAR table); if vfio then refuses devices, vfio_iommu_type1.allow_unsafe_interrupts=1 lets it (passthru setup --allow-unsafe-interrupts), at the cost that a guest's device can forge interrupts against the host

            --- a/etc/default/grub
            +++ b/etc/default/grub
            @@ -1,3 +1,3 @@
             GRUB_DEFAULT=0
            -GRUB_CMDLINE_LINUX_DEFAULT="quiet"
            +GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on vfio-pci.ids=1af4:1053"
             GRUB_CMDLINE_LINUX=""

            --- /dev/null
            +++ b/etc/modules-load.d/passthru.conf
            @@ -0,0 +1,4 @@
            +# Written by passthru setup (undo: passthru setup --undo): load vfio at boot.
            +vfio
            +vfio_iommu_type1
            +vfio-pci

            --- /dev/null
            +++ b/etc/modprobe.d/passthru.conf
            @@ -0,0 +1,3 @@
            +# Written by passthru setup (undo: passthru setup --undo): vfio-pci claims these devices at boot, before their usual drivers.
            +options vfio-pci ids=1af4:1053
            +softdep virtio_pci pre: vfio-pci

            --- a/etc/initramfs-tools/modules
            +++ b/etc/initramfs-tools/modules
            @@ -12,3 +12,7 @@
             #
             # raid1
             # sd_mod
            +# Written by passthru setup (undo: passthru setup --undo): vfio-pci in the initramfs, ahead of the devices' usual drivers.
            +vfio
            +vfio_iommu_type1
            +vfio_pci

            Commands:
              update-initramfs -u  # rebuilds the initramfs, which carries the module options
              update-grub          # writes the boot menu (grub.cfg) from the GRUB defaults

            This is the plan: nothing was changed. To apply it (files are backed up first): passthru setup --root {host.Root} --device 1af4:1053 --apply
            A reboot is needed for these changes to take effect; after it, run `passthru check` to confirm.

            """, r.Stdout);
    }

    [Fact]
    public void Amd_hosts_get_no_intel_switch_and_lose_amd_iommu_off()
    {
        using var host = ScratchHost.DebianGrub(Grub("\"quiet amd_iommu=off\"")).WithCpuVendor("AuthenticAMD");
        var plan = host.Setup();
        Assert.Contains("Kernel parameters:\n  remove amd_iommu=off: turns AMD's IOMMU off; it is on by default\nNote:", plan.Stdout);
        Assert.DoesNotContain("intel_iommu", plan.Stdout);
        Assert.Equal(0, host.Setup("--apply").ExitCode);
        Assert.Equal("GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"\"\n", host.Read("etc/default/grub"));
    }

    [Theory]
    [InlineData(0x00, false, false, "this IOMMU does not remap interrupts, so vfio refuses every device until unsafe interrupts are allowed: passthru setup --allow-unsafe-interrupts adds")]
    [InlineData(0x00, true, true, null)]   // DMAR flags bit 0 clear: no interrupt remapping; asked for: added
    [InlineData(0x01, false, false, null)] // INTR_REMAP set: nothing needs it
    [InlineData(0x01, true, false, "--allow-unsafe-interrupts: not needed, this IOMMU remaps interrupts; left out")]
    public void Unsafe_interrupts_only_when_asked_and_the_IOMMU_cannot_remap_them(byte flags, bool asked, bool added, string? note)
    {
        var dmar = new byte[48];
        Encoding.ASCII.GetBytes("DMAR").CopyTo(dmar, 0);
        dmar[37] = flags;
        using var host = ScratchHost.DebianGrub(Grub("\"\"")).With("sys/firmware/acpi/tables/DMAR", dmar);
        var r = asked ? host.Setup("--allow-unsafe-interrupts") : host.Setup();
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(added, r.Stdout.Contains("  add vfio_iommu_type1.allow_unsafe_interrupts=1: vfio may use devices although this IOMMU does not remap interrupts (--allow-unsafe-interrupts); "
            + "the risk: a guest's device can forge interrupts (MSI) against the host, so pass devices only to guests you trust\n"));
        Assert.Equal(added, r.Stdout.Contains("GRUB_CMDLINE_LINUX_DEFAULT=\"intel_iommu=on vfio_iommu_type1.allow_unsafe_interrupts=1\""));
        if (note is not null) Assert.Contains("Note: " + note, r.Stdout);
        Assert.DoesNotContain("interrupt remapping: unknown", r.Stdout);
        Assert.DoesNotContain("the firmware announces no IOMMU", r.Stdout);
        if (added)
        {
            Assert.Equal(0, host.Setup("--allow-unsafe-interrupts", "--apply").ExitCode);
            Assert.Contains("vfio_iommu_type1.allow_unsafe_interrupts=1", host.Read("etc/default/grub"));
            Assert.Equal(0, host.Setup("--undo").ExitCode);
            Assert.DoesNotContain("allow_unsafe", host.Read("etc/default/grub"));
        }
    }

    [Fact]
    public void A_device_with_a_twin_is_claimed_by_address_with_a_udev_rule()
    {
        using var host = ScratchHost.DebianGrub(Grub("\"quiet\""));
        AddTwin(host, "0000:00:05.0", "0000:00:06.0");
        var r = host.Setup("--device", "00:05.0", "--apply");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on\"\nGRUB_CMDLINE_LINUX=\"\"\n", host.Read("etc/default/grub"));
        Assert.Equal("# Written by passthru setup (undo: passthru setup --undo): these functions go to vfio-pci at boot, by address.\n"
            + "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:00:05.0\", ATTR{driver_override}=\"vfio-pci\"\n"
            + "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:00:05.0\", TEST==\"driver\", ATTR{driver/unbind}=\"%k\"\n"
            + "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:00:05.0\", ATTR{subsystem/drivers_probe}=\"%k\"\n",
            host.Read("etc/udev/rules.d/40-passthru-vfio-pci.rules"));
        Assert.Equal("# Written by passthru setup (undo: passthru setup --undo): vfio-pci claims these devices at boot, before their usual drivers.\n"
            + "softdep virtio_pci pre: vfio-pci\n", host.Read("etc/modprobe.d/passthru.conf"));
        Assert.Contains("Note: 0000:00:05.0 shares IDs 1af4:1044 with 0000:00:06.0: it is claimed by address", host.Setup("--device", "00:05.0").Stdout);
        Assert.Contains("Nothing to change", host.Setup("--device", "00:05.0").Stdout);
    }

    [Fact]
    public void Ids_whose_driver_is_built_into_the_kernel_are_claimed_by_address_without_a_softdep()
    {
        // The devvm capture as it is: its kernel has virtio_pci built in (/sys/module/virtio_pci has no initstate),
        // so virtio-pci holds the NIC before any module loads, and vfio-pci's ids= would never get it.
        using var host = ScratchHost.DebianGrub(Grub("\"quiet\""));
        host.Remove("sys/module/virtio_pci/initstate");
        Assert.Contains("0000:00:03.0: virtio-pci is built into the kernel and takes it while the kernel starts, before vfio-pci's ids= can act: claimed by address", host.Setup("--device", "1af4:1041").Stdout);
        var r = host.Setup("--device", "1af4:1041", "--apply");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("# Written by passthru setup (undo: passthru setup --undo): these functions go to vfio-pci at boot, by address.\n"
            + "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:00:03.0\", ATTR{driver_override}=\"vfio-pci\"\n"
            + "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:00:03.0\", TEST==\"driver\", ATTR{driver/unbind}=\"%k\"\n"
            + "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:00:03.0\", ATTR{subsystem/drivers_probe}=\"%k\"\n",
            host.Read("etc/udev/rules.d/40-passthru-vfio-pci.rules"));
        // No ids= and no softdep: a softdep orders module loads, and a built-in driver is never loaded.
        Assert.DoesNotContain("ids=", host.Exists("etc/modprobe.d/passthru.conf") ? host.Read("etc/modprobe.d/passthru.conf") : "");
        Assert.DoesNotContain("softdep", host.Exists("etc/modprobe.d/passthru.conf") ? host.Read("etc/modprobe.d/passthru.conf") : "");
        Assert.Contains("Nothing to change", host.Setup("--device", "1af4:1041").Stdout);
    }

    [Fact]
    public void Any_setup_rewrites_the_rule_an_earlier_version_wrote_which_probed_only_functions_a_driver_held()
    {
        using var host = ScratchHost.DebianGrub(Grub("\"quiet\""));
        AddTwin(host, "0000:00:05.0", "0000:00:06.0");
        Assert.Equal(0, host.Setup("--device", "00:05.0", "--apply").ExitCode);
        // Passthru before 2026-12-04: the probe only behind TEST=="driver", so a function no driver held at its add
        // event (the usual case at boot) stayed without one.
        const string rules = "etc/udev/rules.d/40-passthru-vfio-pci.rules";
        var now = host.Read(rules);
        host.With(rules, "# Written by passthru setup (undo: passthru setup --undo): these functions go to vfio-pci at boot, by address.\n"
            + "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:00:05.0\", ATTR{driver_override}=\"vfio-pci\"\n"
            + "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:00:05.0\", TEST==\"driver\", ATTR{driver/unbind}=\"%k\", ATTR{subsystem/drivers_probe}=\"%k\"\n");
        // A setup run for something else (here: nothing new) brings it up to date too.
        Assert.Contains("+ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:00:05.0\", ATTR{subsystem/drivers_probe}=\"%k\"", host.Setup().Stdout);
        var again = host.Setup("--apply");
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.Equal(now, host.Read(rules));
        Assert.Contains("Nothing to change", host.Setup("--device", "00:05.0").Stdout);
        Assert.Contains("Nothing to change", host.Setup().Stdout);
    }

    [Fact]
    public void On_the_virtual_host_capture_a_twin_goes_by_address_and_the_IOMMU_needs_nothing_unsafe()
    {
        using var host = ScratchHost.DebianGrub(Grub("\"quiet\""), "vhost");
        var r = host.Setup("--device", "00:03.0");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var notes = r.Stdout.Split('\n').Where(l => l.StartsWith("Note: ", StringComparison.Ordinal));
        Assert.Equal(["Note: 0000:00:03.0 shares IDs 8086:10d3 with 0000:00:02.0: it is claimed by address (a udev rule sets its driver_override), so the other keeps its driver"], notes);
        Assert.Contains("+softdep e1000e pre: vfio-pci\n", r.Stdout);
        Assert.Contains("+ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"0000:00:03.0\", ATTR{driver_override}=\"vfio-pci\"\n", r.Stdout);
        Assert.Contains("  add intel_iommu=on: ", r.Stdout); // the GRUB file lacks it, though the capture's running kernel has it
        Assert.DoesNotContain("allow_unsafe_interrupts", r.Stdout); // its DMAR unit remaps interrupts
    }

    [Fact]
    public void A_device_whose_IOMMU_group_holds_others_says_they_must_come_too()
    {
        using var host = ScratchHost.DebianGrub(Grub("\"quiet\""), "vhost");
        var one = host.Setup("--device", "02:01.0");
        Assert.Contains("Note: 0000:02:01.0 is in IOMMU group 8 with 0000:02:02.0: vfio needs the whole group, so name those with --device too\n", one.Stdout);
        var both = host.Setup("--device", "02:01.0", "--device", "02:02.0");
        Assert.DoesNotContain("IOMMU group", both.Stdout);
        Assert.Contains("KERNEL==\"0000:02:01.0\"", both.Stdout);
        Assert.Contains("KERNEL==\"0000:02:02.0\"", both.Stdout);
    }

    [Theory]
    [InlineData("/dev/nvme0n1p2 / ext4 rw,relatime 0 0", "/")]
    [InlineData("/dev/mapper/vg-root / ext4 rw,relatime 0 0", "/")]
    [InlineData("/dev/dm-0 /srv/my\\040data xfs rw 0 0", "/srv/my data")]
    public void A_disk_controller_with_mounted_file_systems_is_refused_unless_forced(string mount, string shown)
    {
        // The virtual host's NVMe controller at 00:04.0, with a partition, LVM on another, and a mount of one of them.
        using var host = ScratchHost.DebianGrub(Grub("\"quiet\""), "vhost").With("proc/self/mounts", "proc /proc proc rw 0 0\n" + mount + "\n")
            .With("sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p2/partition", "2\n")
            .With("sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p3/partition", "3\n")
            .With("sys/devices/virtual/block/dm-0/dm/name", "vg-root\n")
            .With("sys/devices/virtual/block/dm-0/slaves/.keep", "");
        var blocks = Path.Combine(host.Root, "sys/class/block");
        Directory.CreateDirectory(blocks);
        File.CreateSymbolicLink(Path.Combine(blocks, "nvme0n1"), "../../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1");
        File.CreateSymbolicLink(Path.Combine(blocks, "nvme0n1p2"), "../../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p2");
        File.CreateSymbolicLink(Path.Combine(blocks, "nvme0n1p3"), "../../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p3");
        File.CreateSymbolicLink(Path.Combine(blocks, "dm-0"), "../../devices/virtual/block/dm-0");
        File.CreateSymbolicLink(Path.Combine(host.Root, "sys/devices/virtual/block/dm-0/slaves/nvme0n1p3"), "../../../../pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p3");
        Directory.CreateDirectory(Path.Combine(host.Root, "dev/mapper"));
        File.CreateSymbolicLink(Path.Combine(host.Root, "dev/mapper/vg-root"), "../dm-0");
        var before = host.Snapshot();

        var refused = host.Setup("--device", "00:04.0", "--apply");
        Assert.Equal(1, refused.ExitCode);
        Assert.Equal($"passthru: 0000:00:04.0 holds mounted file systems ({shown}): claimed at boot, they are gone, and if the root file system is one of them the host will not boot; name another device, or pass --force if you are sure\n", refused.Stderr);
        Assert.Equal(before, host.Snapshot());

        var forced = host.Setup("--device", "00:04.0", "--force");
        Assert.Contains($"Note: 0000:00:04.0 holds mounted file systems ({shown}): claimed at boot anyway (--force)\n", forced.Stdout);
        Assert.DoesNotContain("holds mounted", host.Setup("--device", "00:02.0").Stdout);
    }

    [Fact]
    public void Ids_that_match_twins_claim_both_and_say_so()
    {
        using var host = ScratchHost.DebianGrub(Grub("\"quiet\""));
        AddTwin(host, "0000:00:05.0", "0000:00:06.0");
        var r = host.Setup("--device", "1af4:1044");
        Assert.Contains("  add vfio-pci.ids=1af4:1044:", r.Stdout);
        Assert.Contains("Note: 1af4:1044 matches 2 functions (0000:00:05.0, 0000:00:06.0): all go to vfio-pci at boot; to keep one, name the other by address\n", r.Stdout);
    }

    [Fact]
    public void A_second_run_adds_its_device_to_the_first_and_undo_still_gives_back_the_original()
    {
        var original = Grub("\"quiet\"");
        using var host = ScratchHost.DebianGrub(original);
        var before = host.Snapshot();
        Assert.Equal(0, host.Setup("--device", "1af4:1053", "--apply").ExitCode);
        Assert.Equal(0, host.Setup("--device", "00:05.0", "--iommu-pt", "--apply").ExitCode);
        Assert.Contains("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=on vfio-pci.ids=1af4:1053,1af4:1044 iommu=pt\"", host.Read("etc/default/grub"));
        Assert.Contains("options vfio-pci ids=1af4:1053,1af4:1044\nsoftdep virtio_pci pre: vfio-pci\n", host.Read("etc/modprobe.d/passthru.conf"));
        Assert.Equal(0, host.Setup("--undo").ExitCode);
        Assert.Equal(original, host.Bytes("etc/default/grub"));
        Assert.Equal(before, host.Snapshot());
    }

    [Theory]
    [InlineData("dracut", "etc/dracut.conf.d/passthru.conf", "force_drivers+=\" vfio vfio_iommu_type1 vfio_pci \"\n")]
    [InlineData("mkinitcpio", "etc/mkinitcpio.conf.d/passthru.conf", "MODULES+=(vfio_pci vfio vfio_iommu_type1)\n")]
    public void Devices_at_boot_put_vfio_pci_into_the_initramfs_with_a_drop_in(string tool, string path, string line)
    {
        using var host = new ScratchHost().With("etc/default/grub", "GRUB_CMDLINE_LINUX=\"\"\n").WithPrograms("grub-mkconfig", tool).WithVirtioPciModule();
        var r = host.Setup("--device", "00:04.0", "--apply");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("# Written by passthru setup (undo: passthru setup --undo): vfio-pci in the initramfs, ahead of the devices' usual drivers.\n" + line, host.Read(path));
        Assert.Contains($"not run (the host root is not /): {(tool == "dracut" ? "dracut -f" : "mkinitcpio -P")}\nnot run (the host root is not /): grub-mkconfig -o /boot/grub/grub.cfg\n", r.Stdout);
        Assert.Equal("GRUB_CMDLINE_LINUX=\"\"\nGRUB_CMDLINE_LINUX_DEFAULT=\"intel_iommu=on vfio-pci.ids=1af4:1053\"\n", host.Read("etc/default/grub"));
    }

    [Fact]
    public void Kernel_install_edits_etc_kernel_cmdline_in_place()
    {
        using var host = new ScratchHost().WithFixture("etc/kernel/cmdline", "kernel-cmdline").WithPrograms("kernel-install", "dracut")
            .With("boot/vmlinuz-6.18.44-fc-v657", "");
        var plan = host.Setup("--iommu-pt");
        Assert.Contains("Boot loader: kernel-install (etc/kernel/cmdline)\n", plan.Stdout);
        Assert.Contains("  kernel-install add 6.18.44-fc-v657 /boot/vmlinuz-6.18.44-fc-v657  # writes the boot entry", plan.Stdout);
        Assert.Contains("  dracut -f ", plan.Stdout);
        var original = host.Bytes("etc/kernel/cmdline");
        Assert.Equal(0, host.Setup("--iommu-pt", "--apply").ExitCode);
        Assert.Equal(File.ReadAllText(ScratchHost.Fixture("kernel-cmdline.expected")), host.Read("etc/kernel/cmdline"));
        Assert.Contains("Nothing to change", host.Setup("--iommu-pt").Stdout);
        Assert.Equal(0, host.Setup("--undo").ExitCode);
        Assert.Equal(original, host.Bytes("etc/kernel/cmdline"));
    }

    [Fact]
    public void Systemd_boot_without_etc_kernel_cmdline_gets_one_from_the_running_command_line_before_init_arguments()
    {
        using var host = new ScratchHost().WithPrograms("kernel-install").With("boot/loader/entries/.keep", "");
        File.WriteAllText(Path.Combine(host.Root, "proc/cmdline"), "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet -- single\n");
        Assert.Equal(0, host.Setup("--apply").ExitCode);
        Assert.Equal("root=/dev/sda1 ro quiet intel_iommu=on -- single\n", host.Read("etc/kernel/cmdline"));
        Assert.Equal(0, host.Setup("--undo").ExitCode);
        Assert.False(host.Exists("etc/kernel/cmdline"));
    }

    [Fact]
    public void Grubby_is_a_command_and_its_undo_the_opposite_command()
    {
        using var host = new ScratchHost().WithPrograms("grubby", "dracut").With("etc/default/grub", "GRUB_CMDLINE_LINUX=\"rhgb quiet\"\n");
        File.WriteAllText(Path.Combine(host.Root, "proc/cmdline"), "BOOT_IMAGE=(hd0,gpt2)/vmlinuz-6.8 root=/dev/mapper/rhel-root ro intel_iommu=off rhgb quiet\n");
        var plan = host.Setup("--iommu-pt");
        Assert.Contains("Boot loader: grubby (every installed kernel's boot entry)\n", plan.Stdout);
        Assert.Contains("  grubby --update-kernel=ALL --remove-args=intel_iommu=off '--args=intel_iommu=on iommu=pt'  # adds the parameters to every boot entry\n", plan.Stdout);
        var apply = host.Setup("--iommu-pt", "--apply");
        Assert.Contains("not run (the host root is not /): grubby --update-kernel=ALL --remove-args=intel_iommu=off '--args=intel_iommu=on iommu=pt'\n", apply.Stdout);
        var undo = host.Setup("--undo");
        Assert.Contains("not run (the host root is not /): grubby --update-kernel=ALL '--remove-args=intel_iommu=on iommu=pt' --args=intel_iommu=off\n", undo.Stdout);
        Assert.Equal("GRUB_CMDLINE_LINUX=\"rhgb quiet\"\n", host.Read("etc/default/grub"));
    }

    [Fact]
    public void No_known_boot_loader_is_one_line_naming_the_parameters_to_add_by_hand()
    {
        using var host = new ScratchHost();
        var before = host.Snapshot();
        var r = host.Setup("--iommu-pt", "--apply");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"passthru: no supported boot loader under {host.Root} (GRUB's etc/default/grub, grubby, kernel-install's etc/kernel/cmdline): "
            + "change the kernel command line by hand (add intel_iommu=on; add iommu=pt), or name one with --boot-loader\n", r.Stderr);
        Assert.Equal(before, host.Snapshot());
    }

    [Theory]
    [InlineData(new[] { "--boot-loader", "lilo" }, 2, "unknown boot loader 'lilo': use grub, kernel-install or grubby (or leave --boot-loader out to detect it)")]
    [InlineData(new[] { "--device", "00:00.0" }, 2, "0000:00:00.0 is a host bridge: bridges stay with the host; name the devices behind it")]
    [InlineData(new[] { "--device", "00:1f.0" }, 2, "no PCI function at 00:1f.0: see `passthru list` for the devices of this host")]
    [InlineData(new[] { "--device", "nonsense" }, 2, "'nonsense' is not a PCI device: use a full address like 0000:83:00.0, a short one like 83:00.0, or vendor:device IDs like 15b3:1003")]
    [InlineData(new[] { "--undo", "--iommu-pt" }, 2, "--undo takes no other setup options: it puts back what was recorded")]
    public void Bad_requests_are_one_line_and_change_nothing(string[] args, int code, string error)
    {
        using var host = ScratchHost.DebianGrub(Grub("\"quiet\""));
        var before = host.Snapshot();
        var r = host.Setup([.. args, "--apply"]);
        Assert.Equal(code, r.ExitCode);
        Assert.Equal($"passthru: {error}\n", r.Stderr);
        Assert.Equal(before, host.Snapshot());
    }

    [Fact]
    public void An_unknown_cpu_vendor_is_refused()
    {
        using var host = ScratchHost.DebianGrub(Grub("\"quiet\"")).WithCpuVendor("CentaurHauls");
        var r = host.Setup();
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("passthru: cannot tell the CPU vendor from ", r.Stderr);
    }

    [Fact]
    public void A_device_already_on_vfio_pci_gets_its_usual_driver_from_modules_alias()
    {
        using var host = ScratchHost.DebianGrub(Grub("\"quiet\""))
            .With("lib/modules/6.18.44-fc-v657/modules.alias", "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\nalias pci:v*d*sv*sd*bc*sc*i* vfio_pci\nalias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n");
        File.Delete(Path.Combine(host.Root, "sys/devices/pci0000:00/0000:00:04.0/driver"));
        File.CreateSymbolicLink(Path.Combine(host.Root, "sys/devices/pci0000:00/0000:00:04.0/driver"), "../../../bus/pci/drivers/vfio-pci");
        Assert.Contains("+softdep virtio_pci pre: vfio-pci\n", host.Setup("--device", "00:04.0").Stdout);
    }

    [Theory]
    [InlineData("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001053sv00001AF4sd00001053bcFFscFFi00", true)]
    [InlineData("pci:v00008086d000010D3sv*sd*bc*sc*i*", "pci:v00001AF4d00001053sv00001AF4sd00001053bcFFscFFi00", false)]
    [InlineData("pci:v*d*sv*sd*bc0[23]sc*i*", "pci:v00001AF4d00001041sv00001AF4sd00001041bc02sc00i00", true)]
    [InlineData("pci:v*d*sv*sd*bc0[13]sc*i*", "pci:v00001AF4d00001041sv00001AF4sd00001041bc02sc00i00", false)]
    public void Module_alias_patterns_match_as_modprobe_matches_them(string pattern, string modalias, bool expected) =>
        Assert.Equal(expected, Passthru.Setup.ModuleAliases.Glob(pattern, modalias));

    [Fact]
    public void Grub_without_its_tools_is_refused()
    {
        using var host = new ScratchHost().With("etc/default/grub", "GRUB_CMDLINE_LINUX=\"\"\n");
        var r = host.Setup();
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"passthru: {host.Root}/etc/default/grub is here but none of update-grub, grub2-mkconfig, grub-mkconfig is installed: install GRUB's tools or choose --boot-loader\n", r.Stderr);
    }

    /// <summary>A second function with the same IDs as an existing one (two identical NICs).</summary>
    internal static void AddTwin(ScratchHost host, string of, string twin)
    {
        var devices = Path.Combine(host.Root, "sys/devices/pci0000:00");
        var (code, _, err) = Repo.Exec("cp", "-a", Path.Combine(devices, of), Path.Combine(devices, twin));
        Assert.True(code == 0, err);
        File.CreateSymbolicLink(Path.Combine(host.Root, "sys/bus/pci/devices", twin), "../../../devices/pci0000:00/" + twin);
    }
}
