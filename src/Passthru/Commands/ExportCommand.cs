using System.CommandLine;
using Passthru.Export;
using Passthru.Host;

namespace Passthru.Cli.Commands;

/// <summary>
/// `passthru export TARGET`: the VM `run` starts, for another tool: libvirt on one host; KubeVirt or OpenStack Nova for
/// a fleet. Every target is written from run's own plan; what a target cannot express goes to stderr as a note.
/// </summary>
public static class ExportCommand
{
    public static Command Create(GlobalOptions globals, TextWriter stdout, TextWriter stderr)
    {
        var vm = new RunCliOptions();
        var output = Output("Write the domain XML here (default: standard output)");
        var (lvIso, lvIsoOut) = ImageOptions("--image", "--iso");
        var libvirt = new Command("libvirt", "Export the VM `passthru run` would start as a libvirt domain definition") { output, lvIso, lvIsoOut };
        vm.AddTo(libvirt);
        libvirt.SetAction(p =>
        {
            CheckOutput(p.GetValue(output));
            var host = globals.Host(p);
            var carried = new List<string>();
            var (definition, notes) = MenuImage.Carry(host, vm.Read(p), "--image", p.GetValue(lvIso), p.GetValue(lvIsoOut), o => DomainExport.Define(host, o), carried);
            foreach (var n in notes.Concat(carried)) stderr.WriteLine(n);
            Emit(LibvirtDomain.ToXml(LibvirtDomain.Build(definition)), p.GetValue(output), stdout, stderr, file => $"`virsh define {file}` to add it to libvirt");
            return ExitCodes.Ok;
        });

        var kvm = new RunCliOptions();
        var kvOutput = Output("Write the YAML documents here (default: standard output)");
        var image = new Option<string?>("--image") { Description = $"Container image holding the kernel (and initrd) under {KubeVirtExport.ImageDir}, for KubeVirt's kernelBoot" };
        var (kvIso, kvIsoOut) = ImageOptions("--iso");
        var kubevirt = new Command("kubevirt", "Export the VM `passthru run` would start as a KubeVirt VirtualMachine, with the KubeVirt CR settings that permit its devices")
        {
            image, kvOutput, kvIso, kvIsoOut,
        };
        kvm.AddTo(kubevirt);
        kubevirt.SetAction(p =>
        {
            CheckOutput(p.GetValue(kvOutput));
            var host = globals.Host(p);
            var carried = new List<string>();
            var result = MenuImage.Carry(host, kvm.Read(p), "--iso", p.GetValue(kvIso), p.GetValue(kvIsoOut), o => KubeVirtExport.Build(host, o, p.GetValue(image)), carried);
            result = result with { Notes = [.. carried, .. result.Notes] };
            return Finish(result, p.GetValue(kvOutput), stdout, stderr, file => $"`kubectl apply -f {file}` after merging the KubeVirt part into the cluster's CR");
        });

        var novaDevices = new Option<string[]>("--device") { Description = "A function the compute node offers (repeatable): 0000:83:00.0, 83:00.0 or vendor:device naming one" };
        var novaGroup = new Option<bool>("--group") { Description = "Also offer the other endpoints of each device's IOMMU group" };
        var flavor = new Option<string?>("--flavor") { Description = "The flavor that asks for the devices, in the printed openstack command (default: FLAVOR)" };
        var novaOutput = Output("Write the nova.conf section here (default: standard output)");
        var nova = new Command("nova", "Export the nova.conf [pci] section (device_spec, alias) and the flavor property that offer and request the devices in OpenStack Nova")
        {
            novaDevices, novaGroup, flavor, novaOutput,
        };
        nova.SetAction(p =>
        {
            CheckOutput(p.GetValue(novaOutput));
            var devices = (p.GetValue(novaDevices) ?? []).Select(Passthru.Launch.PassthroughDevice.Parse).ToList();
            var result = NovaExport.Build(globals.Host(p), devices, p.GetValue(novaGroup), p.GetValue(flavor) ?? "FLAVOR");
            return Finish(result, p.GetValue(novaOutput), stdout, stderr, file => "add its [pci] lines to nova.conf on the compute node");
        });

        var chv = new RunCliOptions();
        var chvOutput = Output("Write the command line here (default: standard output)");
        var cloudHypervisor = new Command("cloud-hypervisor", "Export the VM `passthru run` would start as a cloud-hypervisor command line") { chvOutput };
        chv.AddTo(cloudHypervisor);
        cloudHypervisor.SetAction(p =>
        {
            CheckOutput(p.GetValue(chvOutput));
            var result = CloudHypervisorExport.Build(globals.Host(p), chv.Read(p));
            return Finish(result, p.GetValue(chvOutput), stdout, stderr, file => $"run it with `sh {file}` once the devices are on vfio-pci");
        });

        var pve = new RunCliOptions();
        var pveOutput = Output("Write the qm commands here (default: standard output)");
        var vmid = new Option<string?>("--vmid") { Description = "The Proxmox VM ID the commands create (default: the word VMID, to fill in)" };
        var (pveIso, pveIsoOut) = ImageOptions("--image", "--iso");
        var proxmox = new Command("proxmox", "Export the VM `passthru run` would start as Proxmox VE qm commands (qm create, qm set --hostpciN)") { vmid, pveOutput, pveIso, pveIsoOut };
        pve.AddTo(proxmox);
        proxmox.SetAction(p =>
        {
            CheckOutput(p.GetValue(pveOutput));
            var host = globals.Host(p);
            var carried = new List<string>();
            var result = MenuImage.Carry(host, pve.Read(p), "--image", p.GetValue(pveIso), p.GetValue(pveIsoOut), o => ProxmoxExport.Build(host, o, p.GetValue(vmid)), carried);
            result = result with { Notes = [.. carried, .. result.Notes] };
            return Finish(result, p.GetValue(pveOutput), stdout, stderr, file => $"run it on the Proxmox host with `sh {file}`");
        });

        return new Command("export", "Hand the VM over to other tools: libvirt or cloud-hypervisor on one host, Proxmox VE, KubeVirt or OpenStack Nova for a fleet")
        {
            libvirt, kubevirt, nova, cloudHypervisor, proxmox,
        };
    }

    /// <summary>With --menu: the menu's bootable ISO (passthru image), already built or to build now; the VM boots it as a CD.</summary>
    private static (Option<string?> Iso, Option<string?> IsoOut) ImageOptions(string name, params string[] aliases) =>
        (new Option<string?>(name, aliases) { Description = "With --menu: boot this ISO of the menu (built by passthru image) as the VM's CD" },
         new Option<string?>("--image-out") { Description = "With --menu: build the menu's bootable ISO here (as passthru image does) and boot it as the VM's CD" });

    private static Option<string?> Output(string description) => new("--output", "-o") { Description = description };

    /// <summary>Refuses an output that cannot be written before anything is read or planned.</summary>
    private static void CheckOutput(string? target) => OutputFile.Check("--output", target);

    /// <summary>A fleet export's end: what the target cannot express on stderr, then the text where it goes.</summary>
    private static int Finish(ExportResult result, string? file, TextWriter stdout, TextWriter stderr, Func<string, string> next)
    {
        foreach (var n in result.Notes) stderr.WriteLine(n);
        Emit(result.Text, file, stdout, stderr, next);
        return ExitCodes.Ok;
    }

    private static void Emit(string text, string? file, TextWriter stdout, TextWriter stderr, Func<string, string> next)
    {
        if (file is null) { stdout.Write(text); return; }
        OutputFile.Write("--output", file, System.Text.Encoding.UTF8.GetBytes(text));
        stderr.WriteLine($"wrote {file}: {next(file)}");
    }
}
