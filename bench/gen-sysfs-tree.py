#!/usr/bin/env python3
"""Builds a synthetic sysfs tree of 4,096 PCI functions for benchmarks: 16 SR-IOV NICs (Intel X710, 8086:1572)
with 255 virtual functions each (8086:154c), every function in its own IOMMU group, with modalias, driver links (i40e on the
PFs; iavf, vfio-pci or none on the VFs), physfn/virtfn links and a consistent binary config header, in the shape
tests/captures/capture.sh produces, so that both `passthru list --root TREE` and
`lspci -A linux-sysfs -O sysfs.path=TREE/sys/bus/pci` read it.  Usage: gen-sysfs-tree.py OUT_DIR"""
import os, struct, sys

out = sys.argv[1]
PFS, VFS = 16, 255
devices = os.path.join(out, "sys/devices/pci0000:00")
bus_devices = os.path.join(out, "sys/bus/pci/devices")
drivers = os.path.join(out, "sys/bus/pci/drivers")
groups = os.path.join(out, "sys/kernel/iommu_groups")
for d in (devices, bus_devices, drivers, groups, os.path.join(out, "sys/class/iommu/dmar0")):
    os.makedirs(d, exist_ok=True)
for drv in ("i40e", "iavf", "vfio-pci"):
    os.makedirs(os.path.join(drivers, drv), exist_ok=True)

def write(path, text):
    with open(path, "w") as f:
        f.write(text)

def config(vendor, device, cls, rev, sub_vendor, sub_device):
    header = struct.pack("<HHHHB3sBBBB", vendor, device, 0x0406, 0x0010, rev, cls.to_bytes(3, "little"), 0, 0, 0, 0)
    header += b"\0" * (0x2c - len(header)) + struct.pack("<HH", sub_vendor, sub_device)
    return header + b"\0" * (256 - len(header))

def function(bdf, vendor, device, driver, group, extra_links=(), totalvfs=None):
    d = os.path.join(devices, bdf)
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, "vendor"), f"0x{vendor:04x}\n")
    write(os.path.join(d, "device"), f"0x{device:04x}\n")
    write(os.path.join(d, "class"), "0x020000\n")
    write(os.path.join(d, "revision"), "0x02\n")
    write(os.path.join(d, "modalias"), f"pci:v{vendor:08X}d{device:08X}sv{0x8086:08X}sd{0:08X}bc02sc00i00\n")
    write(os.path.join(d, "subsystem_vendor"), "0x8086\n")
    write(os.path.join(d, "subsystem_device"), "0x0000\n")
    write(os.path.join(d, "driver_override"), "(null)\n")
    write(os.path.join(d, "numa_node"), "0\n")
    write(os.path.join(d, "reset_method"), "flr\n")
    write(os.path.join(d, "irq"), "0\n")
    write(os.path.join(d, "resource"), "0x0000000000000000 0x0000000000000000 0x0000000000000000\n" * 7)
    if totalvfs is not None:
        write(os.path.join(d, "sriov_totalvfs"), f"{totalvfs}\n")
    with open(os.path.join(d, "config"), "wb") as f:
        f.write(config(vendor, device, 0x020000, 0x02, 0x8086, 0))
    if driver:
        os.symlink(f"../../../bus/pci/drivers/{driver}", os.path.join(d, "driver"))
    g = os.path.join(groups, str(group), "devices")
    os.makedirs(g, exist_ok=True)
    os.symlink(f"../../../kernel/iommu_groups/{group}", os.path.join(d, "iommu_group"))
    os.symlink(f"../../../../devices/pci0000:00/{bdf}", os.path.join(g, bdf))
    os.symlink(f"../../../devices/pci0000:00/{bdf}", os.path.join(bus_devices, bdf))
    for name, target in extra_links:
        os.symlink(f"../{target}", os.path.join(d, name))

group = 0
for pf in range(PFS):
    pf_bus, vf_bus = 1 + 2 * pf, 2 + 2 * pf
    pf_bdf = f"0000:{pf_bus:02x}:00.0"
    vf_bdfs = [f"0000:{vf_bus:02x}:{i // 8:02x}.{i % 8}" for i in range(VFS)]
    function(pf_bdf, 0x8086, 0x1572, "i40e", group, [(f"virtfn{i}", b) for i, b in enumerate(vf_bdfs)], totalvfs=VFS)
    group += 1
    for i, bdf in enumerate(vf_bdfs):
        driver = None if i % 16 == 15 else "vfio-pci" if i % 8 == 7 else "iavf"
        function(bdf, 0x8086, 0x154c, driver, group, [("physfn", pf_bdf)])
        group += 1
print(f"{out}: {PFS * (VFS + 1)} functions, {group} IOMMU groups")
