using System.Text.Json.Nodes;
using Passthru.Tests.Support;

namespace Passthru.Tests.Export;

/// <summary>
/// `export kubevirt` against KubeVirt's own CRD schemas (strict about unknown fields) and its admission rules, with
/// KubeVirt's own example manifests through the same validator, and mutated exports to show the checks can fail.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
public sealed class KubeVirtExportTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("passthru-kubevirt-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private string File(string name, string text = "")
    {
        var path = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        System.IO.File.WriteAllText(path, text);
        return path;
    }

    /// <summary>The shared Barrelfish menu in a build tree holding every file it names.</summary>
    private string Menu()
    {
        var shared = Repo.Shared("fixtures/barrelfish/menu.lst.x86_64");
        var menu = Passthru.Launch.BarrelfishMenu.Load(shared);
        foreach (var m in menu.Modules.Prepend(menu.Kernel)) File(menu.Resolve(_dir, m.Path)[(_dir.Length + 1)..]);
        return File("platforms/menu.lst.x86_64", System.IO.File.ReadAllText(shared));
    }

    private const string Image = "registry.example.com/guests/linux:1";

    private static (CliResult Result, IReadOnlyList<KubeDocument> Documents) Export(params string[] args)
    {
        var r = CliRunner.OnCapture("vhost", ["export", "kubevirt", .. args]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return (r, KubeVirtSchema.ValidateText(r.Stdout));
    }

    private static void AssertAccepted(IReadOnlyList<KubeDocument> documents)
    {
        foreach (var d in documents) Assert.True(d.SchemaErrors.Count == 0, $"{d.Kind}: {string.Join("; ", d.SchemaErrors)}");
        var kubevirt = documents.SingleOrDefault(d => d.Kind == "KubeVirt")?.Object;
        var vm = documents.Single(d => d.Kind == "VirtualMachine").Object;
        var admission = Admission.Check(vm, kubevirt);
        Assert.True(admission.Count == 0, string.Join("; ", admission));
    }

    [Fact]
    public void KubeVirts_own_examples_pass_the_same_validator_as_VMIs_and_inside_a_VM()
    {
        var examples = Directory.GetFiles(Path.Combine(KubeVirtSchema.Fixtures, "examples"), "*.yaml");
        Assert.Equal(2, examples.Length);
        var documents = KubeVirtSchema.Validate(examples);
        Assert.Equal(2, documents.Count);
        // The USB example's device comes from a KubeVirt CR that permits it, as KubeVirt's documentation shows.
        var cluster = JsonNode.Parse("""
            {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt", "spec": {"configuration": {
              "developerConfiguration": {"featureGates": ["HostDevices"]},
              "permittedHostDevices": {"usb": [{"resourceName": "kubevirt.io/storage", "selectors": [{"vendor": "46f4", "product": "0001"}]}]}}}}
            """)!.AsObject();
        Assert.Empty(KubeVirtSchema.ValidateText(cluster.ToJsonString()).Single().SchemaErrors);
        foreach (var vmi in documents)
        {
            Assert.Equal("VirtualMachineInstance", vmi.Kind);
            Assert.True(vmi.SchemaErrors.Count == 0, string.Join("; ", vmi.SchemaErrors));
            Assert.Empty(Admission.Check(vmi.Object, cluster));
            var vm = new JsonObject
            {
                ["apiVersion"] = "kubevirt.io/v1", ["kind"] = "VirtualMachine", ["metadata"] = new JsonObject { ["name"] = "example" },
                ["spec"] = new JsonObject { ["runStrategy"] = "Always", ["template"] = new JsonObject { ["metadata"] = vmi.Object["metadata"]!.DeepClone(), ["spec"] = vmi.Object["spec"]!.DeepClone() } },
            };
            var inVm = KubeVirtSchema.ValidateText(vm.ToJsonString()).Single();
            Assert.True(inVm.SchemaErrors.Count == 0, string.Join("; ", inVm.SchemaErrors));
        }
    }

    [Fact]
    public void A_kernel_boot_with_devices_passes_the_schemas_and_admission_and_says_what_it_cannot_express()
    {
        var kernel = File("vmlinuz");
        var initrd = File("initrd.img");
        var (r, documents) = Export("--kernel", kernel, "--initrd", initrd, "--append", "console=ttyS0 quiet", "--cpus", "4", "-m", "2G",
            "--device", "00:02.0", "--device", "00:03.0,rombar=0", "--device", "00:04.0,x-vga=on", "--image", Image, "--name", "probe");
        AssertAccepted(documents);

        var vm = documents.Single(d => d.Kind == "VirtualMachine").Object;
        Assert.Equal("probe", (string?)vm["metadata"]!["name"]);
        var domain = vm["spec"]!["template"]!["spec"]!["domain"]!;
        Assert.Equal(4, (int)domain["cpu"]!["cores"]!);
        Assert.Equal("2048Mi", (string?)domain["memory"]!["guest"]);
        var container = domain["firmware"]!["kernelBoot"]!["container"]!;
        Assert.Equal(Image, (string?)container["image"]);
        Assert.Equal("/boot/vmlinuz", (string?)container["kernelPath"]);
        Assert.Equal("/boot/initrd.img", (string?)container["initrdPath"]);
        Assert.Equal("console=ttyS0 quiet", (string?)domain["firmware"]!["kernelBoot"]!["kernelArgs"]);
        Assert.False((bool)domain["devices"]!["autoattachPodInterface"]!); // as run: no NIC but the passed ones
        Assert.Equal(["ethernet0=pci.passthru/ethernet-8086-10d3", "ethernet1=pci.passthru/ethernet-8086-10d3", "nvme0=pci.passthru/nvme-1b36-0010"],
            domain["devices"]!["hostDevices"]!.AsArray().Select(d => $"{d!["name"]}={d["deviceName"]}"));

        var permitted = documents.Single(d => d.Kind == "KubeVirt").Object["spec"]!["configuration"]!;
        Assert.Equal(["8086:10d3=pci.passthru/ethernet-8086-10d3", "1b36:0010=pci.passthru/nvme-1b36-0010"],
            permitted["permittedHostDevices"]!["pciHostDevices"]!.AsArray().Select(p => $"{p!["pciVendorSelector"]}={p["resourceName"]}"));
        Assert.Equal(["HostDevices"], permitted["developerConfiguration"]!["featureGates"]!.AsArray().Select(g => (string?)g));

        Assert.Contains("note: 0000:00:02.0 and 0000:00:03.0 are both 8086:10d3: KubeVirt selects devices by vendor:device, not by address, so they are interchangeable", r.Stderr);
        Assert.Contains("note: rombar=0 for 0000:00:03.0 cannot be expressed", r.Stderr);
        Assert.Contains("note: x-vga=on for 0000:00:04.0 cannot be expressed", r.Stderr);
        Assert.Contains("on each node that runs it (devices on vfio-pci at boot): passthru setup --device 0000:00:02.0 --device 0000:00:03.0 --device 0000:00:04.0 --apply\n", r.Stderr);
        Assert.Contains($"note: {Image} must hold {kernel} at /boot/vmlinuz and {initrd} at /boot/initrd.img", r.Stderr);

        // The nodes' setup line is one `passthru setup` takes: its plan claims exactly these functions (the twin 00:03.0 by address).
        var setupLine = r.Stderr.Split('\n').Single(l => l.StartsWith("on each node", StringComparison.Ordinal)).Split(": ", 2)[1].Split(' ');
        Assert.Equal(["passthru", "setup"], setupLine[..2]);
        Assert.Equal("--apply", setupLine[^1]);
        var setup = CliRunner.OnCapture("vhost", [.. setupLine[1..^1], "--boot-loader", "kernel-install"]);
        Assert.True(setup.ExitCode == 0, setup.Stderr);
        Assert.Contains("vfio-pci.ids=1b36:0010", setup.Stdout);
        Assert.Contains("KERNEL==\"0000:00:02.0\", ATTR{driver_override}=\"vfio-pci\"", setup.Stdout);
        Assert.Contains("KERNEL==\"0000:00:03.0\", ATTR{driver_override}=\"vfio-pci\"", setup.Stdout);
    }

    [Fact]
    public void With_group_the_whole_group_is_passed_and_permitted()
    {
        var (r, documents) = Export("--kernel", File("vmlinuz"), "--device", "02:01.0", "--group", "--image", Image);
        AssertAccepted(documents);
        var hostDevices = documents.Single(d => d.Kind == "VirtualMachine").Object["spec"]!["template"]!["spec"]!["domain"]!["devices"]!["hostDevices"]!.AsArray();
        Assert.Equal(["ethernet0=pci.passthru/ethernet-8086-100e", "ethernet1=pci.passthru/ethernet-8086-100e"], hostDevices.Select(d => $"{d!["name"]}={d["deviceName"]}"));
        Assert.Single(documents.Single(d => d.Kind == "KubeVirt").Object["spec"]!["configuration"]!["permittedHostDevices"]!["pciHostDevices"]!.AsArray());
        Assert.Contains("note: 0000:02:01.0 and 0000:02:02.0 are both 8086:100e", r.Stderr);
        Assert.Contains("passthru setup --device 0000:02:01.0 --device 0000:02:02.0 --apply", r.Stderr);
    }

    [Fact]
    public void A_barrelfish_menu_says_its_modules_cannot_ride_in_initrdPath()
    {
        var (r, documents) = Export("--menu", Menu(), "--device", "00:02.0", "--net", "user,model=e1000", "--accel", "tcg", "--image", Image, "--", "-d", "int");
        AssertAccepted(documents);
        var spec = documents.Single(d => d.Kind == "VirtualMachine").Object["spec"]!["template"]!["spec"]!;
        var container = spec["domain"]!["firmware"]!["kernelBoot"]!["container"]!;
        Assert.Equal("/boot/elver", (string?)container["kernelPath"]);
        Assert.Null(container["initrdPath"]);
        Assert.Equal("loglevel=3", (string?)spec["domain"]!["firmware"]!["kernelBoot"]!["kernelArgs"]);
        Assert.Equal("e1000", (string?)spec["domain"]!["devices"]!["interfaces"]![0]!["model"]);
        Assert.Equal("default", (string?)spec["networks"]![0]!["name"]);
        Assert.True((bool)documents.Single(d => d.Kind == "KubeVirt").Object["spec"]!["configuration"]!["developerConfiguration"]!["useEmulation"]!);
        Assert.Matches("note: the menu's [0-9]+ multiboot modules cannot go in kernelBoot.initrdPath, which carries one initrd file: the VM boots elver alone. To boot the whole menu, give --image-out", r.Stderr);
        Assert.Contains("note: 0000:00:03.0 is also 8086:10d3: KubeVirt would hand it out as pci.passthru/ethernet-8086-10d3 too", r.Stderr);
        Assert.Contains("note: the QEMU arguments after -- (-d int) have no place in a KubeVirt VM and are left out", r.Stderr);
        Assert.Contains("note: --accel tcg: the KubeVirt CR below sets developerConfiguration.useEmulation", r.Stderr);
    }

    [Fact]
    public void A_barrelfish_menu_with_its_iso_boots_the_iso_as_a_containerDisk_cdrom()
    {
        var iso = TinyIso.Make(_dir, "barrelfish.iso");
        const string image = "registry.example.com/guests/barrelfish-iso:1";
        var (r, documents) = Export("--menu", Menu(), "--iso", iso, "--device", "00:02.0", "--image", image);
        AssertAccepted(documents);
        var spec = documents.Single(d => d.Kind == "VirtualMachine").Object["spec"]!["template"]!["spec"]!;
        // No kernel boot: the CD, first in the boot order, from a containerDisk volume of the given image.
        Assert.Null(spec["domain"]!["firmware"]);
        var disk = spec["domain"]!["devices"]!["disks"]!.AsArray().Single()!;
        Assert.Equal(("cdrom", 1, "sata"), ((string?)disk["name"], (int?)disk["bootOrder"], (string?)disk["cdrom"]!["bus"]));
        var volume = spec["volumes"]!.AsArray().Single()!;
        Assert.Equal(("cdrom", image), ((string?)volume["name"], (string?)volume["containerDisk"]!["image"]));
        Assert.Equal("passthru-barrelfish", (string?)documents.Single(d => d.Kind == "VirtualMachine").Object["metadata"]!["name"]);
        // The Containerfile that makes that image, in the VM document's comment (KubeVirt's containerDisk form).
        Assert.Contains("# Its CD is the containerDisk registry.example.com/guests/barrelfish-iso:1, built from this Containerfile beside barrelfish.iso:\n#   FROM scratch\n#   ADD --chown=107:107 barrelfish.iso /disk/\n", r.Stdout);
        Assert.Contains($"note: {image} must hold {iso} in /disk/: save the two Containerfile lines", r.Stderr);
        Assert.DoesNotContain("cannot go in kernelBoot.initrdPath", r.Stderr);
        // Without --iso the same menu still boots its kernel alone, and says how to carry the menu.
        var (kernelOnly, _) = Export("--menu", Menu(), "--image", Image);
        Assert.Contains("To boot the whole menu, give --image-out FILE.iso (or --iso FILE.iso from passthru image)", kernelOnly.Stderr);
    }

    [Fact]
    public void The_validator_and_the_admission_rules_catch_broken_manifests()
    {
        var (r, documents) = Export("--kernel", File("vmlinuz"), "--device", "00:04.0", "--image", Image);
        AssertAccepted(documents);
        static IReadOnlyList<string> SchemaErrors(string yaml) => KubeVirtSchema.ValidateText(yaml).SelectMany(d => d.SchemaErrors).ToList();
        // Misspelt fields: a plain JSON-schema validator would let these through; KubeVirt's strict field validation does not.
        Assert.Contains(SchemaErrors(r.Stdout.Replace("hostDevices:", "hostDevice:")), e => e.Contains("'hostDevice' was unexpected"));
        Assert.Contains(SchemaErrors(r.Stdout.Replace("kernelBoot:", "kernelboot:")), e => e.Contains("'kernelboot' was unexpected"));
        Assert.Contains(SchemaErrors(r.Stdout.Replace("pciHostDevices:", "pciHostDevice:")), e => e.Contains("'pciHostDevice' was unexpected"));
        Assert.Contains(SchemaErrors(r.Stdout.Replace("- name: nvme0\n", "- \n")), e => e.Contains("'name' is a required property"));
        Assert.Contains(SchemaErrors(r.Stdout.Replace("guest: \"1024Mi\"", "guest: \"1GB\"")), e => e.Contains("memory/guest"));

        var kubevirt = documents.Single(d => d.Kind == "KubeVirt").Object;
        var vm = documents.Single(d => d.Kind == "VirtualMachine").Object;
        var noGate = (JsonObject)kubevirt.DeepClone();
        noGate["spec"]!["configuration"]!["developerConfiguration"]!["featureGates"] = new JsonArray();
        Assert.Contains("hostDevices need the HostDevices feature gate in the KubeVirt CR", Admission.Check(vm, noGate));
        Assert.Contains(Admission.Check(vm, null), e => e.Contains("not in the KubeVirt CR's permittedHostDevices"));
        var noImage = (JsonObject)vm.DeepClone();
        noImage["spec"]!["template"]!["spec"]!["domain"]!["firmware"]!["kernelBoot"]!["container"]!.AsObject().Remove("image");
        Assert.Contains("kernelBoot.container needs an image", Admission.Check(noImage, kubevirt));
        var noKernel = (JsonObject)vm.DeepClone();
        noKernel["spec"]!["template"]!["spec"]!["domain"]!["firmware"]!["kernelBoot"]!["container"]!.AsObject().Remove("kernelPath");
        Assert.Contains("kernelBoot.container needs kernelPath or initrdPath", Admission.Check(noKernel, kubevirt));
    }

    [Theory]
    [InlineData("--disk", "disk.img", "--disk: a KubeVirt VM takes its disks from volumes")]
    [InlineData("--machine", "pc", "--machine pc: KubeVirt on x86_64 runs q35 machines")]
    [InlineData("--net", "user,model=virtio-net-pci", "--net user,model=virtio-net-pci: KubeVirt's interfaces take the models")]
    [InlineData("--name", "Barrelfish_1", "--name 'Barrelfish_1' cannot name a KubeVirt VM")]
    [InlineData("--image", "Not An Image", "--image 'Not An Image' is not a container image reference")]
    public void What_kubevirt_cannot_take_is_one_line_and_exit_2(string option, string value, string message)
    {
        var kernel = File("vmlinuz");
        if (option == "--disk") value = File(value);
        string[] image = option == "--image" ? [] : ["--image", Image];
        var r = CliRunner.OnCapture("vhost", ["export", "kubevirt", "--kernel", kernel, .. image, option, value]);
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("passthru: " + message, r.Stderr);
        Assert.Equal(1, r.Stderr.Count(c => c == '\n'));
        Assert.Empty(r.Stdout);
    }

    [Fact]
    public void A_kernel_and_initrd_of_the_same_name_would_be_one_file_in_the_image()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "initrd"));
        var r = CliRunner.OnCapture("vhost", "export", "kubevirt", "--kernel", File("vmlinuz"), "--initrd", File("initrd/vmlinuz"), "--image", Image);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("passthru: --kernel and --initrd are both named vmlinuz: in --image they would be the same file, /boot/vmlinuz; rename one\n", r.Stderr);
    }

    [Fact]
    public void Without_an_image_or_with_an_unknown_device_nothing_is_written()
    {
        var kernel = File("vmlinuz");
        var target = Path.Combine(_dir, "vm.yaml");
        var noImage = CliRunner.OnCapture("vhost", "export", "kubevirt", "--kernel", kernel, "-o", target);
        Assert.Equal(2, noImage.ExitCode);
        Assert.StartsWith("passthru: export kubevirt needs --image IMAGE", noImage.Stderr);
        var unknown = CliRunner.OnCapture("vhost", "export", "kubevirt", "--kernel", kernel, "--image", Image, "--device", "07:00.0", "-o", target);
        Assert.Equal("passthru: no PCI function at 07:00.0: see `passthru list` for the devices of this host\n", unknown.Stderr);
        Assert.Equal(2, unknown.ExitCode);
        Assert.False(System.IO.File.Exists(target));
        var ok = CliRunner.OnCapture("vhost", "export", "kubevirt", "--kernel", kernel, "--image", Image, "-o", target);
        Assert.Equal(0, ok.ExitCode);
        Assert.Empty(ok.Stdout);
        Assert.Contains($"wrote {target}", ok.Stderr);
        AssertAccepted(KubeVirtSchema.Validate(target));
    }
}
