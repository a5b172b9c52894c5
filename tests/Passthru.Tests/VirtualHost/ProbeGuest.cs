using Passthru.Tests.Support;

namespace Passthru.Tests.VirtualHost;

/// <summary>
/// The probe guest (tests/vm/probe, a multiboot kernel), built once per test run by `tests/vm/build.sh probe` for the
/// classes that boot it straight in QEMU, so each passes when run alone (the virtual host builds it too, for itself).
/// </summary>
public static class ProbeGuest
{
    private static readonly Lazy<string> Built = new(Build);

    public static string Elf => Built.Value;

    private static string Build()
    {
        var build = Repo.Exec("bash", Path.Combine(Repo.Root, "tests", "vm", "build.sh"), "probe");
        if (build.ExitCode != 0) throw new InvalidOperationException($"tests/vm/build.sh probe failed (exit {build.ExitCode}): {build.Stdout}{build.Stderr}");
        var elf = Path.Combine(Repo.Root, "tests", "vm", ".cache", "probe", "probe.elf");
        if (!File.Exists(elf)) throw new InvalidOperationException($"tests/vm/build.sh probe made no {elf}");
        return elf;
    }
}
