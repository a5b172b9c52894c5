#!/usr/bin/env bash
# What `passthru run` adds before QEMU: (1) `run --dry-run` from start to the printed command line, and (2) a whole
# run of the probe guest (booted until it powers off through isa-debug-exit) against the same QEMU argv started
# directly, side by side in one run (alternating rounds). Target: <= 10 ms added (#26): the paired median of
# "passthru run - plain qemu" that alternate.py prints. No devices: binding is measured by bind-cycle.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || bash scripts/install-deps.sh
[ -x artifacts/bin/passthru ] || bash scripts/publish.sh
bash tests/vm/build.sh > /dev/null
work=bench/.work; mkdir -p "$work"
probe=tests/vm/.cache/probe/probe.elf
exit_dev=(-device isa-debug-exit,iobase=0xf4,iosize=0x04)
argv=$(artifacts/bin/passthru run --dry-run --accel tcg --memory 128 --kernel "$probe" -- "${exit_dev[@]}" | tail -n 1)
# As root, QEMU runs unprivileged and inherits the QMP socket passthru listens on (fd=@qmp-fd@ in the printed
# argv): the plain command gets the same control socket the usual way, QEMU making it itself.
argv=${argv//"-chardev socket,id=qmp,fd=@qmp-fd@,server=on,wait=off -mon chardev=qmp,mode=control"/"-qmp unix:$work/plain.qmp,server=on,wait=off"}
# As root, run starts QEMU through setpriv as passthru-qemu (least privilege); a user's plain command is QEMU itself,
# as root (passthru-qemu could not make the socket in bench/.work either). The drop is part of what run adds.
argv=${argv#/usr/bin/setpriv * --no-new-privs -- }
# Both are expected to exit 1 (the probe's isa-debug-exit), which is also QEMU's status for a bad command line: make
# sure the plain command boots the probe before timing it, or the comparison is against a QEMU that refused to start.
grep -q '^probe: done' <<< "$(eval "$argv" 2>&1)" || { echo "run-overhead: the plain command did not boot the probe: $argv" >&2; exit 1; }
hyperfine -N -w 3 -r 30 --export-json "$work/dry.json" \
  "artifacts/bin/passthru run --dry-run --accel tcg --memory 128 --kernel $probe" > "$work/dry.txt"
dry=$(python3 -c 'import json, sys; print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' "$work/dry.json")
echo "run --dry-run to the printed argv: $dry ms (median of 30)" | tee "$work/run.txt"
# Whole runs in alternating rounds (bench/alternate.py), so load hits both alike. The probe powers off through
# isa-debug-exit, which makes QEMU (and run, which passes QEMU's status on) exit 1.
echo "probe guest to power-off, passthru run against the same QEMU argv started directly:" | tee -a "$work/run.txt"
# A third command keeps run's state (the guest's record, its socket, the lock) on a tmpfs, as /run is on a systemd
# host: where /run is on a disk, as on the project's VMs, each fsync of the record's writes costs real time there.
shm=$(mktemp -d /dev/shm/passthru-bench.XXXXXX); trap 'rm -rf "$shm"' EXIT
python3 bench/alternate.py "${ROUNDS:-30}" --status 1 \
  "passthru run=artifacts/bin/passthru run --accel tcg --memory 128 --kernel $probe -- ${exit_dev[*]}" \
  "plain qemu=$argv" \
  "passthru run, state on tmpfs=artifacts/bin/passthru run --state-dir $shm --accel tcg --memory 128 --kernel $probe -- ${exit_dev[*]}" \
  | tee -a "$work/run.txt"
