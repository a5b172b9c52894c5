using System.Diagnostics;
using Passthru.Tests.Support;

namespace Passthru.Tests.VirtualHost;

public sealed record VmResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

/// <summary>
/// One virtual host (tests/vm/vhost.sh) for a whole test collection: booted once, commands run inside it as root in
/// a chroot of this machine's root (so the repository's paths are the same), shut down when the collection ends.
/// If it cannot be built or booted the tests fail with the reason: they never pass by skipping.
/// </summary>
public partial class VirtualHostFixture : IDisposable
{
    public string Directory { get; }
    /// <summary>The NativeAOT binary the virtual host runs (dotnet would take seconds per start under emulation).</summary>
    public string Passthru { get; } = PublishedBinary.Path;
    public string Probe { get; } = Path.Combine(Repo.Root, "tests", "vm", ".cache", "probe", "probe.elf");
    /// <summary>The Linux guest: the virtual host's own Debian kernel and an initramfs with e1000e (tests/vm/linux-guest).</summary>
    public string GuestKernel { get; } = Path.Combine(Repo.Root, "tests", "vm", ".cache", "vmlinuz");
    public string GuestInitrd { get; } = Path.Combine(Repo.Root, "tests", "vm", ".cache", "guest-initrd.gz");
    private static string Script => Path.Combine(Repo.Root, "tests", "vm", "vhost.sh");

    public VirtualHostFixture() : this(interruptRemapping: true) { }

    /// <param name="interruptRemapping">false: an emulated IOMMU that does not remap interrupts (intremap=off).</param>
    /// <param name="sriov">true: with an SR-IOV physical function (VHOST_SRIOV=on), which renumbers the IOMMU groups after it.</param>
    /// <param name="gpu">"on": with the GPU stand-in (VHOST_GPU=on): VGA 03:00.0 and HD audio 03:00.1 in one group;
    /// "boot": the same GPU as UEFI's boot display, efifb in its BAR 0 and no host driver on the VGA.</param>
    protected VirtualHostFixture(bool interruptRemapping, bool sriov = false, string gpu = "off")
    {
        Directory = Path.Combine(Repo.Root, "tests", "vm", ".cache", "hosts", $"{Environment.ProcessId}-{Guid.NewGuid().ToString("n")[..6]}");
        System.IO.Directory.CreateDirectory(Directory);
        var start = Exec(["env", $"VHOST_INTREMAP={(interruptRemapping ? "on" : "off")}", $"VHOST_SRIOV={(sriov ? "on" : "off")}", $"VHOST_GPU={gpu}", "bash", Script, "start", Directory], TimeSpan.FromMinutes(12));
        if (start.ExitCode != 0)
            throw new InvalidOperationException($"the virtual host did not boot:\n{start}\n--- console\n{ConsoleTail()}");
    }

    /// <summary>Runs a shell command inside the virtual host, from the repository root.</summary>
    public VmResult Run(string shellCommand, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromMinutes(3);
        return Exec(["bash", Script, "exec", Directory, "--timeout", ((int)limit.TotalSeconds).ToString(), "--", "sh", "-c", shellCommand], limit + TimeSpan.FromSeconds(30));
    }

    /// <summary>Runs a command and fails the test with its output and the console's tail unless it exits 0.</summary>
    public string RunOk(string shellCommand, TimeSpan? timeout = null)
    {
        var r = Run(shellCommand, timeout);
        if (r.ExitCode != 0) throw new Xunit.Sdk.XunitException($"`{shellCommand}` failed in the virtual host:\n{r}\n--- console\n{ConsoleTail()}");
        return r.Stdout;
    }

    /// <summary>
    /// Runs a `passthru run` that boots a guest nested in the virtual host, where QEMU emulates a machine inside a
    /// machine QEMU emulates. That inner QEMU can die of a fault of its own: once in CI (stop 37), it got SIGSEGV
    /// right after SeaBIOS's "Booting from ROM", in a run that had passed in every CI run before. That is QEMU's, not
    /// Passthru's; Passthru's share is to give the devices back. The crash, the kernel's report of it and the run's
    /// output go to the test's output; then the journal must be empty, or the test fails; only then is the run tried
    /// once more, whose result the test asserts on. Any other failure is returned at once, and
    /// a QEMU that crashes every time fails the second try.
    /// </summary>
    public VmResult RunGuest(string shellCommand, TimeSpan timeout, Action<string> log)
    {
        var first = Run(shellCommand, timeout);
        if (QemuCrash().Match(first.Stderr) is not { Success: true } crash) return first;
        var signal = int.Parse(crash.Groups[1].Value);
        log($"QEMU died of signal {signal} in the nested guest; trying the run once more. The kernel's report:\n"
            + Run("dmesg | grep -E 'segfault at|traps:|general protection|exception' | tail -n 5").Stdout
            + $"The run:\n{first}");
        var left = Run($"{Passthru} restore --dry-run");
        if (!left.Stdout.StartsWith("nothing to give back", StringComparison.Ordinal))
            throw new Xunit.Sdk.XunitException($"QEMU crashed and Passthru did not give everything back:\n{left}\n--- the run\n{first}");
        return Run(shellCommand, timeout);
    }

    /// <summary>
    /// Passthru's words for a QEMU that died of a signal it raised on itself (SIGILL, SIGABRT, SIGBUS, SIGFPE, SIGSEGV),
    /// not one sent to it: a kill or a timeout is no reason to try again.
    /// </summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"QEMU died of signal (4|6|7|8|11) ")]
    internal static partial System.Text.RegularExpressions.Regex QemuCrash();

    public string ConsoleTail(int lines = 30)
    {
        var log = Path.Combine(Directory, "console.log");
        return File.Exists(log) ? string.Join('\n', File.ReadLines(log).TakeLast(lines)) : "(no console log)";
    }

    private static VmResult Exec(string[] argv, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(argv[0]) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Repo.Root };
        foreach (var a in argv.Skip(1)) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            return new VmResult(124, stdout.Result, stderr.Result + $"\n(killed after {timeout})");
        }
        p.WaitForExit();
        return new VmResult(p.ExitCode, stdout.Result, stderr.Result);
    }

    public void Dispose()
    {
        GC.SuppressFinalize(this);
        Exec(["bash", Script, "stop", Directory], TimeSpan.FromSeconds(30));
        try { System.IO.Directory.Delete(Directory, true); } catch (IOException) { }
    }
}

[CollectionDefinition("virtual host")]
public sealed class VirtualHostCollection : ICollectionFixture<VirtualHostFixture>;

/// <summary>A virtual host whose emulated IOMMU does not remap interrupts, like many older or consumer platforms.</summary>
public sealed class NoInterruptRemappingFixture() : VirtualHostFixture(interruptRemapping: false);

[CollectionDefinition("virtual host without interrupt remapping")]
public sealed class NoInterruptRemappingCollection : ICollectionFixture<NoInterruptRemappingFixture>;

/// <summary>
/// Real guests nested in the virtual host (a Linux guest with the e1000e driver, real Barrelfish): minutes each under
/// emulation, so they have a virtual host and a collection of their own.
/// </summary>
[CollectionDefinition("virtual host: real guests")]
public sealed class RealGuestsCollection : ICollectionFixture<VirtualHostFixture>;

/// <summary>
/// A virtual host with an SR-IOV physical function: QEMU's NVMe at 0000:03:00.0 (behind a root port at 00:07.0),
/// sriov_totalvfs 2, its VFs 03:00.1 and 03:00.2 each in an IOMMU group of its own. The extra root port renumbers
/// the groups of 00:1f.x and the bridge, which other tests name: hence a virtual host of its own.
/// </summary>
public sealed class SriovFixture() : VirtualHostFixture(interruptRemapping: true, sriov: true);

[CollectionDefinition("virtual host with SR-IOV")]
public sealed class SriovCollection : ICollectionFixture<SriovFixture>;

/// <summary>
/// A virtual host with the GPU stand-in (VHOST_GPU=on): QEMU's VGA (1234:1111, bochs-drm, option ROM 55 aa) at
/// 0000:03:00.0 and an HD-audio controller (snd_hda_intel) at 0000:03:00.1, one multifunction device behind the root
/// port at 00:06.0, one IOMMU group, as a desktop GPU and its HDMI audio are.
/// </summary>
public sealed class GpuFixture() : VirtualHostFixture(interruptRemapping: true, gpu: "on");

[CollectionDefinition("virtual host with a GPU")]
public sealed class GpuCollection : ICollectionFixture<GpuFixture>;

/// <summary>
/// A virtual host whose GPU stand-in is UEFI's boot display (VHOST_GPU=boot, OVMF): boot_vga 1, efifb holding the
/// start of the VGA's BAR 0 for the framebuffer console on vtcon1, no host driver on the VGA (as when a user keeps
/// amdgpu or nouveau off a GPU meant for guests): the `BAR 0: can't reserve` case. About 35 s to boot under TCG.
/// </summary>
public sealed class GpuBootFixture() : VirtualHostFixture(interruptRemapping: true, gpu: "boot");

[CollectionDefinition("virtual host with a GPU as boot display")]
public sealed class GpuBootCollection : ICollectionFixture<GpuBootFixture>;
