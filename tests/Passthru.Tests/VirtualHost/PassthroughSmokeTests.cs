namespace Passthru.Tests.VirtualHost;

/// <summary>
/// The test bed itself works: the seed procedure's manual sysfs steps hand the e1000e to vfio-pci through the real
/// kernel, and a guest started inside with -device vfio-pci sees the device in its own PCI scan.
/// </summary>
[Trait(Support.Tier.Name, Support.Tier.Slow)]
[Collection("virtual host")]
public class PassthroughSmokeTests(VirtualHostFixture vm)
{
    [Fact]
    public void A_guest_inside_sees_the_e1000e_passed_through_by_hand()
    {
        try
        {
            var output = vm.RunOk($"""
                modprobe vfio-pci && modprobe vfio_iommu_type1
                echo vfio-pci > /sys/bus/pci/devices/0000:00:03.0/driver_override
                echo 0000:00:03.0 > /sys/bus/pci/drivers/e1000e/unbind
                echo 0000:00:03.0 > /sys/bus/pci/drivers_probe
                echo "driver: $(basename "$(readlink /sys/bus/pci/devices/0000:00:03.0/driver)")"
                timeout 120 qemu-system-x86_64 -M q35 -accel tcg -m 128 -display none -monitor none -serial stdio \
                  -no-reboot -nodefaults -kernel {vm.Probe} -device vfio-pci,host=00:03.0 \
                  -device isa-debug-exit,iobase=0xf4,iosize=0x04
                test $? -eq 1
                """, TimeSpan.FromMinutes(4));
            Assert.Contains("driver: vfio-pci", output);
            Assert.Contains("probe: pci 00:01.0 8086:10d3 class 0200", output);
            Assert.Contains("probe: done", output);
        }
        finally
        {
            vm.Run("""
                echo > /sys/bus/pci/devices/0000:00:03.0/driver_override
                echo 0000:00:03.0 > /sys/bus/pci/drivers/vfio-pci/unbind
                echo 0000:00:03.0 > /sys/bus/pci/drivers_probe
                """);
        }
        Assert.Equal("e1000e", vm.RunOk("basename $(readlink /sys/bus/pci/devices/0000:00:03.0/driver)").Trim());
    }
}
