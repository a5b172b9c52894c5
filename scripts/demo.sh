#!/usr/bin/env bash
# The README's first command: installs what Passthru needs, builds it, and shows the whole mission working in the
# virtual host (tests/vm: q35 with an emulated Intel IOMMU running Debian's kernel): check, list, bind, run a guest
# with the e1000e passed through, restore. Each step's real output is printed. Needs root (apt-get); ~2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
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
  bash tests/vm/vhost.sh exec "$dir" --timeout 300 -- bash -c "$2" 2>&1 | sed "s|$PWD/||g" || true
}
step "Is this host ready for passthrough?" "$bin check"
step "The PCI devices, by IOMMU group" "$bin list --groups"
step "What binding the e1000e would do (nothing changes)" "$bin bind 0000:00:02.0 --dry-run"
step "Bind it to vfio-pci" "$bin bind 0000:00:02.0 && $bin show 00:02.0 | grep -E 'Driver:|IOMMU group:|Passthrough:'"
step "Restore it" "$bin restore && $bin list --class net"
step "Run a guest with it passed through; it is given back afterwards" \
  "$bin run --kernel $probe --memory 128 --device 0000:00:02.0 --expect 'pci 01:00.0 8086:10d3' --timeout 120 | grep -a 'probe:'; $bin list --class net | grep -F 0000:00:02.0"
