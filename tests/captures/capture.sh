#!/usr/bin/env bash
# Captures what Passthru reads from a live host into a directory tree, so tests run on real machines' state
# without mocks. Usage: capture.sh [SRC_ROOT] OUT_DIR   (SRC_ROOT defaults to /; run as root to read config space
# and ACPI tables). The tree keeps sysfs's shape: sys/bus/pci/devices/* are relative symlinks into sys/devices/...,
# and driver, iommu_group, physfn and virtfn links stay relative links inside the tree. Device nodes (dev/kvm,
# dev/vfio/*) become empty files: a capture records that they exist, not what they do.
set -euo pipefail
if [ $# -eq 1 ]; then src=/; out=$1; elif [ $# -eq 2 ]; then src=$1; out=$2; else
  echo "usage: $0 [SRC_ROOT] OUT_DIR" >&2; exit 2; fi
src=${src%/}; out=$(mkdir -p "$out" && cd "$out" && pwd)

# Attributes Passthru and lspci read; resourceN/rom (BAR windows) are never copied.
attrs="config vendor device class revision subsystem_vendor subsystem_device driver_override boot_vga reset_method
numa_node irq resource modalias enable local_cpulist sriov_totalvfs sriov_numvfs sriov_offset sriov_stride sriov_drivers_autoprobe label
d3cold_allowed current_link_speed current_link_width max_link_speed max_link_width"

# link DEST TARGET: a relative symlink at OUT/DEST pointing where TARGET (a path under SRC) points inside OUT.
link() {
  local dest=$out/$1 target=$out/$2
  mkdir -p "$(dirname "$dest")"
  ln -sfn "$(realpath -m --relative-to="$(dirname "$dest")" "$target")" "$dest"
}
# rel PATH: PATH (absolute, under SRC) without the SRC prefix.
rel() { local p=$1; p=${p#"$src"}; echo "${p#/}"; }
copy_file() { # copy_file SRC_PATH: copies a readable regular file to the same place under OUT
  local f=$1 r; r=$(rel "$f"); [ -f "$f" ] && [ -r "$f" ] || return 0
  mkdir -p "$out/$(dirname "$r")"; cat "$f" > "$out/$r" 2>/dev/null || rm -f "$out/$r"
}

mkdir -p "$out/sys/bus/pci/devices" "$out/sys/bus/pci/drivers" "$out/sys/kernel/iommu_groups"
for dev in "$src"/sys/bus/pci/devices/*; do
  [ -e "$dev" ] || continue
  name=$(basename "$dev"); real=$(realpath "$dev"); r=$(rel "$real")
  mkdir -p "$out/$r"
  for a in $attrs; do copy_file "$real/$a"; done
  link "sys/bus/pci/devices/$name" "$r"
  if [ -L "$real/driver" ]; then
    drv=$(rel "$(realpath "$real/driver")"); mkdir -p "$out/$drv"; link "$r/driver" "$drv"; fi
  if [ -L "$real/iommu_group" ]; then
    grp=$(rel "$(realpath "$real/iommu_group")"); mkdir -p "$out/$grp/devices"
    copy_file "$src/$grp/type"
    link "$r/iommu_group" "$grp"; link "$grp/devices/$name" "$r"; fi
  for l in physfn "$real"/virtfn*; do
    l=$(basename "$l"); [ -L "$real/$l" ] && link "$r/$l" "$(rel "$(realpath "$real/$l")")"
  done
done
for drv in "$src"/sys/bus/pci/drivers/*; do [ -d "$drv" ] && mkdir -p "$out/$(rel "$drv")"; done

# IOMMU units: sys/class/iommu/* link to sys/devices/virtual/iommu/*, whose intel-iommu/ or amd-iommu/ holds cap/ecap.
if [ -d "$src/sys/class/iommu" ]; then
  mkdir -p "$out/sys/class/iommu"
  for u in "$src"/sys/class/iommu/*; do
    [ -e "$u" ] || continue
    real=$(realpath "$u"); r=$(rel "$real"); mkdir -p "$out/$r"
    for f in "$real"/*/*; do [ -f "$f" ] && copy_file "$f"; done
    link "sys/class/iommu/$(basename "$u")" "$r"
  done
fi
for t in DMAR IVRS; do copy_file "$src/sys/firmware/acpi/tables/$t"; done
mkdir -p "$out/sys/firmware/acpi/tables"

# Modules: a directory per loaded or built-in module; parameters only of those passthrough depends on.
for m in "$src"/sys/module/*; do
  n=$(basename "$m"); mkdir -p "$out/sys/module/$n"; copy_file "$m/initstate"
  case $n in kvm*|vfio*|iommu*|pci_stub|intel_iommu|amd_iommu*)
    for p in "$m"/parameters/*; do copy_file "$p"; done;; esac
done

for f in proc/cpuinfo proc/cmdline proc/sys/kernel/osrelease proc/modules proc/iomem; do copy_file "$src/$f"; done
# Consoles and framebuffers: what holds a GPU's memory for the host's console (issue #22).
for v in "$src"/sys/class/vtconsole/vtcon*; do
  [ -e "$v" ] || continue; r=$(rel "$(realpath "$v")"); mkdir -p "$out/$r"
  copy_file "$(realpath "$v")/name"; copy_file "$(realpath "$v")/bind"; link "sys/class/vtconsole/$(basename "$v")" "$r"
done
for g in "$src"/sys/class/graphics/fb[0-9]*; do
  [ -e "$g" ] || continue; real=$(realpath "$g"); r=$(rel "$real"); mkdir -p "$out/$r"
  for a in name virtual_size bits_per_pixel; do copy_file "$real/$a"; done
  link "sys/class/graphics/$(basename "$g")" "$r"
  [ -L "$real/device" ] && link "$r/device" "$(rel "$(realpath "$real/device")")"
done
# Firmware framebuffers (efifb, vesafb, simplefb/simpledrm) as platform devices, with the driver that holds each.
for p in "$src"/sys/bus/platform/devices/*-framebuffer.*; do
  [ -e "$p" ] || continue; real=$(realpath "$p"); r=$(rel "$real"); mkdir -p "$out/$r"
  link "sys/bus/platform/devices/$(basename "$p")" "$r"
  if [ -L "$real/driver" ]; then drv=$(rel "$(realpath "$real/driver")"); mkdir -p "$out/$drv"; link "$r/driver" "$drv"; fi
done
# The capturing shell's limits stand for the user's: check reads the locked-memory limit from here.
copy_file "$src/proc/self/limits"; copy_file "$src/proc/self/status"

release=$(cat "$src/proc/sys/kernel/osrelease" 2>/dev/null || uname -r)
moddir=lib/modules/$release
if [ -d "$src/$moddir" ]; then
  mkdir -p "$out/$moddir"
  copy_file "$src/$moddir/modules.builtin"
  # modules.dep is large; the lines for vfio and kvm are the ones check looks for.
  [ -r "$src/$moddir/modules.dep" ] && grep -E '(^|/)(vfio|kvm)[^/]*\.ko' "$src/$moddir/modules.dep" > "$out/$moddir/modules.dep" || true
fi

for d in dev/kvm dev/vfio/vfio "$src"/dev/vfio/[0-9]*; do
  d=$(rel "${d/#dev/$src/dev}"); [ -e "$src/$d" ] && { mkdir -p "$out/$(dirname "$d")"; : > "$out/$d"; }
done
for q in usr/bin/qemu-system-x86_64 usr/bin/qemu-system-aarch64; do
  [ -e "$src/$q" ] && { mkdir -p "$out/$(dirname "$q")"; : > "$out/$q"; }
done

# The reference for tests: lspci's own view of this machine, with the pci.ids it used.
if command -v lspci >/dev/null && [ "$src" = "" ]; then
  lspci -D -nn -k > "$out/lspci-Dnnk.txt" 2>/dev/null || true
fi
# git keeps no empty directories: mark them so a clone has the same shape (Passthru ignores dot files).
find "$out" -type d -empty -exec touch {}/.keep \;
echo "captured ${src:-/} into $out: $(ls "$out/sys/bus/pci/devices" | wc -l) PCI functions, $(ls "$out/sys/kernel/iommu_groups" | wc -l) IOMMU groups"
