#!/usr/bin/env bash
# A bind + restore cycle of the e1000e inside the virtual host (real kernel, real vfio-pci), Passthru against the
# seed procedure's shell steps doing the same, in one run, as ratios. The seed is a script run once to bind
# (modprobe vfio-pci, then driver_override, unbind, drivers_probe) and once to give back; as a second reference, the
# same writes from builtins inside an already running shell (no process start at all). Target <= 1.2x the seed.
# Under TCG emulation every process start costs ~90 ms (/bin/true), a .NET NativeAOT start ~220 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
[ -x artifacts/bin/passthru ] || bash scripts/publish.sh
dir=tests/vm/.cache/hosts/bench-$$
trap 'bash tests/vm/vhost.sh stop "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
bash tests/vm/vhost.sh start "$dir"
bash tests/vm/vhost.sh exec "$dir" --timeout 1200 -- bash -c "
set -e
modprobe vfio-pci; modprobe vfio_iommu_type1
B=$PWD/artifacts/bin/passthru
d=0000:00:02.0; s=/sys/bus/pci
builtin_cycle() {
  echo vfio-pci > \$s/devices/\$d/driver_override; echo \$d > \$s/drivers/e1000e/unbind; echo \$d > \$s/drivers_probe
  echo > \$s/devices/\$d/driver_override; echo \$d > \$s/drivers/vfio-pci/unbind; echo \$d > \$s/drivers_probe
}
seed_cycle() {
  sh -c \"modprobe vfio-pci; echo vfio-pci > \$s/devices/\$d/driver_override; echo \$d > \$s/drivers/e1000e/unbind; echo \$d > \$s/drivers_probe\"
  sh -c \"echo > \$s/devices/\$d/driver_override; echo \$d > \$s/drivers/vfio-pci/unbind; echo \$d > \$s/drivers_probe\"
}
passthru_cycle() { \$B bind \$d > /dev/null && \$B restore > /dev/null; }
now() { date +%s%N; }
shell=(); seed=(); ours=()
for i in \$(seq $runs); do   # interleaved, so drift hits all alike
  t=\$(now); builtin_cycle; shell+=(\$(( (\$(now) - t) / 1000000 )))
  t=\$(now); seed_cycle; seed+=(\$(( (\$(now) - t) / 1000000 )))
  t=\$(now); passthru_cycle; ours+=(\$(( (\$(now) - t) / 1000000 )))
  test \"\$(basename \$(readlink \$s/devices/\$d/driver))\" = e1000e
done
median() { printf '%s\n' \"\$@\" | sort -n | awk '{a[NR]=\$1} END {print a[int((NR+1)/2)]}'; }
ms=\$(median \"\${shell[@]}\"); md=\$(median \"\${seed[@]}\"); mp=\$(median \"\${ours[@]}\")
r() { awk -v a=\$1 -v b=\$2 'BEGIN {printf \"%.2f\", a/b}'; }
echo \"bind+restore of the e1000e, $runs runs each, medians: seed scripts \${md} ms, builtins in a running shell \${ms} ms, passthru \${mp} ms\"
echo \"ratio passthru/seed scripts \$(r \$mp \$md)x, passthru/builtins \$(r \$mp \$ms)x\"
"
