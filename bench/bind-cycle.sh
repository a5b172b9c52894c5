#!/usr/bin/env bash
# A bind + restore cycle of the e1000e inside the virtual host (real kernel, real vfio-pci), Passthru against the
# seed procedure's shell steps doing the same, in one run, as ratios. The seed is a script run once to bind
# (modprobe vfio-pci, then driver_override, unbind, drivers_probe) and once to give back; as a second reference, the
# same writes from builtins inside an already running shell (no process start at all: the kernel's own share).
# Targets: <= 1.2x the seed, <= 1.30x the builtins. Times come from bash's own clock ($EPOCHREALTIME), so no timing
# process is counted; the three are interleaved round by round, so drift hits all alike, after one round that warms
# the caches. BEFORE=PATH adds an older passthru binary as a fourth, in the same rounds (a before/after in one run);
# PASSTHRU=PATH measures another binary than artifacts/bin/passthru. Copy rebuilt binaries to new paths: a virtual
# host can show it stale pages of a file rewritten in place through 9p.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-15}
[ -x artifacts/bin/passthru ] || bash scripts/publish.sh
work=bench/.work; mkdir -p "$work"
dir=tests/vm/.cache/hosts/bench-$$
trap 'bash tests/vm/vhost.sh stop "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
bash tests/vm/vhost.sh start "$dir"
B=$(realpath "${PASSTHRU:-artifacts/bin/passthru}"); O=${BEFORE:+$(realpath "$BEFORE")}
bash tests/vm/vhost.sh exec "$dir" --timeout 1200 -- bash -c '
set -euo pipefail
runs=$1; B=$2; O=$3
modprobe vfio-pci; modprobe vfio_iommu_type1
d=0000:00:02.0; s=/sys/bus/pci
builtin_cycle() {
  echo vfio-pci > $s/devices/$d/driver_override; echo $d > $s/drivers/e1000e/unbind; echo $d > $s/drivers_probe
  echo > $s/devices/$d/driver_override; echo $d > $s/drivers/vfio-pci/unbind; echo $d > $s/drivers_probe
}
seed_cycle() {
  sh -c "modprobe vfio-pci; echo vfio-pci > $s/devices/$d/driver_override; echo $d > $s/drivers/e1000e/unbind; echo $d > $s/drivers_probe"
  sh -c "echo > $s/devices/$d/driver_override; echo $d > $s/drivers/vfio-pci/unbind; echo $d > $s/drivers_probe"
}
passthru_cycle() { $B bind $d > /dev/null && $B restore > /dev/null; }
before_cycle() { [ -z "$O" ] || { $O bind $d > /dev/null && $O restore > /dev/null; }; }
ms() { local a=${1/./} b=${2/./}; echo $(( (10#$b - 10#$a) / 1000 )); }
shell=(); seed=(); ours=(); old=()
for i in $(seq 0 "$runs"); do
  t0=$EPOCHREALTIME; builtin_cycle; t1=$EPOCHREALTIME; seed_cycle; t2=$EPOCHREALTIME; passthru_cycle; t3=$EPOCHREALTIME
  before_cycle; t4=$EPOCHREALTIME
  test "$(basename "$(readlink $s/devices/$d/driver)")" = e1000e || { echo "bench: the e1000e was not given back" >&2; exit 1; }
  [ "$i" -eq 0 ] && continue   # the warm-up round
  shell+=("$(ms $t0 $t1)"); seed+=("$(ms $t1 $t2)"); ours+=("$(ms $t2 $t3)"); old+=("$(ms $t3 $t4)")
done
median() { printf "%s\n" "$@" | sort -n | awk "{a[NR]=\$1} END {print a[int((NR+1)/2)]}"; }
ms=$(median "${shell[@]}"); md=$(median "${seed[@]}"); mp=$(median "${ours[@]}")
r() { awk -v a=$1 -v b=$2 "BEGIN {printf \"%.2f\", a/b}"; }
echo "bind+restore of the e1000e, $runs rounds, medians: seed scripts ${md} ms, builtins in a running shell ${ms} ms, passthru ${mp} ms"
echo "ratio passthru/seed scripts $(r $mp $md)x (target <= 1.2x), passthru/builtins $(r $mp $ms)x (target <= 1.30x)"
if [ -n "$O" ]; then mo=$(median "${old[@]}"); echo "before ($O): ${mo} ms, $(r $mo $md)x the seed, $(r $mo $ms)x the builtins; passthru/before $(r $mp $mo)x"; fi
echo "all rounds (ms): seed ${seed[*]} | builtins ${shell[*]} | passthru ${ours[*]}${O:+ | before ${old[*]}}"
echo "load average (outside, at the start): $4"
' bench "$runs" "$B" "$O" "$(cut -d" " -f1-3 /proc/loadavg)" | tee "$work/bind-cycle.txt"   # the virtual host writes only to its own overlay: keep it here
