#!/usr/bin/env bash
# The README's first command: installs what Passthru needs, builds it, and shows the whole mission working in the
# virtual host (tests/vm: q35 with an emulated Intel IOMMU running Debian's kernel): check, list, bind, restore, then
# a Linux guest whose own e1000e driver gets a DHCP lease over the passed-through NIC. Each step's real output is
# printed. Needs root (apt-get); about 4 minutes under emulation.
#   --barrelfish   also boot real Barrelfish (../shared/barrelfish) with the NIC passed through, until its e1000n
#                  driver completes DHCP over it (about 10 more minutes: Barrelfish nested in emulation)
set -euo pipefail
cd "$(dirname "$0")/.."
barrelfish=
case ${1:-} in
  --barrelfish) barrelfish=1;;
  "") ;;
  *) echo "usage: bash scripts/demo.sh [--barrelfish]" >&2; exit 2;;
esac
bash scripts/install-deps.sh
bash scripts/publish.sh
bash tests/vm/build.sh
dir=tests/vm/.cache/hosts/demo-$$
trap 'bash tests/vm/vhost.sh stop "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
echo "== booting the virtual host (Debian kernel, emulated Intel IOMMU, TCG) ..."
bash tests/vm/vhost.sh start "$dir"
bin=$PWD/artifacts/bin/passthru
probe=$PWD/tests/vm/.cache/probe/probe.elf
step() { # step DESCRIPTION COMMAND: runs COMMAND as root inside the virtual host and shows it
  printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${2//$PWD\//}"
  bash tests/vm/vhost.sh exec "$dir" --timeout 1800 -- bash -c "$2" 2>&1 | sed "s|$PWD/||g" || true
}
step "Is this host ready for passthrough?" "$bin check"
step "The PCI devices, by IOMMU group" "$bin list --groups"
step "What binding the e1000e would do (nothing changes)" "$bin bind 0000:00:02.0 --dry-run"
step "Bind it to vfio-pci" "$bin bind 0000:00:02.0 && $bin show 00:02.0 | grep -E 'Driver:|IOMMU group:|Passthrough:'"
step "Restore it" "$bin restore && $bin list --class net"
step "A guest sees it at its own address (the probe guest's PCI scan); it is given back afterwards" \
  "$bin run --kernel $probe --memory 128 --device 0000:00:02.0 --expect 'pci 01:00.0 8086:10d3' --timeout 120 | grep -a 'probe: pci'; $bin list --class net | grep -F 0000:00:02.0"
guest=$PWD/tests/vm/.cache
step "A Linux guest's own e1000e driver uses it: a DHCP lease over the passed-through NIC (a few minutes)" \
  "$bin run --kernel $guest/vmlinuz --initrd $guest/guest-initrd.gz --append 'console=ttyS0 quiet panic=-1' --memory 256 --device 0000:00:02.0 --expect 'guest: done' --timeout 900 | tr -d '\r' | grep -a 'guest: '; $bin list --class net | grep -F 0000:00:02.0"
if [ -n "$barrelfish" ]; then
  menu=$(cd .. && pwd)/shared/barrelfish/build/platforms/x86/menu.lst.x86_64
  [ -f "$menu" ] || { echo "demo: $menu is missing (the real Barrelfish build beside the clone)" >&2; exit 1; }
  step "Real Barrelfish: its e1000n driver takes the passed-through NIC and completes DHCP (about 10 minutes)" \
    "$bin run --menu $menu --memory 1024 --device 0000:00:02.0 --expect 'DHCP completed' --timeout 1500 | tr -d '\r' | grep -aE 'Barrelfish CPU driver|Starting \"e1000n\"|e1000: MAC|Cardname|DHCP completed'; $bin list --class net | grep -F 0000:00:02.0"
fi
