#!/usr/bin/env bash
# `passthru list` (NativeAOT) side by side, in one run of alternating rounds (bench/alternate.py: medians of wall and
# CPU time), with:
#  - lspci:    `lspci -D -nn`, the tool whose lines list's begin with (target: passthru <= 0.50x lspci on the tree);
#  - the seed: what the seed procedure runs for the same facts (IDs, names, driver, IOMMU group): `lspci -Dnnk`, then a
#              shell loop over /sys/kernel/iommu_groups/*/devices/*;
#  - the floor: bench/list-floor.c, the same files read with the fewest system calls and nothing else (no names, no
#              runtime): what the kernel's share costs, the part no tool can go below.
# On a synthetic tree of 4,096 functions (16 SR-IOV NICs x 255 VFs), and on this live host warm, and cold (page cache
# dropped before each run where the kernel lets us). PASSTHRU=PATH measures another binary; BEFORE=PATH adds an older
# one to the same rounds on the tree (a before/after in one run).
set -euo pipefail
cd "$(dirname "$0")/.."
work=bench/.work; mkdir -p "$work"
rounds=${ROUNDS:-20}
[ -x artifacts/bin/passthru ] || bash scripts/publish.sh
B=${PASSTHRU:-artifacts/bin/passthru}
tree=$work/sriov-4096
[ -d "$tree/sys" ] || python3 bench/gen-sysfs-tree.py "$tree" >/dev/null
cc -O2 -o "$work/list-floor" bench/list-floor.c
ids=/usr/share/misc/pci.ids

# Same functions, same IDs: compare "BDF ... [vvvv:dddd]" of both tools first.
diff <($B list --root "$tree" --pci-ids "$ids" | sed -E 's/  driver=.*//') \
     <(lspci -D -nn -i "$ids" -A linux-sysfs -O "sysfs.path=$tree/sys/bus/pci") > /dev/null \
  || { echo "bench: passthru and lspci disagree on the synthetic tree" >&2; exit 1; }

seed() { # seed ROOT LSPCI_ARGS...: the seed's way to the same facts
  local root=$1; shift
  echo "lspci -Dnnk -i $ids $* >/dev/null 2>&1; for d in $root/sys/kernel/iommu_groups/*/devices/*; do n=\${d#*/iommu_groups/}; echo \"\${n%%/*} \${d##*/}\"; done"
}
echo "4,096-function tree ($tree):"
python3 bench/alternate.py "$rounds" \
  "passthru list=$B list --root $tree --pci-ids $ids" \
  "lspci -D -nn=lspci -D -nn -i $ids -A linux-sysfs -O sysfs.path=$tree/sys/bus/pci" \
  "seed (lspci -Dnnk + group loop)=$(seed "$tree" -A linux-sysfs -O "sysfs.path=$tree/sys/bus/pci")" \
  "floor (list-floor.c, same reads)=$work/list-floor $tree/sys/bus/pci/devices" \
  ${BEFORE:+"passthru list, before=$BEFORE list --root $tree --pci-ids $ids"} | tee "$work/list-tree.txt"
echo "live host, warm:"
python3 bench/alternate.py "$rounds" "passthru list=$B list" "lspci -D -nn=lspci -D -nn" "seed (lspci -Dnnk + group loop)=$(seed "")" \
  "floor (list-floor.c, same reads)=$work/list-floor /sys/bus/pci/devices" | tee "$work/list-live.txt"
if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
  echo "live host, cold (page cache dropped before each run):"
  python3 bench/alternate.py 5 --prepare 'sync; echo 3 > /proc/sys/vm/drop_caches' "passthru list=$B list" "lspci -D -nn=lspci -D -nn" | tee "$work/list-cold.txt"
fi
