#!/usr/bin/env bash
# A `vfs --count 2 --bind` + restore cycle of the SR-IOV NVMe PF inside the virtual host (VHOST_SRIOV=on: real
# kernel, real VFs, real vfio-pci), Passthru against a script doing the same writes, in one run, as ratios. The script
# is run once to create and bind (modprobe vfio-pci; autoprobe 0; sriov_numvfs 2; driver_override and drivers_probe
# for each VF; autoprobe 1) and once to give back (clear each override, unbind from vfio-pci, sriov_numvfs 0); as a
# second reference, the same writes from builtins inside an already running shell (the kernel's own share).
# Target <= 1.2x the script. Timed by bash's own clock ($EPOCHREALTIME), interleaved round by round after one
# warm-up round, as bind-cycle.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-15}
[ -x artifacts/bin/passthru ] || bash scripts/publish.sh
work=bench/.work; mkdir -p "$work"
dir=tests/vm/.cache/hosts/bench-vfs-$$
trap 'bash tests/vm/vhost.sh stop "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
VHOST_SRIOV=on bash tests/vm/vhost.sh start "$dir"
bash tests/vm/vhost.sh exec "$dir" --timeout 1800 -- bash -c '
set -euo pipefail
runs=$1; B=$2/artifacts/bin/passthru
modprobe vfio-pci; modprobe vfio_iommu_type1
pf=/sys/bus/pci/devices/0000:03:00.0; s=/sys/bus/pci; vfs="0000:03:00.1 0000:03:00.2"
builtin_cycle() {
  echo 0 > $pf/sriov_drivers_autoprobe; echo 2 > $pf/sriov_numvfs
  for v in $vfs; do echo vfio-pci > $s/devices/$v/driver_override; echo $v > $s/drivers_probe; done
  echo 1 > $pf/sriov_drivers_autoprobe
  for v in $vfs; do echo > $s/devices/$v/driver_override; echo $v > $s/drivers/vfio-pci/unbind; done
  echo 0 > $pf/sriov_numvfs
}
script_cycle() {
  sh -c "modprobe vfio-pci; echo 0 > $pf/sriov_drivers_autoprobe; echo 2 > $pf/sriov_numvfs
    for v in $vfs; do echo vfio-pci > $s/devices/\$v/driver_override; echo \$v > $s/drivers_probe; done
    echo 1 > $pf/sriov_drivers_autoprobe"
  sh -c "for v in $vfs; do echo > $s/devices/\$v/driver_override; echo \$v > $s/drivers/vfio-pci/unbind; done; echo 0 > $pf/sriov_numvfs"
}
passthru_cycle() { $B vfs 03:00.0 --count 2 --bind > /dev/null && $B restore > /dev/null; }
check() {
  test "$(cat $pf/sriov_numvfs) $(cat $pf/sriov_drivers_autoprobe)" = "0 1" || { echo "bench: $1 did not put the PF back" >&2; exit 1; }
}
ms() { local a=${1/./} b=${2/./}; echo $(( (10#$b - 10#$a) / 1000 )); }
shell=(); seed=(); ours=()
for i in $(seq 0 "$runs"); do
  t0=$EPOCHREALTIME; builtin_cycle; t1=$EPOCHREALTIME; check builtins
  script_cycle; t2=$EPOCHREALTIME; check script
  passthru_cycle; t3=$EPOCHREALTIME; check passthru
  [ "$i" -eq 0 ] && continue   # the warm-up round
  shell+=("$(ms $t0 $t1)"); seed+=("$(ms $t1 $t2)"); ours+=("$(ms $t2 $t3)")
done
median() { printf "%s\n" "$@" | sort -n | awk "{a[NR]=\$1} END {print a[int((NR+1)/2)]}"; }
ms=$(median "${shell[@]}"); md=$(median "${seed[@]}"); mp=$(median "${ours[@]}")
r() { awk -v a=$1 -v b=$2 "BEGIN {printf \"%.2f\", a/b}"; }
echo "vfs --count 2 --bind + restore of the NVMe PF, $runs rounds, medians: script ${md} ms, builtins in a running shell ${ms} ms, passthru ${mp} ms"
echo "ratio passthru/script $(r $mp $md)x (target <= 1.2x), passthru/builtins $(r $mp $ms)x"
echo "all rounds (ms): script ${seed[*]} | builtins ${shell[*]} | passthru ${ours[*]}"
' bench "$runs" "$PWD" | tee "$work/vfs-cycle.txt"   # the virtual host writes only to its own overlay: keep it here
