using Passthru.Tests.Support;

namespace Passthru.Tests.VirtualHost;

/// <summary>The probe guest booted straight by QEMU (no virtual host): it must report what QEMU gave it.</summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public class ProbeGuestTests
{
    private static string BuildProbe() => ProbeGuest.Elf;

    [Fact]
    public void Prints_its_command_line_modules_and_the_pci_functions_of_the_machine()
    {
        var probe = BuildProbe();
        var r = Repo.Exec("timeout", "120", "qemu-system-x86_64", "-M", "q35", "-accel", "tcg", "-m", "128", "-display", "none",
            "-monitor", "none", "-serial", "stdio", "-no-reboot", "-nodefaults",
            "-kernel", probe, "-append", "loglevel=3 hello",
            "-initrd", $"{probe} boot,{probe} serial0.terminal xterm,,a",
            "-device", "e1000e,addr=03.0", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04");
        // isa-debug-exit's status is (value << 1) | 1: the probe writes 0, so QEMU exits 1 when it finished.
        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}: {r.Stdout}{r.Stderr}");
        var lines = r.Stdout.Replace("\r", "").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal([
            "probe: start",
            $"probe: cmdline: {probe} loglevel=3 hello",
            $"probe: module 00: {probe} boot",
            $"probe: module 01: {probe} serial0.terminal xterm,a",
            "probe: pci 00:00.0 8086:29c0 class 0600",
            "probe: pci 00:03.0 8086:10d3 class 0200",
            "probe: pci 00:1f.0 8086:2918 class 0601",
            "probe: pci 00:1f.2 8086:2922 class 0106",
            "probe: pci 00:1f.3 8086:2930 class 0c05",
            "probe: done"], lines);
    }
}
