using Passthru.Export;
using Passthru.Pci;
using Xunit.Abstractions;

namespace Passthru.Tests.Export;

[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("libvirt")]
public sealed class LibvirtDomainTests(LibvirtFixture libvirt, ITestOutputHelper output) : IDisposable
{
    /// <summary>The domain files this test wrote, removed when it ends (xUnit disposes each test's instance).</summary>
    private readonly List<string> _written = [];

    private string Write(VmDefinition vm)
    {
        var file = Path.Combine(Path.GetTempPath(), $"passthru-domain-{Guid.NewGuid():n}.xml");
        _written.Add(file);
        File.WriteAllText(file, LibvirtDomain.ToXml(LibvirtDomain.Build(vm)));
        return file;
    }

    public void Dispose()
    {
        foreach (var file in _written) File.Delete(file);
    }

    private static readonly VmDefinition Barrelfish = new()
    {
        Name = "barrelfish & <friends>",
        MemoryMiB = 1024, Cpus = 2, Accelerator = "tcg", Emulator = "/usr/bin/qemu-system-x86_64",
        Kernel = "/build/x86_64/sbin/elver",
        Cmdline = "loglevel=3",
        Initrd = "/build/x86_64/sbin/cpu loglevel=3,/build/x86_64/sbin/init,/build/x86_64/sbin/angler serial0.terminal xterm,/build/x,,y a,,b",
        Devices = [new HostDevice(PciAddress.Parse("0000:83:00.0")), new HostDevice(PciAddress.Parse("0000:83:00.1"), RomBar: false)],
        ExtraQemuArgs = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
        Net = new Passthru.Launch.GuestNetwork("e1000"),
    };

    [Fact]
    public void A_barrelfish_domain_passes_libvirts_own_schema()
    {
        var file = Write(Barrelfish);
        var (code, text) = libvirt.Validate(file);
        Assert.True(code == 0, text + "\n" + File.ReadAllText(file));
    }

    [Fact]
    public void A_domain_with_a_64_bit_hole_for_large_bars_passes_the_schema()
    {
        var file = Write(new VmDefinition { Name = "gpu", Kernel = "/boot/vmlinuz", Devices = [new HostDevice(PciAddress.Parse("0000:03:00.0"))], PciHole64 = 128UL << 30 });
        Assert.Contains("<pcihole64 unit=\"KiB\">134217728</pcihole64>", File.ReadAllText(file));
        var (code, text) = libvirt.Validate(file);
        Assert.True(code == 0, text + "\n" + File.ReadAllText(file));
    }

    [Fact]
    public void A_disk_and_cdrom_domain_passes_the_schema()
    {
        var file = Write(new VmDefinition { Name = "disk", Disks = ["/images/a b.qcow2"], Cdrom = "/isos/x.iso", Accelerator = "kvm" });
        var (code, text) = libvirt.Validate(file);
        Assert.True(code == 0, text);
    }

    [Fact]
    public void Libvirt_gives_qemu_the_same_kernel_initrd_append_and_vfio_hosts()
    {
        if (libvirt.DaemonUnavailable is string why)
        {
            // Said in the test output and the closing note; schema validation above still ran.
            output.WriteLine("libvirt daemon unavailable, domxml-to-native not checked: " + why);
            Assert.Fail("libvirt daemon unavailable: " + why);
        }
        var argv = libvirt.QemuArgv(Write(Barrelfish));
        string After(string flag) => argv[argv.ToList().IndexOf(flag) + 1];
        Assert.Equal(Barrelfish.Kernel, After("-kernel"));
        Assert.Equal(Barrelfish.Initrd, After("-initrd"));
        Assert.Equal(Barrelfish.Cmdline, After("-append"));
        var hosts = argv.Where(a => a.Contains("vfio-pci", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, hosts.Count);
        Assert.Contains("\"host\":\"0000:83:00.0\"", hosts[0]);
        Assert.Contains("\"host\":\"0000:83:00.1\"", hosts[1]);
        Assert.Contains("isa-debug-exit,iobase=0xf4,iosize=0x04", argv);
        // --net user,model=e1000: one user-network NIC of that model, as run's -nic gives it.
        var nics = argv.Where(a => a.Contains("\"netdev\"", StringComparison.Ordinal) || a.Contains("netdev=", StringComparison.Ordinal)).ToList();
        Assert.Single(nics);
        Assert.Contains("e1000", nics[0]);
        // (domxml-to-native shows every interface as a tap it would open: the user type is checked in the XML below.)
    }

    [Fact]
    public void Without_net_the_domain_has_no_interface()
    {
        var xml = LibvirtDomain.ToXml(LibvirtDomain.Build(Barrelfish with { Net = null }));
        Assert.DoesNotContain("<interface", xml);
        Assert.Contains("<interface type=\"user\">", LibvirtDomain.ToXml(LibvirtDomain.Build(Barrelfish)));
    }

    [Fact]
    public void Names_and_paths_are_escaped_by_the_xml_library()
    {
        var xml = LibvirtDomain.ToXml(LibvirtDomain.Build(Barrelfish));
        Assert.Contains("<name>barrelfish &amp; &lt;friends&gt;</name>", xml);
    }
}
