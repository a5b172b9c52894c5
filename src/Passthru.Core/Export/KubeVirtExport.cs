using System.Text.RegularExpressions;
using Passthru.Host;
using Passthru.Launch;
using Passthru.Pci;

namespace Passthru.Export;

/// <summary>
/// `passthru export kubevirt`: the VM run would start, as a KubeVirt VirtualMachine (kubevirt.io/v1), and the part of
/// the cluster's KubeVirt CR that permits its devices. Written from the same plan as run and export libvirt
/// (<see cref="DomainExport.Describe"/>). What KubeVirt cannot express is said in a note, never dropped silently.
/// </summary>
public static partial class KubeVirtExport
{
    /// <summary>The interface models KubeVirt's admission accepts (virtio and the ones QEMU emulates for old guests).</summary>
    public static readonly string[] NicModels = ["e1000", "e1000e", "igb", "ne2k_pci", "pcnet", "rtl8139", "virtio"];

    /// <summary>Where in --image the kernel and initrd are looked for: /boot/ and the file's own name.</summary>
    public const string ImageDir = "/boot/";

    /// <summary>Where a containerDisk image holds its disk (KubeVirt takes the one file there).</summary>
    public const string ContainerDiskDir = "/disk/";

    public static ExportResult Build(HostRoot host, RunOptions options, string? image)
    {
        if (image is null)
            throw new UserError("export kubevirt needs --image IMAGE: the container image that holds the kernel or the ISO (KubeVirt reads them from an image, not from this host's files)", ExitCodes.Usage);
        if (!ImageReference().IsMatch(image))
            throw new UserError($"--image '{image}' is not a container image reference: give one like registry.example.com/guests/barrelfish:1", ExitCodes.Usage);
        var name = VmName(options);
        if (options.Disks.Count > 0)
            throw new UserError("--disk: a KubeVirt VM takes its disks from volumes (a containerDisk image or a PVC), not from this host's files; export kubevirt writes a kernel boot (--kernel) or a CD (--cdrom, or --menu with --iso or --image-out) from --image", ExitCodes.Usage);
        if (!options.Machine.StartsWith("q35", StringComparison.Ordinal) && !options.Machine.StartsWith("pc-q35", StringComparison.Ordinal))
            throw new UserError($"--machine {options.Machine}: KubeVirt on x86_64 runs q35 machines (its default emulatedMachines are q35* and pc-q35*): leave --machine out or give q35", ExitCodes.Usage);
        if (options.Net?.Model is string model && !NicModels.Contains(model))
            throw new UserError($"--net user,model={model}: KubeVirt's interfaces take the models {string.Join(", ", NicModels)}", ExitCodes.Usage);

        // Planned as run plans it; the accelerator and QEMU binary are the nodes' business, not this host's.
        var (vm, plan) = DomainExport.Describe(host, options with { Accel = Accel.Tcg, Qemu = options.Qemu ?? RunSession.StandardQemu }, name);
        var notes = new List<string>(plan.Warnings);

        YamlMap? kernelBoot = null;
        List<string>? containerfile = null;
        if (vm.Kernel is not null)
        {
            kernelBoot = new YamlMap();
            var container = new YamlMap { ["image"] = image, ["kernelPath"] = ImageDir + Path.GetFileName(vm.Kernel!) };
            var initrdFiles = RunOptions.InitrdFiles(vm.Initrd).ToList();
            if (options.Menu is not null && initrdFiles.Count > 0)
                notes.Add($"note: the menu's {initrdFiles.Count} multiboot modules cannot go in kernelBoot.initrdPath, which carries one initrd file: the VM boots {Path.GetFileName(vm.Kernel)} alone. "
                    + "To boot the whole menu, give --image-out FILE.iso (or --iso FILE.iso from passthru image): the VM then boots that ISO as a containerDisk CD");
            else if (initrdFiles.Count > 1 || (initrdFiles.Count == 1 && vm.Initrd != initrdFiles[0]))
                notes.Add($"note: --initrd '{options.Initrd}' is a multiboot module list; kernelBoot.initrdPath carries one initrd file, so it is left out: put the modules in a disk image with a boot loader instead");
            else if (initrdFiles.Count == 1)
            {
                if (Path.GetFileName(initrdFiles[0]) == Path.GetFileName(vm.Kernel))
                    throw new UserError($"--kernel and --initrd are both named {Path.GetFileName(vm.Kernel)}: in --image they would be the same file, {ImageDir}{Path.GetFileName(vm.Kernel)}; rename one", ExitCodes.Usage);
                container["initrdPath"] = ImageDir + Path.GetFileName(initrdFiles[0]);
            }
            kernelBoot["container"] = container;
            kernelBoot["kernelArgs"] = vm.Cmdline;
            var files = new[] { vm.Kernel! }.Concat(container["initrdPath"] is null ? [] : initrdFiles);
            notes.Add($"note: {image} must hold {string.Join(" and ", files.Select(f => $"{f} at {ImageDir}{Path.GetFileName(f)}"))} "
                + $"(a Containerfile: FROM scratch, then ADD for each file into {ImageDir})");
        }
        else
        {
            // A CD (the menu's image, or --cdrom): the ISO rides in a containerDisk, KubeVirt's way to bring a disk
            // image in a container image; the disk boots first. The Containerfile is KubeVirt's documented one.
            var iso = Path.GetFileName(vm.Cdrom!);
            containerfile = ["FROM scratch", $"ADD --chown=107:107 {iso} {ContainerDiskDir}"];
            notes.Add($"note: {image} must hold {vm.Cdrom} in {ContainerDiskDir}: save the two Containerfile lines of the VM's comment as {Path.GetDirectoryName(vm.Cdrom)}/Containerfile, then in {Path.GetDirectoryName(vm.Cdrom)} "
                + $"(podman build -t {image} -f Containerfile . && podman push {image})");
        }

        if (options.Qemu is not null) notes.Add("note: --qemu is not used: KubeVirt runs its own QEMU in each VM's pod");
        if (vm.ExtraQemuArgs.Count > 0)
            notes.Add($"note: the QEMU arguments after -- ({string.Join(' ', vm.ExtraQemuArgs)}) have no place in a KubeVirt VM and are left out");

        // Devices: one hostDevices entry per function; one permitted selector per kind.
        var hostDevices = new YamlList();
        var permitted = new YamlList();
        var perClass = new Dictionary<string, int>();
        foreach (var d in vm.Devices)
        {
            var facts = d.Facts!;
            var word = FleetNames.ClassWord(facts.ClassCode);
            perClass[word] = perClass.GetValueOrDefault(word) + 1;
            hostDevices.Add(new YamlMap { ["name"] = $"{word}{perClass[word] - 1}", ["deviceName"] = FleetNames.ResourceName(facts) });
            if (!permitted.Cast<YamlMap>().Any(p => (string)p["resourceName"]! == FleetNames.ResourceName(facts)))
                permitted.Add(new YamlMap { ["pciVendorSelector"] = FleetNames.VendorDevice(facts), ["resourceName"] = FleetNames.ResourceName(facts) });
            foreach (var (unset, what) in new[] { (!d.RomBar, "rombar=0"), (d.RomFile is not null, $"romfile={d.RomFile}"), (d.XVga, "x-vga=on") })
                if (unset)
                    notes.Add($"note: {what} for {d.Address} cannot be expressed: KubeVirt's hostDevices have no ROM or VGA settings, so the guest sees the device's own ROM and no VGA ranges");
        }
        notes.AddRange(Twins(host, vm.Devices));

        var devices = new YamlMap();
        if (vm.Net is null) devices["autoattachPodInterface"] = false; // as run: only the devices passed through
        else devices["interfaces"] = new YamlList { new YamlMap { ["name"] = "default", ["masquerade"] = new YamlMap(), ["model"] = vm.Net.Model } };
        if (hostDevices.Count > 0) devices["hostDevices"] = hostDevices;
        if (containerfile is not null)
            devices["disks"] = new YamlList { new YamlMap { ["name"] = "cdrom", ["bootOrder"] = 1, ["cdrom"] = new YamlMap { ["bus"] = "sata", ["readonly"] = true } } };

        var domain = new YamlMap
        {
            ["cpu"] = new YamlMap { ["cores"] = vm.Cpus },
            ["memory"] = new YamlMap { ["guest"] = $"{vm.MemoryMiB}Mi" },
            ["machine"] = new YamlMap { ["type"] = vm.Machine },
            ["devices"] = devices,
        };
        if (kernelBoot is not null) domain["firmware"] = new YamlMap { ["kernelBoot"] = kernelBoot };
        var vmiSpec = new YamlMap { ["domain"] = domain };
        if (containerfile is not null)
            vmiSpec["volumes"] = new YamlList { new YamlMap { ["name"] = "cdrom", ["containerDisk"] = new YamlMap { ["image"] = image } } };
        if (vm.Net is not null) vmiSpec["networks"] = new YamlList { new YamlMap { ["name"] = "default", ["pod"] = new YamlMap() } };
        var virtualMachine = new YamlMap
        {
            ["apiVersion"] = "kubevirt.io/v1",
            ["kind"] = "VirtualMachine",
            ["metadata"] = new YamlMap { ["name"] = name },
            ["spec"] = new YamlMap
            {
                ["runStrategy"] = "Always",
                ["template"] = new YamlMap
                {
                    ["metadata"] = new YamlMap { ["labels"] = new YamlMap { ["kubevirt.io/vm"] = name } },
                    ["spec"] = vmiSpec,
                },
            },
        };

        var documents = new List<(IReadOnlyList<string>, YamlMap)>();
        var setup = SetupLine(vm.Devices);
        bool emulated = options.Accel == Accel.Tcg;
        if (emulated)
            notes.Add("note: --accel tcg: the KubeVirt CR below sets developerConfiguration.useEmulation, which makes every VM of the cluster emulated (no KVM)");
        if (permitted.Count > 0 || emulated)
        {
            var developer = new YamlMap();
            if (permitted.Count > 0) developer["featureGates"] = new YamlList { "HostDevices" };
            if (emulated) developer["useEmulation"] = true;
            var configuration = new YamlMap { ["developerConfiguration"] = developer };
            if (permitted.Count > 0) configuration["permittedHostDevices"] = new YamlMap { ["pciHostDevices"] = permitted };
            var kubevirt = new YamlMap
            {
                ["apiVersion"] = "kubevirt.io/v1",
                ["kind"] = "KubeVirt",
                ["metadata"] = new YamlMap { ["name"] = "kubevirt", ["namespace"] = "kubevirt" },
                ["spec"] = new YamlMap { ["configuration"] = configuration },
            };
            List<string> comments =
            [
                "The cluster's KubeVirt CR: these settings permit the devices (kubectl edit kubevirt -n kubevirt).",
                "Lists are replaced whole when applied: where the CR already has featureGates or pciHostDevices, add these entries to them.",
            ];
            if (setup is not null) comments.Add("Each node that runs the VM needs the devices on vfio-pci at boot: " + setup);
            documents.Add((comments, kubevirt));
        }
        List<string> vmComments = ["The VM `passthru run` starts, for KubeVirt (written by passthru export kubevirt)."];
        if (containerfile is not null)
            vmComments.AddRange([$"Its CD is the containerDisk {image}, built from this Containerfile beside {Path.GetFileName(vm.Cdrom)}:", .. containerfile.Select(l => "  " + l)]);
        documents.Add((vmComments, virtualMachine));
        if (setup is not null) notes.Add("on each node that runs it (devices on vfio-pci at boot): " + setup);
        return new ExportResult(YamlText.Write(documents), notes);
    }

    /// <summary>The setup command that claims the devices at boot on a node like this host; null without devices.</summary>
    public static string? SetupLine(IReadOnlyList<HostDevice> devices) =>
        devices.Count == 0 ? null : "passthru setup " + string.Join(' ', devices.Select(d => $"--device {d.Address}")) + " --apply";

    /// <summary>
    /// KubeVirt hands out any function on a node that matches a selector and is on vfio-pci: functions with the same
    /// IDs are interchangeable, whether both are passed through or one stays on its host driver.
    /// </summary>
    internal static IEnumerable<string> Twins(HostRoot host, IReadOnlyList<HostDevice> devices)
    {
        if (devices.Count == 0) yield break;
        var inventory = PciInventory.Load(host);
        foreach (var kind in devices.GroupBy(d => FleetNames.ResourceName(d.Facts!)))
        {
            var chosen = kind.Select(d => d.Address).ToList();
            var sample = kind.First().Facts!;
            var ids = FleetNames.VendorDevice(sample);
            if (chosen.Count > 1)
                yield return $"note: {FleetNames.Join(chosen)} are {FleetNames.BothOrAll(chosen.Count)} {ids}: KubeVirt selects devices by vendor:device, not by address, so they are interchangeable (the VM gets any {chosen.Count} functions of {kind.Key} on its node)";
            var others = inventory.Devices.Where(o => o.VendorId == sample.VendorId && o.DeviceId == sample.DeviceId && !chosen.Contains(o.Address)
                && FleetNames.ResourceName(o) == kind.Key).Select(o => o.Address).ToList();
            if (others.Count > 0)
                yield return $"note: {FleetNames.Join(others)} {(others.Count == 1 ? "is" : "are")} also {ids}: KubeVirt would hand {(others.Count == 1 ? "it" : "them")} out as {kind.Key} too if on vfio-pci on a node (the setup line leaves {(others.Count == 1 ? "it" : "them")} on the host's driver)";
        }
    }

    /// <summary>
    /// A VM's name is a Kubernetes object name (a DNS label here, so the pod and its hostname can carry it): --name as
    /// given, or the default name made fit.
    /// </summary>
    public static string VmName(RunOptions o)
    {
        if (o.Name is string given)
        {
            if (!DnsLabel().IsMatch(given))
                throw new UserError($"--name '{given}' cannot name a KubeVirt VM: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit", ExitCodes.Usage);
            return given;
        }
        var name = Regex.Replace(DomainExport.DefaultName(o).ToLowerInvariant(), "[^a-z0-9]+", "-").Trim('-');
        return name.Length > 63 ? name[..63].TrimEnd('-') : name;
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    private static partial Regex DnsLabel();

    /// <summary>docker's reference grammar: [host[:port]/]path[:tag][@digest], the path in lowercase.</summary>
    [GeneratedRegex(@"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")]
    private static partial Regex ImageReference();
}
