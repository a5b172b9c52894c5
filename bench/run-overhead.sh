#!/usr/bin/env bash
# What `passthru run` adds before QEMU: (1) `run --dry-run` from start to the printed command line, and (2) a whole
# run of the probe guest (booted until it powers off through isa-debug-exit) against the same QEMU argv started
# directly, side by side in one run. Target: <= 50 ms added. No devices: binding is measured by bind-cycle.sh.
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
hyperfine -N -w 3 -r 30 --export-json "$work/dry.json" \
  "artifacts/bin/passthru run --dry-run --accel tcg --memory 128 --kernel $probe" > "$work/dry.txt"
# The probe exits QEMU with status 1 (isa-debug-exit): both commands are expected to "fail" that way.
hyperfine -w 2 -r 15 -i --export-json "$work/run.json" \
  "artifacts/bin/passthru run --accel tcg --memory 128 --kernel $probe -- ${exit_dev[*]} > /dev/null 2>&1" \
  "$argv > /dev/null 2>&1" > "$work/run.txt"
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
dry = json.load(open(f"{w}/dry.json"))["results"][0]["median"]
r = json.load(open(f"{w}/run.json"))["results"]
ours, qemu = r[0]["median"], r[1]["median"]
print(f"run --dry-run to the printed argv: {dry*1000:.1f} ms (median)")
print(f"probe guest to power-off: passthru run {ours*1000:.0f} ms, plain qemu {qemu*1000:.0f} ms (medians): "
      f"{(ours-qemu)*1000:+.0f} ms added, ratio {ours/qemu:.2f}x")
PY
