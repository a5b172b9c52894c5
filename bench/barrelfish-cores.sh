#!/usr/bin/env bash
# Boot-to-shell time of the real Barrelfish build (../shared/barrelfish) under plain QEMU TCG for 1, 2 and 4 guest
# cores: `passthru run --menu ... --cpus N --script`, the script waiting for fish's first prompt, then asking fish's
# nproc for the number of cores up (it must be N). Times from the JUnit report: the steps up to the first prompt,
# counted from QEMU's start. ROUNDS (default 2) boots per core count, interleaved. Not a test: nothing is asserted
# but the core count. Usage: bench/barrelfish-cores.sh [ROUNDS] [CORES...]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}; shift || true
cores=("${@:-1}"); [ $# -gt 0 ] || cores=(1 2 4)
[ -x artifacts/bin/passthru ] || bash scripts/publish.sh
menu=$(cd .. && pwd)/shared/barrelfish/build/platforms/x86/menu.lst.x86_64
work=bench/.work/barrelfish-cores; mkdir -p "$work"
results=$work/results.tsv; : > "$results"
for round in $(seq "$rounds"); do
  for n in "${cores[@]}"; do
    script=$work/cores-$n.script
    printf 'timeout 600\nexpect fish v0\\.2\nexpect > \nsend nproc\\r\nexpect (?m)^%x\\r?$\n' "$n" > "$script"
    junit=$work/cores-$n-$round.xml
    if artifacts/bin/passthru run --menu "$menu" --memory 1024 --accel tcg --cpus "$n" --quiet \
         --script "$script" --junit "$junit" --timeout 900 > "$work/cores-$n-$round.log" 2>&1; then
      shell=$(python3 -c 'import sys, xml.etree.ElementTree as E; c=E.parse(sys.argv[1]).getroot().findall("testcase"); print("%.1f" % sum(float(x.get("time")) for x in c[:2]))' "$junit")
      printf '%s\t%s\t%s\n' "$n" "$round" "$shell" | tee -a "$results"
    else
      printf '%s\t%s\tfailed (see %s)\n' "$n" "$round" "$work/cores-$n-$round.log" | tee -a "$results"
    fi
  done
done
echo "cores  boot to shell (s), each round"
for n in "${cores[@]}"; do printf '%-6s %s\n' "$n" "$(awk -v n="$n" '$1==n {printf "%s ", $3}' "$results")"; done
