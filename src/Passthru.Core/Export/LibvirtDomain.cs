using System.Xml;
using System.Xml.Linq;
using Passthru.Launch;

namespace Passthru.Export;

/// <summary>
/// A libvirt domain definition for a <see cref="VmDefinition"/>, built as an XML tree (never by concatenating strings,
/// so names and paths are escaped by the XML library).
/// </summary>
public static class LibvirtDomain
{
    public static readonly XNamespace Qemu = "http://libvirt.org/schemas/domain/qemu/1.0";

    public static XDocument Build(VmDefinition vm)
    {
        var os = new XElement("os", new XElement("type", new XAttribute("arch", "x86_64"), new XAttribute("machine", vm.Machine), "hvm"));
        if (vm.Kernel is not null)
        {
            os.Add(new XElement("kernel", vm.Kernel));
            if (vm.Initrd is not null) os.Add(new XElement("initrd", vm.Initrd));
            if (vm.Cmdline is not null) os.Add(new XElement("cmdline", vm.Cmdline));
        }
        else
        {
            // The CD first, then the disks, as run boots them (-boot order=dc).
            if (vm.Cdrom is not null) os.Add(new XElement("boot", new XAttribute("dev", "cdrom")));
            if (vm.Disks.Count > 0) os.Add(new XElement("boot", new XAttribute("dev", "hd")));
        }

        var devices = new XElement("devices");
        if (vm.Emulator is not null) devices.Add(new XElement("emulator", vm.Emulator));
        int sata = 0;
        foreach (var disk in vm.Disks) devices.Add(Disk(disk, "disk", sata++));
        if (vm.Cdrom is not null) devices.Add(Disk(vm.Cdrom, "cdrom", sata++));
        // libvirt adds no NIC of its own: a domain has the interfaces it lists, as run's guest has (-nic none).
        if (vm.Net is not null)
            devices.Add(new XElement("interface", new XAttribute("type", "user"),
                vm.Net.Model is null ? null : new XElement("model", new XAttribute("type", vm.Net.Model))));
        devices.Add(new XElement("serial", new XAttribute("type", "pty"), new XElement("target", new XAttribute("port", "0"))));
        devices.Add(new XElement("console", new XAttribute("type", "pty"), new XElement("target", new XAttribute("type", "serial"), new XAttribute("port", "0"))));
        foreach (var d in vm.Devices) devices.Add(HostDev(d));
        // Large BARs: libvirt's knob for q35's pci-hole64-size, on the root controller (libvirt's schema: pci-root or pcie-root).
        if (vm.PciHole64 is { } hole)
            devices.Add(new XElement("controller", new XAttribute("type", "pci"), new XAttribute("index", "0"), new XAttribute("model", "pcie-root"),
                new XElement("pcihole64", new XAttribute("unit", "KiB"), hole >> 10)));

        var domain = new XElement("domain",
            new XAttribute("type", vm.Accelerator == "kvm" ? "kvm" : "qemu"),
            new XElement("name", vm.Name),
            new XElement("memory", new XAttribute("unit", "MiB"), vm.MemoryMiB),
            new XElement("vcpu", vm.Cpus),
            os,
            new XElement("features", new XElement("acpi"), new XElement("apic")),
            new XElement("on_poweroff", "destroy"),
            new XElement("on_reboot", "restart"),
            new XElement("on_crash", "destroy"),
            devices);
        if (vm.ExtraQemuArgs.Count > 0)
        {
            domain.Add(new XAttribute(XNamespace.Xmlns + "qemu", Qemu.NamespaceName));
            domain.Add(new XElement(Qemu + "commandline", vm.ExtraQemuArgs.Select(a => new XElement(Qemu + "arg", new XAttribute("value", a)))));
        }
        return new XDocument(domain);
    }

    private static XElement Disk(string path, string device, int index) =>
        new("disk", new XAttribute("type", "file"), new XAttribute("device", device),
            new XElement("driver", new XAttribute("name", "qemu"), new XAttribute("type", device == "cdrom" ? "raw" : DiskImage.Format(path))),
            new XElement("source", new XAttribute("file", path)),
            new XElement("target", new XAttribute("dev", "sd" + (char)('a' + index)), new XAttribute("bus", "sata")),
            device == "cdrom" ? new XElement("readonly") : null);

    private static XElement HostDev(HostDevice d)
    {
        var a = d.Address;
        var hostdev = new XElement("hostdev", new XAttribute("mode", "subsystem"), new XAttribute("type", "pci"), new XAttribute("managed", "yes"),
            new XElement("driver", new XAttribute("name", "vfio")),
            new XElement("source", new XElement("address",
                new XAttribute("domain", $"0x{a.Domain:x4}"), new XAttribute("bus", $"0x{a.Bus:x2}"),
                new XAttribute("slot", $"0x{a.Device:x2}"), new XAttribute("function", $"0x{a.Function:x1}"))));
        if (!d.RomBar || d.RomFile is not null)
            hostdev.Add(new XElement("rom", d.RomBar ? null : new XAttribute("bar", "off"), d.RomFile is null ? null : new XAttribute("file", d.RomFile)));
        return hostdev;
    }

    public static string ToXml(XDocument document)
    {
        var settings = new XmlWriterSettings { Indent = true, IndentChars = "  ", OmitXmlDeclaration = true, NewLineChars = "\n" };
        using var text = new StringWriter();
        using (var writer = XmlWriter.Create(text, settings)) document.Save(writer);
        return text + "\n";
    }
}
