#!/usr/bin/env bash
# Builds what the virtual host needs, once, into tests/vm/.cache (git-ignored): Debian's kernel and its modules,
# an initramfs with static busybox and only the modules the test bed uses, and the probe guest.
# Idempotent: a finished piece is not built again. Fails loudly, naming what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$here/.cache
mkdir -p "$cache"
# Test collections may build at the same time: one at a time, the others then find the work done.
exec 9> "$cache/.build.lock"
flock 9

need() { command -v "$1" >/dev/null || { echo "vm/build: '$1' is missing (scripts/install-deps.sh installs $2)" >&2; exit 1; }; }
need qemu-system-x86_64 qemu-system-x86; need cpio cpio; need depmod kmod; need gcc gcc
[ -x /bin/busybox ] || { echo "vm/build: /bin/busybox is missing (busybox-static)" >&2; exit 1; }

# `build.sh probe`: only the probe guest (4. below), for the tests that boot it straight in QEMU.
if [ "${1:-}" = probe ]; then make -s -C "$here/probe" OUT="$cache/probe" >/dev/null; exit 0; fi

# 1. The kernel: linux-image-amd64's versioned dependency, one .deb fetched by its exact name.
if [ ! -f "$cache/kernel/release" ]; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
  if [ -z "$pkg" ]; then apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1); fi
  [ -n "$pkg" ] || { echo "vm/build: cannot find linux-image-amd64's kernel package in apt's lists" >&2; exit 1; }
  rm -rf "$cache/kernel.tmp"; mkdir -p "$cache/kernel.tmp"
  (cd "$cache/kernel.tmp" && apt-get download -qq "$pkg" 2>&1 | grep -v "unsandboxed as root" >&2; [ -f "$cache"/kernel.tmp/*.deb ]) || { echo "vm/build: apt-get download $pkg failed" >&2; exit 1; }
  dpkg -x "$cache"/kernel.tmp/*.deb "$cache/kernel.tmp/root"
  release=$(ls "$cache/kernel.tmp/root/lib/modules" | head -n 1)
  depmod -b "$cache/kernel.tmp/root" "$release"
  cp "$cache/kernel.tmp/root/boot/vmlinuz-$release" "$cache/kernel.tmp/vmlinuz"
  rm -f "$cache"/kernel.tmp/*.deb
  echo "$release" > "$cache/kernel.tmp/release"
  rm -rf "$cache/kernel"; mv "$cache/kernel.tmp" "$cache/kernel"
fi
release=$(cat "$cache/kernel/release")
kroot=$cache/kernel/root

# An initramfs: static busybox, the given files (SOURCE:DEST, made executable), the named modules with their
# dependencies from modules.dep, and depmod's indexes for exactly that set (what modprobe inside it uses).
initramfs() { # initramfs OUTPUT "MODULES" SOURCE:DEST...
  local out=$1 modules=$2 tmp=$1.d mods f rel pair; shift 2
  rm -rf "$tmp"; mkdir -p "$tmp"/{bin,dev,proc,sys,tmp,host,share,lib/modules}
  cp /bin/busybox "$tmp/bin/busybox"
  for pair in "$@"; do cp "${pair%%:*}" "$tmp/${pair#*:}"; chmod +x "$tmp/${pair#*:}"; done
  mods=$(for m in $modules; do modprobe -d "$kroot" -S "$release" --show-depends "$m" 2>/dev/null; done \
         | awk '$1 == "insmod" { print $2 }' | sort -u)
  [ -n "$mods" ] || { echo "vm/build: modprobe could not resolve the modules in $kroot" >&2; exit 1; }
  for f in $mods; do
    rel=${f#"$kroot"/}
    mkdir -p "$tmp/$(dirname "$rel")"; cp "$f" "$tmp/$rel"
  done
  cp "$kroot/lib/modules/$release"/modules.{builtin,builtin.modinfo,order} "$tmp/lib/modules/$release/" 2>/dev/null || true
  depmod -b "$tmp" "$release"
  (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) > "$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
}

# 2. The virtual host's initramfs: its init, and the modules the test bed uses (the host's own modprobe loads them
#    inside the chroot).
stamp=$(cat "$here/init" "$here/build.sh" | sha256sum | cut -c1-16)
[ -f "$cache/initrd-$stamp.gz" ] || initramfs "$cache/initrd-$stamp.gz" \
  "virtio_pci 9pnet_virtio 9p overlay e1000e e1000 nvme vfio vfio_iommu_type1 vfio-pci pci-stub bochs snd_hda_intel snd_hda_codec_generic" "$here/init:init"
ln -sfn "initrd-$stamp.gz" "$cache/initrd.gz"
ln -sfn "kernel/vmlinuz" "$cache/vmlinuz"

# 3. The Linux guest's initramfs: the same kernel, booted nested inside the virtual host, with busybox and the
#    e1000e and bochs-drm drivers, whose init reports the PCI functions and a DHCP lease over each NIC (linux-guest/init).
gstamp=$(cat "$here/linux-guest/init" "$here/linux-guest/dhcp-event" "$here/build.sh" | sha256sum | cut -c1-16)
[ -f "$cache/guest-initrd-$gstamp.gz" ] || initramfs "$cache/guest-initrd-$gstamp.gz" "e1000e bochs" \
  "$here/linux-guest/init:init" "$here/linux-guest/dhcp-event:bin/dhcp-event"
ln -sfn "guest-initrd-$gstamp.gz" "$cache/guest-initrd.gz"

# 4. The probe guest.
make -s -C "$here/probe" OUT="$cache/probe" >/dev/null
echo "vm/build: kernel $release, initrd $(du -h "$cache/initrd.gz" -L | cut -f1), probe $(stat -c %s "$cache/probe/probe.elf") bytes"
