using Passthru.Tests.Support;

namespace Passthru.Tests.Launch;

/// <summary>
/// Large BARs on a copy of the virtual host's capture: the e1000e at 0000:00:02.0 given a 64 GiB 64-bit prefetchable
/// BAR (as a GPU with its resizable BAR grown has), which QEMU's default 32 GiB 64-bit hole on q35 cannot hold.
/// </summary>
public sealed class LargeBarTests : IDisposable
{
    private readonly string _tree = Repo.CopyCapture("vhost");

    public void Dispose() => Directory.Delete(_tree, true);

    private CliResult Cli(params string[] args) => CliRunner.Run(["--root", _tree, "--pci-ids", Repo.SystemPciIds, .. args]);

    private void GiveBar0(string device, ulong size)
    {
        var file = Path.Combine(_tree, $"sys/bus/pci/devices/{device}/resource");
        var lines = File.ReadAllLines(file);
        ulong start = 0x40_0000_0000;
        lines[0] = $"0x{start:x16} 0x{start + size - 1:x16} 0x000000000014220c";
        lines[1] = "0x0000000000000000 0x0000000000000000 0x0000000000000000";
        File.WriteAllLines(file, lines);
    }

    [Fact]
    public void A_64_GiB_bar_makes_run_set_the_q35_hole_and_say_so()
    {
        GiveBar0("0000:00:02.0", 64UL << 30);
        var r = Cli("run", "--kernel", "/bin/true", "--device", "00:02.0", "--dry-run");
        Assert.True(r.ExitCode == 0, r.Stderr);
        // 64 GiB, plus up to 63 GiB for the hole's start (1 GiB aligned above RAM) to reach a 64 GiB boundary: 128 GiB.
        Assert.Contains("note: the passed devices' 64-bit prefetchable BARs need 64 GiB of 64-bit MMIO, more than QEMU's q35 default of 32 GiB: adding -global q35-pcihost.pci-hole64-size=128G\n", r.Stdout);
        Assert.Contains(" -machine q35,accel=", r.Stdout);
        Assert.Contains(" -global q35-pcihost.pci-hole64-size=128G ", r.Stdout);
        Assert.Contains("  BARs:            BAR0: 64 GiB memory, 64-bit, prefetchable\n", Cli("show", "00:02.0").Stdout);
    }

    [Fact]
    public void Devices_whose_bars_fit_the_default_add_nothing()
    {
        var r = Cli("run", "--kernel", "/bin/true", "--device", "00:02.0", "--dry-run");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.DoesNotContain("pci-hole64", r.Stdout);
        // 16 GiB fits: with the start aligned, 16 + 15 GiB is under 32.
        GiveBar0("0000:00:02.0", 16UL << 30);
        Assert.DoesNotContain("pci-hole64", Cli("run", "--kernel", "/bin/true", "--device", "00:02.0", "--dry-run").Stdout);
    }

    [Fact]
    public void Two_large_bars_add_up_and_a_machine_that_is_not_q35_gets_a_note()
    {
        GiveBar0("0000:00:02.0", 32UL << 30);
        GiveBar0("0000:00:03.0", 16UL << 30);
        var r = Cli("run", "--kernel", "/bin/true", "--device", "00:02.0", "--device", "00:03.0", "--dry-run");
        Assert.Contains("BARs need 48 GiB of 64-bit MMIO, more than QEMU's q35 default of 32 GiB: adding -global q35-pcihost.pci-hole64-size=128G\n", r.Stdout);
        var pc = Cli("run", "--kernel", "/bin/true", "--device", "00:02.0", "--machine", "pc", "--dry-run");
        Assert.Contains("BARs need 32 GiB of 64-bit MMIO: --machine pc is not q35, so Passthru sets no hole size", pc.Stdout);
        Assert.DoesNotContain("-global", pc.Stdout);
    }

    [Fact]
    public void The_libvirt_export_sets_pcihole64_on_the_root_controller_and_others_note_it()
    {
        GiveBar0("0000:00:02.0", 64UL << 30);
        var xml = Cli("export", "libvirt", "--kernel", "/bin/true", "--device", "00:02.0");
        Assert.True(xml.ExitCode == 0, xml.Stderr);
        Assert.Contains("<controller type=\"pci\" index=\"0\" model=\"pcie-root\">\n      <pcihole64 unit=\"KiB\">134217728</pcihole64>\n    </controller>", xml.Stdout);
        Assert.Contains("note: set as <pcihole64 unit='KiB'>134217728</pcihole64> on the pcie-root controller", xml.Stderr);
        var proxmox = Cli("export", "proxmox", "--kernel", "/bin/true", "--device", "00:02.0");
        Assert.Contains("the guest needs pci-hole64-size=128G", proxmox.Stderr);
    }
}
