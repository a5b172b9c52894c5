using System.Text.Json;
using Passthru.Tests.Support;

namespace Passthru.Tests.Discovery;

/// <summary>
/// The capture of the virtual host (tests/vm): q35 with an emulated Intel IOMMU, an e1000e alone in its group, its
/// twin, an NVMe controller, and two e1000 functions that share a group behind a PCIe-to-PCI bridge.
/// </summary>
public class VirtualHostCaptureTests
{
    [Fact]
    public void Lines_begin_exactly_as_lspci_Dnn_on_the_same_tree()
    {
        var lspci = ListTests.LspciOnCapture("vhost");
        var ours = CliRunner.OnCapture("vhost", "list");
        Assert.Equal(lspci, ours.Lines.Select(l => l[..l.IndexOf("  driver=", StringComparison.Ordinal)]));
    }

    [Fact]
    public void Drivers_agree_with_lspci_run_inside_the_virtual_host()
    {
        // lspci -k as the virtual host's own lspci printed it (tests/captures/vhost/lspci-Dnnk.txt).
        var expected = new Dictionary<string, string>();
        string? current = null;
        foreach (var line in File.ReadAllLines(Path.Combine(Repo.Capture("vhost"), "lspci-Dnnk.txt")))
        {
            if (!line.StartsWith('\t')) current = line[..12];
            else if (line.StartsWith("\tKernel driver in use: ", StringComparison.Ordinal)) expected[current!] = line["\tKernel driver in use: ".Length..];
        }
        var ours = CliRunner.OnCapture("vhost", "list").Lines.ToDictionary(l => l[..12], l => l.Split("driver=")[1].Split(' ')[0]);
        Assert.Equal(13, ours.Count);
        foreach (var (address, driver) in ours) Assert.Equal(expected.GetValueOrDefault(address, "none"), driver);
    }

    [Fact]
    public void List_shows_drivers_and_groups()
    {
        var r = CliRunner.OnCapture("vhost", "list");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.Stderr);
        Assert.Equal("""
            0000:00:00.0 Host bridge [0600]: Intel Corporation 82G33/G31/P35/P31 Express DRAM Controller [8086:29c0]  driver=none group=0
            0000:00:01.0 Unclassified device [0002]: Red Hat, Inc. Virtio filesystem [1af4:1009]  driver=virtio-pci group=1
            0000:00:02.0 Ethernet controller [0200]: Intel Corporation 82574L Gigabit Network Connection [8086:10d3]  driver=e1000e group=2
            0000:00:03.0 Ethernet controller [0200]: Intel Corporation 82574L Gigabit Network Connection [8086:10d3]  driver=e1000e group=3
            0000:00:04.0 Non-Volatile memory controller [0108]: Red Hat, Inc. QEMU NVM Express Controller [1b36:0010] (rev 02)  driver=nvme group=4
            0000:00:05.0 PCI bridge [0604]: Red Hat, Inc. QEMU PCIe Root port [1b36:000c]  driver=pcieport group=5
            0000:00:06.0 Unclassified device [0002]: Red Hat, Inc. Virtio filesystem [1af4:1009]  driver=virtio-pci group=6
            0000:00:1f.0 ISA bridge [0601]: Intel Corporation 82801IB (ICH9) LPC Interface Controller [8086:2918] (rev 02)  driver=none group=7
            0000:00:1f.2 SATA controller [0106]: Intel Corporation 82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode] [8086:2922] (rev 02)  driver=none group=7
            0000:00:1f.3 SMBus [0c05]: Intel Corporation 82801I (ICH9 Family) SMBus Controller [8086:2930] (rev 02)  driver=none group=7
            0000:01:00.0 PCI bridge [0604]: Red Hat, Inc. Device [1b36:000e]  driver=none group=8
            0000:02:01.0 Ethernet controller [0200]: Intel Corporation 82540EM Gigabit Ethernet Controller [8086:100e] (rev 03)  driver=e1000 group=8
            0000:02:02.0 Ethernet controller [0200]: Intel Corporation 82540EM Gigabit Ethernet Controller [8086:100e] (rev 03)  driver=e1000 group=8

            """, r.Stdout);
    }

    [Fact]
    public void Groups_are_marked_viable_or_not_with_what_blocks_them()
    {
        var r = CliRunner.OnCapture("vhost", "list", "--groups");
        Assert.Equal("""
            IOMMU group 0: viable
              0000:00:00.0 Host bridge [0600]: Intel Corporation 82G33/G31/P35/P31 Express DRAM Controller [8086:29c0]  driver=none
            IOMMU group 1: not viable: 0000:00:01.0 (virtio-pci) must move to vfio-pci
              0000:00:01.0 Unclassified device [0002]: Red Hat, Inc. Virtio filesystem [1af4:1009]  driver=virtio-pci
            IOMMU group 2: not viable: 0000:00:02.0 (e1000e) must move to vfio-pci
              0000:00:02.0 Ethernet controller [0200]: Intel Corporation 82574L Gigabit Network Connection [8086:10d3]  driver=e1000e
            IOMMU group 3: not viable: 0000:00:03.0 (e1000e) must move to vfio-pci
              0000:00:03.0 Ethernet controller [0200]: Intel Corporation 82574L Gigabit Network Connection [8086:10d3]  driver=e1000e
            IOMMU group 4: not viable: 0000:00:04.0 (nvme) must move to vfio-pci
              0000:00:04.0 Non-Volatile memory controller [0108]: Red Hat, Inc. QEMU NVM Express Controller [1b36:0010] (rev 02)  driver=nvme
            IOMMU group 5: viable
              0000:00:05.0 PCI bridge [0604]: Red Hat, Inc. QEMU PCIe Root port [1b36:000c]  driver=pcieport  (bridge: stays with the host)
            IOMMU group 6: not viable: 0000:00:06.0 (virtio-pci) must move to vfio-pci
              0000:00:06.0 Unclassified device [0002]: Red Hat, Inc. Virtio filesystem [1af4:1009]  driver=virtio-pci
            IOMMU group 7: viable
              0000:00:1f.0 ISA bridge [0601]: Intel Corporation 82801IB (ICH9) LPC Interface Controller [8086:2918] (rev 02)  driver=none
              0000:00:1f.2 SATA controller [0106]: Intel Corporation 82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode] [8086:2922] (rev 02)  driver=none
              0000:00:1f.3 SMBus [0c05]: Intel Corporation 82801I (ICH9 Family) SMBus Controller [8086:2930] (rev 02)  driver=none
            IOMMU group 8: not viable: 0000:02:01.0 (e1000), 0000:02:02.0 (e1000) must move to vfio-pci
              0000:01:00.0 PCI bridge [0604]: Red Hat, Inc. Device [1b36:000e]  driver=none  (bridge: stays with the host)
              0000:02:01.0 Ethernet controller [0200]: Intel Corporation 82540EM Gigabit Ethernet Controller [8086:100e] (rev 03)  driver=e1000
              0000:02:02.0 Ethernet controller [0200]: Intel Corporation 82540EM Gigabit Ethernet Controller [8086:100e] (rev 03)  driver=e1000

            """, r.Stdout);
    }

    [Fact]
    public void Group_filter_keeps_whole_groups_of_matching_devices()
    {
        var r = CliRunner.OnCapture("vhost", "list", "--groups", "--driver", "e1000");
        Assert.Equal(["IOMMU group 8: not viable: 0000:02:01.0 (e1000), 0000:02:02.0 (e1000) must move to vfio-pci",
            "  0000:01:00.0 PCI bridge [0604]: Red Hat, Inc. Device [1b36:000e]  driver=none  (bridge: stays with the host)",
            "  0000:02:01.0 Ethernet controller [0200]: Intel Corporation 82540EM Gigabit Ethernet Controller [8086:100e] (rev 03)  driver=e1000",
            "  0000:02:02.0 Ethernet controller [0200]: Intel Corporation 82540EM Gigabit Ethernet Controller [8086:100e] (rev 03)  driver=e1000"], r.Lines);
    }

    [Fact]
    public void Twins_by_ids_are_listed_and_refused()
    {
        var r = CliRunner.OnCapture("vhost", "show", "8086:10d3");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("passthru: 8086:10d3 matches 2 functions (0000:00:02.0, 0000:00:03.0): name one by its address\n", r.Stderr);
    }

    [Fact]
    public void Show_a_device_of_a_shared_group_says_what_moves_with_it()
    {
        var r = CliRunner.OnCapture("vhost", "show", "02:01.0");
        Assert.Equal("""
            0000:02:01.0 Ethernet controller [0200]: Intel Corporation 82540EM Gigabit Ethernet Controller [8086:100e] (rev 03)
              Vendor:          Intel Corporation [8086]
              Device:          82540EM Gigabit Ethernet Controller [100e]
              Class:           Ethernet controller [0200], prog-if 00
              Revision:        03
              Subsystem:       Red Hat, Inc. QEMU Virtual Machine [1af4:1100]
              Driver:          e1000
              Driver override: none
              IOMMU group:     8 (not viable: 0000:02:01.0 (e1000), 0000:02:02.0 (e1000) must move to vfio-pci)
              Group members:   0000:01:00.0 Red Hat, Inc. Device [1b36:000e] driver=none (bridge)
                               0000:02:01.0 Intel Corporation 82540EM Gigabit Ethernet Controller [8086:100e] driver=e1000 (this device)
                               0000:02:02.0 Intel Corporation 82540EM Gigabit Ethernet Controller [8086:100e] driver=e1000
              Why this group:  0000:01:00.0 is a PCIe-to-PCI bridge: every function behind it reaches the IOMMU with the bridge's requester ID, so the IOMMU cannot tell 0000:02:01.0 from 0000:02:02.0 and they form one group
                               what to do: put the device in another slot (one whose root port isolates it), use a platform whose root ports have ACS, or pass the whole group (--group); the pcie_acs_override kernel patch only makes Linux pretend the devices are isolated (they can still reach each other behind the IOMMU's back), so Passthru never applies it
              Reset methods:   bus
                               only a bus reset (on 0000:01:00.0), which also resets 0000:02:02.0
              Power:           state not reported, D3cold not allowed
              BARs:            BAR0: 128 KiB memory, 32-bit, non-prefetchable
                               BAR1: 64 bytes I/O ports
              Boot VGA:        n/a
              Option ROM:      256 KiB ROM BAR; `passthru rom 0000:02:01.0` reads and checks it
              NUMA node:       none
              Passthrough:     possible: `passthru bind --group 0000:02:01.0` would
                               move 0000:02:01.0 from e1000 to vfio-pci
                               move 0000:02:02.0 from e1000 to vfio-pci
                               warning: IOMMU group 8 also holds 0000:02:02.0: they move with it (bind --group)

            """, r.Stdout);
    }

    [Fact]
    public void Show_json_lists_the_group_and_what_would_move()
    {
        var r = CliRunner.OnCapture("vhost", "show", "0000:00:02.0", "--json");
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal(2, root.GetProperty("group").GetProperty("number").GetInt32());
        Assert.False(root.GetProperty("group").GetProperty("viable").GetBoolean());
        Assert.Equal(["0000:00:02.0"], root.GetProperty("passthrough").GetProperty("to_move").EnumerateArray().Select(e => e.GetString()));
        Assert.True(root.GetProperty("passthrough").GetProperty("possible").GetBoolean());
        Assert.Equal(["pm"], root.GetProperty("reset_methods").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public void Check_finds_the_iommu_enabled_with_interrupt_remapping()
    {
        var r = CliRunner.OnCapture("vhost", "check", "--json");
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        var statuses = doc.RootElement.GetProperty("findings").EnumerateArray()
            .ToDictionary(f => f.GetProperty("id").GetString()!, f => f.GetProperty("status").GetString() + ": " + f.GetProperty("message").GetString());
        Assert.Equal("PASS: Intel VT-d (ACPI DMAR table)", statuses["iommu-hw"]);
        Assert.Equal("PASS: 1 IOMMU unit, 9 IOMMU groups", statuses["iommu-on"]);
        Assert.Equal("PASS: intel_iommu=on", statuses["iommu-param"]);
        Assert.Equal("PASS: supported by the IOMMU", statuses["intremap"]);
        Assert.Equal("PASS: available for kernel 6.1.0-56-amd64 (loaded on demand by passthru bind)", statuses["vfio"]);
        Assert.Equal("WARN: /dev/kvm does not exist: guests run under slow emulation (TCG)", statuses["kvm"]);
    }
}
