#!/usr/bin/env bash
# The soak (#25 item 3): Passthru cycled hundreds of times against the real kernel in the virtual host, with the host
# checked after every phase for what a long run leaks. Not part of CI (it takes most of an hour).
#   bench/soak.sh [BIND [RUN [ATTACH [VFS]]]]      cycle counts; default 200 50 50 20 (SOAK_PHASES="run vfs": only those)
#     bind    bind + restore of the e1000e 0000:00:02.0
#     run     `run` of the probe guest with the e1000e passed through (--expect its PCI scan line)
#     attach  attach + detach of the e1000e into one running Linux guest (tests/vm/linux-guest, guest.watch): the
#             guest's own e1000e driver takes the NIC each time, and lets go of it on detach
#     vfs     `vfs 03:00.0 --count 2 --bind` + restore, in a second virtual host with VHOST_SRIOV=on (attach runs
#             there too, after vfs: the longest phase last)
# After each phase it asserts: every function on the driver it had before the phase; nothing left in the state dir
# (/run/passthru: no journal entry, guest record, name reservation, control socket, temporary file, lock holder, no
# passthru or QEMU process left); allow_unsafe_interrupts and every sriov_numvfs as they were; and in the attach phase
# the guest's long-lived `passthru run` and its QEMU hold as many file descriptors after each detach as before the
# first attach. Each cycle is timed by bash's own clock; the table gives first, median and last, and the medians of
# the first and last quarter (drift: the last quarter's median over 1.25x the first's). Output: bench/.work/soak/.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- inside the virtual host ---------------------------------------------------------------------------------------
if [ "${1:-}" = --inside ]; then
  phase=$2; n=$3; B=$PWD/artifacts/bin/passthru; S=/run/passthru
  PROBE=$PWD/tests/vm/.cache/probe/probe.elf; KERNEL=$PWD/tests/vm/.cache/vmlinuz; INITRD=$PWD/tests/vm/.cache/guest-initrd.gz
  # The guest's console and the progress go to the virtual host's share (visible outside while the phase runs).
  share=/run/vmshare; log=$share/soak-guest.log; progress=$share/soak-progress
  fail() { echo "soak: $phase: $*" >&2; exit 1; }
  drivers() { for f in /sys/bus/pci/devices/*; do echo "${f##*/} $(basename "$(readlink "$f/driver" 2>/dev/null)" 2>/dev/null || true)"; done; }
  knobs() {
    echo "allow_unsafe_interrupts $(cat /sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts 2>/dev/null || echo N)"
    for f in /sys/bus/pci/devices/*/sriov_numvfs; do [ -e "$f" ] && echo "$f $(cat "$f")"; done; true
  }
  drivers > /tmp/soak-drivers.before; knobs > /tmp/soak-knobs.before
  # The host as it was before the phase, and nothing of Passthru's left behind.
  assert_clean() {
    drivers > /tmp/soak-drivers.after; knobs > /tmp/soak-knobs.after
    diff /tmp/soak-drivers.before /tmp/soak-drivers.after >&2 || fail "$1: a function is not on its original driver (< before, > after)"
    diff /tmp/soak-knobs.before /tmp/soak-knobs.after >&2 || fail "$1: allow_unsafe_interrupts or a VF count changed (< before, > after)"
    local r; r=$($B restore --dry-run) || fail "$1: restore --dry-run failed"
    case $r in "nothing to give back"*) ;; *) fail "$1: the journal still holds something: $r";; esac
    [ -z "$(ls -A $S/guests 2>/dev/null)" ] || fail "$1: stale guest records, reservations or sockets: $(ls -A $S/guests)"
    [ -z "$(find $S -name '*.tmp*' 2>/dev/null)" ] || fail "$1: temporary files left: $(find $S -name '*.tmp*')"
    if [ -e $S/lock ]; then
      local ino; ino=$(stat -c %i $S/lock)
      ! grep -Eq "[0-9a-f]+:[0-9a-f]+:$ino " /proc/locks || fail "$1: the lock $S/lock is held: $(grep -E ":$ino " /proc/locks)"
    fi
    ! pgrep -x passthru > /dev/null || fail "$1: a passthru process is left: $(pgrep -ax passthru)"
    ! pgrep -x qemu-system-x86 > /dev/null || fail "$1: a QEMU is left: $(pgrep -ax qemu-system-x86)"
    echo "check $1: drivers, state dir, lock, processes, allow_unsafe_interrupts and VF counts as before" >&2
  }
  e1000e() { test "$(basename "$(readlink /sys/bus/pci/devices/0000:00:02.0/driver)")" = e1000e; }
  ms() { local a=${1/./} b=${2/./}; echo $(( (10#$b - 10#$a) / 1000 )); }
  times=()
  cycle_bind() { $B bind 00:02.0 > /dev/null && $B restore > /dev/null || fail "cycle $1: bind or restore failed"; e1000e || fail "cycle $1: the e1000e was not given back"; }
  # The reference the bind phase is read against: the same sysfs writes from this shell's builtins (bench/bind-cycle.sh's
  # floor), timed in every cycle right after Passthru's. The machine's load moves both; Passthru drifting moves only
  # its own, so the drift of the ratio is Passthru's.
  s=/sys/bus/pci; d=0000:00:02.0
  reference_bind() {
    echo vfio-pci > $s/devices/$d/driver_override; echo $d > $s/drivers/e1000e/unbind; echo $d > $s/drivers_probe
    echo > $s/devices/$d/driver_override; echo $d > $s/drivers/vfio-pci/unbind; echo $d > $s/drivers_probe
    e1000e || fail "the reference cycle did not give the e1000e back"
  }
  refs=()
  cycle_run() {
    $B run --kernel "$PROBE" --memory 64 --device 0000:00:02.0 --expect 'pci 01:00.0 8086:10d3' --timeout 120 > /tmp/soak-run.out 2>&1 \
      || { cat /tmp/soak-run.out >&2; fail "cycle $1: run failed"; }
    grep -qF '[passthru] gave 0000:00:02.0 back to e1000e' /tmp/soak-run.out || { cat /tmp/soak-run.out >&2; fail "cycle $1: run did not say it gave the e1000e back"; }
    e1000e || fail "cycle $1: the e1000e was not given back"
  }
  cycle_vfs() {
    $B vfs 03:00.0 --count 2 --bind > /dev/null && $B restore > /dev/null || fail "cycle $1: vfs or restore failed"
    test "$(cat /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs)" = 0 || fail "cycle $1: the VFs were not removed"
  }
  # attach: one Linux guest for the whole phase; its run and its QEMU are the long-lived processes.
  seen() { tr -d '\r' 2>/dev/null < $log | grep -cF -- "$1" || true; }
  wait_seen() { # LINE COUNT SECONDS (by the clock: under load each poll takes longer than its sleep)
    local until=$(( SECONDS + $3 ))
    while [ $SECONDS -lt $until ]; do [ "$(seen "$1")" -ge "$2" ] && return 0; kill -0 "$runpid" 2>/dev/null || break; sleep 0.2; done
    tr -d '\r' < $log | tail -n 20 >&2; cat $share/soak-guest.out >&2; fail "the guest did not print '$1' ($2 times) within $3 s"
  }
  fds() { ls /proc/$runpid/fd | wc -l; ls /proc/$qemupid/fd | wc -l; }
  if [ "$phase" = attach ]; then
    rm -f $log $share/soak-guest.out
    $B run --kernel "$KERNEL" --initrd "$INITRD" --append 'console=ttyS0 quiet guest.watch' --memory 256 --name soak \
      --serial-log $log --quiet > $share/soak-guest.out 2>&1 &
    runpid=$!
    wait_seen 'guest: watching PCI' 1 1200   # a nested Linux boot: minutes under emulation
    qemupid=$($B guests --json | sed -n 's/.*"qemu_pid": \([0-9]*\).*/\1/p' | head -n 1)
    [ -n "$qemupid" ] || fail "no QEMU pid for guest 'soak'"
    fd0=$(echo $(fds))
    echo "fds before the first attach (run, QEMU): $fd0" >&2
  fi
  cycle_attach() {
    $B attach soak 00:02.0 > /dev/null || fail "cycle $1: attach failed"
    # What HotplugLinuxGuestTests waits for, in its order: the guest's kernel finds the function and its e1000e driver
    # takes it, the interface it made, then a DHCP lease over it (DMA and interrupts at work); once per attach. Minutes:
    # a nested guest under emulation. The guest samples its PCI functions once a round, and a round with a DHCP in it is
    # long: a function detached before the guest had seen it with its driver would come and go unseen.
    wait_seen 'guest: pci now 0000:01:00.0 8086:10d3 class 0200 driver=e1000e' "$1" 300
    wait_seen 'driver=e1000e pci=0000:01:00.0 ' "$1" 300
    wait_seen ' has 10.0.2.15/24' "$1" 300
    $B detach soak 00:02.0 --timeout 120 > /dev/null || fail "cycle $1: detach failed"
    e1000e || fail "cycle $1: the e1000e was not given back"
    # The guest must see it gone before the next attach: it samples its PCI functions once a round, and a function
    # detached and attached again between two rounds would look unchanged to it.
    wait_seen 'guest: pci gone 0000:01:00.0' "$1" 300
    local now; now=$(echo $(fds)); [ "$now" = "$fd0" ] || fail "cycle $1: file descriptors (run, QEMU) $fd0 before, $now now"
  }
  for i in $(seq 1 "$n"); do
    t0=$EPOCHREALTIME; cycle_$phase "$i"; t1=$EPOCHREALTIME
    times+=("$(ms "$t0" "$t1")"); echo "$phase $i ${times[-1]} ms" >> $progress
    if [ "$phase" = bind ]; then t0=$EPOCHREALTIME; reference_bind; t1=$EPOCHREALTIME; refs+=("$(ms "$t0" "$t1")"); fi
  done
  if [ "$phase" = attach ]; then
    echo "fds after $n cycles (run, QEMU): $(echo $(fds))" >&2
    kill "$qemupid"; wait "$runpid" || true
    grep -q 'passthru' $share/soak-guest.out && tail -n 3 $share/soak-guest.out >&2
  fi
  assert_clean "$phase"
  echo "times $phase ${times[*]}"
  [ ${#refs[@]} -eq 0 ] || echo "reference $phase ${refs[*]}"
  exit 0
fi

# ---- outside -------------------------------------------------------------------------------------------------------
counts=("${1:-200}" "${2:-50}" "${3:-50}" "${4:-20}")
for c in "${counts[@]}"; do [[ $c =~ ^[1-9][0-9]*$ ]] || { echo "soak: cycle counts are positive integers, not '$c'" >&2; exit 2; }; done
[ -x artifacts/bin/passthru ] || bash scripts/publish.sh
bash tests/vm/build.sh > /dev/null
work=bench/.work/soak; mkdir -p "$work"; rm -f "$work"/*.txt
dir=tests/vm/.cache/hosts/soak-$$
export VHOST_MAX_SECONDS=${VHOST_MAX_SECONDS:-14400}   # the first virtual host runs three phases: over vhost.sh's default hour
trap 'bash tests/vm/vhost.sh stop "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
header() { printf '%-8s %6s %8s %8s %8s %10s %10s  %s\n' phase cycles first median last "q1 median" "q4 median" drift; }
drift() { awk -v a="$1" -v b="$2" 'BEGIN {printf (b > 1.25 * a ? "drifts (%.2fx)" : "none (%.2fx)"), b / a}'; } # FIRST LAST: the quarters' medians
row() { # PHASE: its line of the table, from its cycle times
  local t n q all q1 q4 drift
  read -r -a t <<< "$(sed -n "s/^times $1 //p" "$work/$1.txt")"
  n=${#t[@]}; q=$(( n / 4 > 0 ? n / 4 : 1 ))
  all=$(printf '%s\n' "${t[@]}" | median)
  q1=$(printf '%s\n' "${t[@]:0:q}" | median); q4=$(printf '%s\n' "${t[@]:n-q}" | median)
  drift=$(drift "$q1" "$q4")
  printf '%-8s %6d %8d %8d %8d %10d %10d  %s\n' "$1" "$n" "${t[0]}" "$all" "${t[n-1]}" "$q1" "$q4" "$drift"
  # Where the phase timed a reference in every cycle: the drift of Passthru's time over the reference's, cycle by
  # cycle, which load does not move (first and last quarter's median ratio).
  local r; read -r -a r <<< "$(sed -n "s/^reference $1 //p" "$work/$1.txt")"
  if [ ${#r[@]} -eq "$n" ]; then
    local ratios=() i
    for i in "${!t[@]}"; do ratios+=("$(awk -v a="${t[i]}" -v b="${r[i]}" 'BEGIN {printf "%.3f", a / (b > 0 ? b : 1)}')"); done
    local rq1 rq4 rall
    rall=$(printf '%s\n' "${ratios[@]}" | median); rq1=$(printf '%s\n' "${ratios[@]:0:q}" | median); rq4=$(printf '%s\n' "${ratios[@]:n-q}" | median)
    printf '%-8s %6s %8s %8s %8s %10s %10s  %s\n' "  /ref" "" "" "$rall" "" "$rq1" "$rq4" \
      "$(drift "$rq1" "$rq4") (reference: the same writes from shell builtins, median $(printf '%s\n' "${r[@]}" | median) ms)"
  fi
}
phase() { # NAME COUNT
  local limit=$(( 600 + $2 * 180 ))
  echo "== $1: $2 cycles ($(date -u +%H:%M:%S))"
  bash tests/vm/vhost.sh exec "$dir" --timeout "$limit" -- bash bench/soak.sh --inside "$1" "$2" > "$work/$1.txt" 2> "$work/$1.err" \
    || { cat "$work/$1.err" >&2; echo "soak: phase $1 failed (bench/.work/soak/$1.err)" >&2; exit 1; }
  cat "$work/$1.err"
  header; row "$1"
}
phases=" ${SOAK_PHASES:-bind run vfs attach} "   # SOAK_PHASES="vfs attach": only those (the others' counts are ignored)
on() { [[ $phases == *" $1 "* ]]; }
started=$(date +%s)
if on bind || on run; then
  bash tests/vm/vhost.sh start "$dir"
  on bind && phase bind "${counts[0]}"
  on run && phase run "${counts[1]}"
  bash tests/vm/vhost.sh stop "$dir"; rm -rf "$dir"
fi
# The SR-IOV virtual host has the same e1000e at 00:02.0: the attach phase (the longest) runs there last.
if on vfs || on attach; then
  VHOST_SRIOV=on bash tests/vm/vhost.sh start "$dir"
  on vfs && phase vfs "${counts[3]}"
  on attach && phase attach "${counts[2]}"
  bash tests/vm/vhost.sh stop "$dir"
fi

echo
echo "soak: all phases passed in $(( ($(date +%s) - started) / 60 )) min; time per cycle (ms):"
{ header; for p in bind run vfs attach; do on $p && row $p; done; } | tee "$work/table.txt"
