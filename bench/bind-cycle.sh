#!/usr/bin/env bash
# A bind + restore cycle of the e1000e inside the virtual host (real kernel, real vfio-pci), Passthru against the
# seed procedure's shell steps doing the same (driver_override, unbind, drivers_probe, and back), in one run, as a
# ratio. Target <= 1.2x. Both sides start processes under TCG emulation, which dominates what is measured.
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
shell_cycle() {
  echo vfio-pci > \$s/devices/\$d/driver_override; echo \$d > \$s/drivers/e1000e/unbind; echo \$d > \$s/drivers_probe
  echo > \$s/devices/\$d/driver_override; echo \$d > \$s/drivers/vfio-pci/unbind; echo \$d > \$s/drivers_probe
}
passthru_cycle() { \$B bind \$d > /dev/null && \$B restore > /dev/null; }
now() { date +%s%N; }
shell=(); ours=()
for i in \$(seq $runs); do   # interleaved, so drift hits both alike
  t=\$(now); shell_cycle; shell+=(\$(( (\$(now) - t) / 1000000 )))
  t=\$(now); passthru_cycle; ours+=(\$(( (\$(now) - t) / 1000000 )))
  test \"\$(basename \$(readlink \$s/devices/\$d/driver))\" = e1000e
done
median() { printf '%s\n' \"\$@\" | sort -n | awk '{a[NR]=\$1} END {print a[int((NR+1)/2)]}'; }
ms=\$(median \"\${shell[@]}\"); mp=\$(median \"\${ours[@]}\")
echo \"bind+restore of the e1000e, $runs runs each, medians: shell steps \${ms} ms, passthru \${mp} ms, ratio \$(awk -v a=\$mp -v b=\$ms 'BEGIN {printf \"%.2f\", a/b}')x\"
"
