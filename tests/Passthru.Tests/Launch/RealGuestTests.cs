using System.Diagnostics;
using System.Text.RegularExpressions;
using Passthru.Tests.Support;
using Passthru.Tests.VirtualHost;
using Xunit.Abstractions;

namespace Passthru.Tests.Launch;

/// <summary>
/// The mission's proof: a guest's own driver using the passed-through device, not just its IDs showing up. Inside the
/// virtual host, `passthru run` gives the e1000e (0000:00:02.0) to a Linux guest, whose e1000e driver gets a DHCP
/// lease from QEMU's user network through it, and to real Barrelfish (../shared/barrelfish), whose e1000n driver
/// does the same. Packets both ways go by DMA through vfio and the emulated IOMMU, completions by interrupts. Each
/// guest takes minutes (emulation nested in emulation); the times are written to the test output.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host: real guests")]
public partial class RealGuestTests(VirtualHostFixture vm, ITestOutputHelper output)
{
    private const string Drv = "basename $(readlink /sys/bus/pci/devices/0000:00:02.0/driver)";

    private VmResult Timed(string what, string command, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        var r = vm.RunGuest(command, limit, output.WriteLine);
        output.WriteLine($"{what}: {clock.Elapsed.TotalSeconds:0} s (exit {r.ExitCode})");
        output.WriteLine(r.Stderr);
        return r;
    }

    [Fact]
    public void A_linux_guests_e1000e_driver_gets_a_dhcp_lease_over_the_passed_through_nic()
    {
        try
        {
            var r = Timed("Linux guest", $"{vm.Passthru} run --kernel {vm.GuestKernel} --initrd {vm.GuestInitrd} --append 'console=ttyS0 quiet panic=-1' "
                + "--memory 256 --device 0000:00:02.0 --expect 'guest: done' --timeout 900", TimeSpan.FromMinutes(17));
            var console = r.Stdout.Replace("\r", "");
            Assert.True(r.ExitCode == 0, r.ToString());
            // The guest has the passed device behind its root port, and no emulated NIC beside it (-nic none).
            Assert.Contains("guest: pci 0000:01:00.0 8086:10d3 class 0200 driver=e1000e\n", console);
            Assert.Single(GuestLines(console, "guest: pci "), l => l.Contains("class 0200"));
            Assert.Equal(["guest: net eth0 driver=e1000e pci=0000:01:00.0 mac=52:54:00:12:34:56"], GuestLines(console, "guest: net "));
            // The lease came through the device: QEMU's user network is only reachable through it.
            Assert.Contains("guest: DHCP lease 10.0.2.15/24 on eth0 from 10.0.2.2", console);
            Assert.Contains("guest: eth0 has 10.0.2.15/24", console);
            var interrupts = InterruptCount().Match(console);
            Assert.True(interrupts.Success && int.Parse(interrupts.Groups[1].Value) > 0, console);
            output.WriteLine(interrupts.Value);
            Assert.Contains("[passthru] gave 0000:00:02.0 back to e1000e", r.Stderr);
            Assert.Equal("e1000e", vm.RunOk(Drv).Trim());
            // All of it with QEMU never root (#24): its own user, the group node handed to it, the sandbox on.
            Assert.Matches(@"\[passthru\] QEMU runs as passthru-qemu \(\d+:\d+\), locked memory up to 1280 MiB for it alone, sandboxed", r.Stderr);
            Assert.Matches(@"\[passthru\] handed /dev/vfio/2 to passthru-qemu \(\d+:\d+\) until the guest ends", r.Stderr);
        }
        finally { vm.Run($"{vm.Passthru} restore"); }
    }

    [Fact]
    public void Real_barrelfish_starts_its_e1000n_on_the_passed_through_nic_and_gets_a_lease()
    {
        var menu = Repo.Shared("barrelfish/build/platforms/x86/menu.lst.x86_64");
        Assert.True(File.Exists(menu), $"{menu} is missing: the real Barrelfish build lives in ../shared/barrelfish beside the clone");
        try
        {
            var r = Timed("Barrelfish", $"{vm.Passthru} run --menu {menu} --memory 1024 --device 0000:00:02.0 --expect 'DHCP completed' --timeout 1500",
                TimeSpan.FromMinutes(27));
            AssertE1000nLease(r);
            Assert.Equal("e1000e", vm.RunOk(Drv).Trim());
        }
        finally { vm.Run($"{vm.Passthru} restore"); }
    }

    /// <summary>
    /// Real Barrelfish (../shared/barrelfish) from the bootable ISO `passthru image` builds of its menu, booted by
    /// `run --cdrom` through GRUB: the same e1000n on the same passed-through NIC, and the same lease, as from the menu.
    /// Shares the virtual host with the menu's test above (one collection fixture).
    /// </summary>
    [Fact]
    public void Real_barrelfish_from_its_iso_gets_the_same_lease_over_the_passed_through_nic()
    {
        var menu = Repo.Shared("barrelfish/build/platforms/x86/menu.lst.x86_64");
        Assert.True(File.Exists(menu), $"{menu} is missing: the real Barrelfish build lives in ../shared/barrelfish beside the clone");
        // Built out here (the virtual host sees this machine's files read-only), into the virtual host's own directory.
        var iso = Path.Combine(vm.Directory, "barrelfish.iso");
        var image = CliRunner.Run("image", "--menu", menu, "-o", iso);
        Assert.True(image.ExitCode == 0, image.Stderr);
        try
        {
            var r = Timed("Barrelfish from its ISO", $"{vm.Passthru} run --cdrom {iso} --memory 1024 --device 0000:00:02.0 --expect 'DHCP completed' --timeout 1500",
                TimeSpan.FromMinutes(27));
            // Through GRUB, from the CD (GRUB draws its line with cursor moves between the letters).
            Assert.Contains("Booting `Barrelfish'", System.Text.RegularExpressions.Regex.Replace(r.Stdout, @"\x1b\[[0-9;?]*[A-Za-z]", ""));
            AssertE1000nLease(r);
            Assert.Equal("e1000e", vm.RunOk(Drv).Trim());
        }
        finally
        {
            vm.Run($"{vm.Passthru} restore");
            File.Delete(iso);
        }
    }

    /// <summary>Barrelfish's console after a run with the e1000e passed through: e1000n took it and got its lease; it went back.</summary>
    private void AssertE1000nLease(VmResult r)
    {
        var console = r.Stdout.Replace("\r", "");
        Assert.True(r.ExitCode == 0, r + "\n" + console);
        // Barrelfish's PCI domain found the device behind the root port (a bus other than 0), and kaluga started
        // e1000n for it; e1000n read the NIC's MAC (bytes in reverse order) and completed DHCP through it.
        var kaluga = KalugaStartsE1000n().Match(console);
        Assert.True(kaluga.Success && kaluga.Groups[1].Value != "0", console);
        output.WriteLine(kaluga.Value);
        Assert.Contains("e1000: MAC address: 563412005452", console);
        Assert.Contains("# Cardname e1000n:", console);
        Assert.Contains(":10d3:8086:", console);
        Assert.Contains("DHCP completed.", console);
        Assert.DoesNotContain("e1000n already running", console); // no second (emulated) NIC for it to take
        Assert.Contains("[passthru] gave 0000:00:02.0 back to e1000e", r.Stderr);
    }

    [Fact]
    public void A_console_script_drives_the_linux_guest_over_the_passed_through_nic()
    {
        try
        {
            // guest.shell: the Linux guest leaves a shell on the console after its DHCP lease; the script types into it.
            var r = Timed("Linux guest, scripted", $"""
                cat > /tmp/guest.script <<'SCRIPT'
                # The guest's own shell, with the passed-through e1000e up (busybox sh asks the terminal where its cursor is)
                timeout 600
                expect guest: shell
                timeout 60
                send ip -4 addr show eth0\r
                expect inet 10\.0\.2\.15/24
                send grep eth0 /proc/interrupts\r
                expect eth0-rx-0
                SCRIPT
                {vm.Passthru} run --kernel {vm.GuestKernel} --initrd {vm.GuestInitrd} --append 'console=ttyS0 quiet panic=-1 guest.shell' --memory 256 --device 0000:00:02.0 --script /tmp/guest.script --junit /tmp/guest.xml --timeout 900
                echo "exit $?"; cat /tmp/guest.xml
                """, TimeSpan.FromMinutes(17));
            Assert.True(r.Stdout.Split('\n').Contains("exit 0"), r.ToString()); // the whole line
            Assert.Contains("inet 10.0.2.15/24", r.Stdout);
            var junit = System.Xml.Linq.XDocument.Parse(r.Stdout[r.Stdout.IndexOf("<testsuite", StringComparison.Ordinal)..]);
            Assert.Equal("3", junit.Root!.Attribute("tests")!.Value);
            Assert.Equal("0", junit.Root!.Attribute("failures")!.Value);
            Assert.Contains("[passthru] gave 0000:00:02.0 back to e1000e", r.Stderr);
            Assert.Equal("e1000e", vm.RunOk(Drv).Trim());
        }
        finally { vm.Run($"{vm.Passthru} restore"); }
    }

    private static List<string> GuestLines(string console, string prefix) =>
        console.Split('\n').Select(l => l[(l.IndexOf("guest: ", StringComparison.Ordinal) is var i and >= 0 ? i : 0)..])
            .Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).ToList();

    [GeneratedRegex(@"guest: eth0 interrupts (\d+) \([^)]*\)")]
    private static partial Regex InterruptCount();

    [GeneratedRegex(@"Kaluga: Starting ""e1000n"" \(""e1000n_module""\) for \(bus=(\d+),dev=0,fun=0\)")]
    private static partial Regex KalugaStartsE1000n();
}
