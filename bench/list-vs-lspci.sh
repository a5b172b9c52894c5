#!/usr/bin/env bash
# `passthru list` (NativeAOT) against `lspci -D -nn` on the same trees, side by side in one run, as a ratio:
#  - a synthetic tree of 4,096 functions (16 SR-IOV NICs x 255 VFs), target <= 1.0x lspci;
#  - this live host, warm, and cold (page cache dropped before each run where the kernel lets us), target <= 1.5x.
set -euo pipefail
cd "$(dirname "$0")/.."
work=bench/.work; mkdir -p "$work"
command -v hyperfine >/dev/null || bash scripts/install-deps.sh
[ -x artifacts/bin/passthru ] || bash scripts/publish.sh
tree=$work/sriov-4096
[ -d "$tree/sys" ] || python3 bench/gen-sysfs-tree.py "$tree" >/dev/null
ids=/usr/share/misc/pci.ids

# Same functions, same IDs: compare "BDF ... [vvvv:dddd]" of both tools first.
diff <(artifacts/bin/passthru list --root "$tree" --pci-ids "$ids" | sed -E 's/  driver=.*//') \
     <(lspci -D -nn -i "$ids" -A linux-sysfs -O "sysfs.path=$tree/sys/bus/pci") > /dev/null \
  || { echo "bench: passthru and lspci disagree on the synthetic tree" >&2; exit 1; }

ratio() { # ratio NAME JSON: mean(passthru) / mean(lspci) from hyperfine's export
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))["results"]
p, l = r[0]["median"], r[1]["median"]
print(f"{sys.argv[1]}: passthru {p*1000:.1f} ms, lspci {l*1000:.1f} ms (medians), ratio {p/l:.2f}x")
PY
}
hyperfine -N -w 3 -r 20 --export-json "$work/tree.json" \
  "artifacts/bin/passthru list --root $tree --pci-ids $ids" "lspci -D -nn -i $ids -A linux-sysfs -O sysfs.path=$tree/sys/bus/pci" > "$work/tree.txt"
hyperfine -N -w 3 -r 30 --export-json "$work/live.json" "artifacts/bin/passthru list" "lspci -D -nn" > "$work/live.txt"
if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then
  hyperfine -r 10 --prepare 'sync; echo 3 > /proc/sys/vm/drop_caches' --export-json "$work/cold.json" \
    "artifacts/bin/passthru list" "lspci -D -nn" > "$work/cold.txt"
  cold="live host, cold (page cache dropped)"
else
  # Without the right to drop caches, the first start of each binary after the other ran is the closest to cold.
  hyperfine -N -w 0 -r 1 --export-json "$work/cold.json" "artifacts/bin/passthru list" "lspci -D -nn" > "$work/cold.txt"
  cold="live host, first runs (caches could not be dropped)"
fi
ratio "4096-function tree" "$work/tree.json"
ratio "live host, warm" "$work/live.json"
ratio "$cold" "$work/cold.json"
