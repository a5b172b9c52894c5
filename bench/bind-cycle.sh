#!/usr/bin/env bash
# A bind + restore cycle of the e1000e inside the virtual host (real kernel, real vfio-pci), Passthru against the
# seed procedure's shell steps doing the same, in one run, as ratios. The seed is a script run once to bind
# (modprobe vfio-pci, then driver_override, unbind, drivers_probe) and once to give back; as a second reference, the
# same writes from builtins inside an already running shell (no process start at all: the kernel's own share).
# Targets: <= 1.2x the seed, <= 1.30x the builtins. Times come from bash's own clock ($EPOCHREALTIME), so no timing
# process is counted; the three are interleaved round by round, each round starting with the next one in turn, so
# drift and order hit all alike, after one round that warms the caches. BEFORE=PATH adds an older passthru binary as
# a fourth, in the same rounds (a before/after in one run); PASSTHRU=PATH measures another binary than
# artifacts/bin/passthru. Both are installed into the virtual host's /usr/local/bin first (FROM_SHARE=1: run them
# from the repository's 9p share instead). Two more contenders split passthru's distance from the builtins: the same
# builtins with two starts of `busybox true` around them (what starting any two processes costs), and with two starts
# of an empty NativeAOT program built as passthru is (bench/start-floor: what any .NET tool pays before its own work).
# HOSTS=N repeats the whole measure in N virtual hosts, each freshly started, and then pools their rounds: one host's
# median moves by a few hundredths from one fresh host to the next (bench/README.md), so a single run can land on either
# side of a target that the pooled rounds settle.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-15}
if [ "${HOSTS:-1}" -gt 1 ]; then
  mkdir -p bench/.work; rm -f bench/.work/bind-cycle-host*.txt   # an earlier run's hosts are not this run's
  for h in $(seq "$HOSTS"); do
    echo "== virtual host $h of $HOSTS"
    HOSTS=1 bash "$0"
    cp bench/.work/bind-cycle.txt "bench/.work/bind-cycle-host$h.txt"
  done
  python3 bench/pool-rounds.py $(seq -f "bench/.work/bind-cycle-host%g.txt" "$HOSTS") | tee bench/.work/bind-cycle-pooled.txt
  exit
fi
[ -x artifacts/bin/passthru ] || bash scripts/publish.sh
work=bench/.work; mkdir -p "$work"
floor=$work/start-floor/start-floor
[ -x "$floor" ] && [ "$floor" -nt bench/start-floor/StartFloor.csproj ] ||
  dotnet publish bench/start-floor -c Release -r linux-x64 -o "$work/start-floor" -v quiet -nologo > /dev/null
dir=tests/vm/.cache/hosts/bench-$$
trap 'bash tests/vm/vhost.sh stop "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
bash tests/vm/vhost.sh start "$dir"
B=$(realpath "${PASSTHRU:-artifacts/bin/passthru}"); O=${BEFORE:+$(realpath "$BEFORE")}; F=$(realpath "$floor")
bash tests/vm/vhost.sh exec "$dir" --timeout 1200 -- bash -c '
set -euo pipefail
runs=$1; B=$2; O=$3; F=$6
if [ -z "$5" ]; then
  # Installed, as the Debian package installs it: run from the virtual host'"'"'s own file system (its page cache), not
  # from the 9p share of the repository, where every exec costs seven requests to QEMU'"'"'s 9p server (~1.6 ms per
  # process, bench/README.md). FROM_SHARE=1 measures the binaries where they lie instead.
  install -m 755 "$B" /usr/local/bin/passthru; B=/usr/local/bin/passthru
  [ -z "$O" ] || { install -m 755 "$O" /usr/local/bin/passthru-before; O=/usr/local/bin/passthru-before; }
  install -m 755 "$F" /usr/local/bin/start-floor; F=/usr/local/bin/start-floor
fi
modprobe vfio-pci; modprobe vfio_iommu_type1
d=0000:00:02.0; s=/sys/bus/pci
builtin_bind() { echo vfio-pci > $s/devices/$d/driver_override; echo $d > $s/drivers/e1000e/unbind; echo $d > $s/drivers_probe; }
builtin_restore() { echo > $s/devices/$d/driver_override; echo $d > $s/drivers/vfio-pci/unbind; echo $d > $s/drivers_probe; }
builtin_cycle() { builtin_bind; builtin_restore; }
# The builtins with a process started before each half, as passthru starts one for bind and one for restore.
exec_floor_cycle() { busybox true; builtin_bind; busybox true; builtin_restore; }
dotnet_floor_cycle() { $F; builtin_bind; $F; builtin_restore; }
seed_cycle() {
  sh -c "modprobe vfio-pci; echo vfio-pci > $s/devices/$d/driver_override; echo $d > $s/drivers/e1000e/unbind; echo $d > $s/drivers_probe"
  sh -c "echo > $s/devices/$d/driver_override; echo $d > $s/drivers/vfio-pci/unbind; echo $d > $s/drivers_probe"
}
passthru_cycle() { $B bind $d > /dev/null && $B restore > /dev/null; }
before_cycle() { [ -z "$O" ] || { $O bind $d > /dev/null && $O restore > /dev/null; }; }
ms() { local a=${1/./} b=${2/./}; echo $(( (10#$b - 10#$a) / 1000 )); }
shell=(); seed=(); ours=(); old=(); execs=(); dotnets=()
cycles=(builtin_cycle seed_cycle passthru_cycle exec_floor_cycle dotnet_floor_cycle); [ -z "$O" ] || cycles+=(before_cycle)
k=${#cycles[@]}
declare -A took
for i in $(seq 0 "$runs"); do
  # Each round starts with the next contender in turn: which one runs right after which moves a cycle by a few ms
  # (bench/README.md), so no contender always follows the same one.
  for j in $(seq 0 $((k - 1))); do
    c=${cycles[$(( (i + j) % k ))]}
    t0=$EPOCHREALTIME; $c; t1=$EPOCHREALTIME; took[$c]=$(ms $t0 $t1)
    test "$(basename "$(readlink $s/devices/$d/driver)")" = e1000e || { echo "bench: the e1000e was not given back" >&2; exit 1; }
  done
  [ "$i" -eq 0 ] && continue   # the warm-up round
  shell+=("${took[builtin_cycle]}"); seed+=("${took[seed_cycle]}"); ours+=("${took[passthru_cycle]}")
  execs+=("${took[exec_floor_cycle]}"); dotnets+=("${took[dotnet_floor_cycle]}")
  [ -z "$O" ] || old+=("${took[before_cycle]}")
done
median() { printf "%s\n" "$@" | sort -n | awk "{a[NR]=\$1} END {print a[int((NR+1)/2)]}"; }
ms=$(median "${shell[@]}"); md=$(median "${seed[@]}"); mp=$(median "${ours[@]}")
r() { awk -v a=$1 -v b=$2 "BEGIN {printf \"%.2f\", a/b}"; }
echo "bind+restore of the e1000e, $runs rounds, medians: seed scripts ${md} ms, builtins in a running shell ${ms} ms, passthru ${mp} ms"
echo "ratio passthru/seed scripts $(r $mp $md)x (target <= 1.2x), passthru/builtins $(r $mp $ms)x (target <= 1.30x)"
me=$(median "${execs[@]}"); mn=$(median "${dotnets[@]}")
echo "the builtins with two process starts: busybox true ${me} ms ($(r $me $ms)x), an empty NativeAOT program built as passthru is ${mn} ms ($(r $mn $ms)x); passthru over the latter: $((mp - mn)) ms a cycle, $(r $((mp - mn)) $ms)x the builtins"
if [ -n "$O" ]; then mo=$(median "${old[@]}"); echo "before ($O): ${mo} ms, $(r $mo $md)x the seed, $(r $mo $ms)x the builtins; passthru/before $(r $mp $mo)x"; fi
# No process substitution: /dev/fd is missing in the chroot the virtual host runs this in.
per=($(for n in "${!ours[@]}"; do echo "${ours[$n]} ${shell[$n]}"; done | awk "{printf \"%.3f\n\", \$1/\$2}"))
echo "passthru/builtins within each round: median $(median "${per[@]}")x, from $(printf "%s\n" "${per[@]}" | sort -n | head -1)x to $(printf "%s\n" "${per[@]}" | sort -n | tail -1)x"
echo "all rounds (ms): seed ${seed[*]} | builtins ${shell[*]} | passthru ${ours[*]} | busybox floor ${execs[*]} | NativeAOT floor ${dotnets[*]}${O:+ | before ${old[*]}}"
echo "passthru ran from: $B${O:+ and $O}; load average (outside, at the start): $4"
' bench "$runs" "$B" "$O" "$(cut -d" " -f1-3 /proc/loadavg)" "${FROM_SHARE:-}" "$F" | tee "$work/bind-cycle.txt"   # the virtual host writes only to its own overlay: keep it here
