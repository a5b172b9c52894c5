using Passthru.Pci;

namespace Passthru.Binding;

/// <summary>The root-relative sysfs files the binding engine writes, named once.</summary>
public static class SysfsPaths
{
    public static string Device(PciAddress a) => $"sys/bus/pci/devices/{a}";
    public static string DriverOverride(PciAddress a) => $"sys/bus/pci/devices/{a}/driver_override";
    public static string Unbind(string driver) => $"sys/bus/pci/drivers/{driver}/unbind";
    public static string Bind(string driver) => $"sys/bus/pci/drivers/{driver}/bind";
    public const string DriversProbe = "sys/bus/pci/drivers_probe";
    public static string Driver(PciAddress a) => $"sys/bus/pci/devices/{a}/driver";
    public static string Sriov(PciAddress pf, string attribute) => $"sys/bus/pci/devices/{pf}/{attribute}";
    public static string IommuGroup(PciAddress a) => $"sys/bus/pci/devices/{a}/iommu_group";
    public static string VfioGroup(int group) => $"dev/vfio/{group}";
    public static string Rom(PciAddress a) => $"sys/bus/pci/devices/{a}/rom";
}
