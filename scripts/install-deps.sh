#!/usr/bin/env bash
# Installs what Passthru's build, tests and demo need on a fresh Debian 12 machine (run as root).
# Idempotent: packages already present are not fetched again.
set -euo pipefail
packages=(
  pciutils pci.ids            # lspci: the reference for `list`; pci.ids: device names
  qemu-system-x86             # the virtual host and the guests
  ovmf                        # the virtual host with its GPU as boot display (VHOST_GPU=boot): UEFI's GOP framebuffer
  seabios ipxe-qemu           # real option ROMs the fast tier checks (vgabios-stdvga.bin, efi-e1000e.rom); QEMU depends on them too
  busybox-static cpio kmod    # the virtual host's initramfs and module tree
  gcc binutils                # the probe guest (a multiboot kernel built from source), and NativeAOT's link
  libc6-dev zlib1g-dev        # the static NativeAOT binary links glibc's libc.a, libm.a (and zlib)
  hyperfine                   # benchmarks
  libvirt-clients libxml2-utils                 # export: virt-xml-validate, virsh
  libvirt-daemon libvirt-daemon-driver-qemu     # export: virsh domxml-to-native against a local daemon
  python3-yaml python3-jsonschema               # export kubevirt: KubeVirt's CRD schemas applied by /usr/bin/python3
  python3-nova                                  # export nova: Nova's own device_spec and alias parsers
  grub-pc-bin grub-common xorriso mtools        # image: grub-mkrescue builds the bootable ISO (xorriso writes it; the tests list it)
  patch                       # setup tests: the printed plan must apply with patch(1)
  lintian man-db groff-base   # packaging: the .deb is checked by lintian, the man page rendered by man -l
  bash-completion zsh fish    # packaging: each generated completion script is loaded by its own shell
  make                        # the probe guest's Makefile (tests/vm/probe)
  procps                      # pgrep, pkill: the virtual host's tests find and stop the QEMU they started
  util-linux bsdutils         # setpriv, unshare, flock, setsid (virtual host, libvirt, build locks); script(1): a test's terminal
  passwd                      # useradd, groupadd: the libvirt tests' libvirt-qemu user
  python3                     # the export validators and the QMP holder in the hot-plug tests (/usr/bin/python3)
  coreutils tar dpkg apt      # cp, timeout, od, id; dpkg-deb; apt-get download (scripts/fetch-test-packages.sh)
  debianutils libc-bin        # which (the libvirt tests), ldd (the real-kernel boot copies kmod and udevadm with their libraries)
)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "install-deps: need root to apt-get install ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v dotnet >/dev/null; then
  echo "install-deps: the .NET 10 SDK (dotnet) is not on PATH; install it from https://dot.net first" >&2; exit 1
fi
