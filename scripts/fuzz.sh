#!/usr/bin/env bash
# Fuzzes one of Passthru's parsers with AFL++ through SharpFuzz (issue #25).
#   scripts/fuzz.sh list              the targets (one harness each, fuzz/Passthru.Fuzz/Targets.cs)
#   scripts/fuzz.sh TARGET SECONDS    runs afl-fuzz on TARGET for SECONDS, then prints executions, paths and crashes
#   scripts/fuzz.sh replay TARGET FILE...   runs inputs through a harness once and prints what each does
# Seeds: fuzz/corpus/TARGET and fuzz/regressions/TARGET (and, for menu, the Barrelfish menus in ../shared/fixtures,
# read where they are). Findings go to fuzz/findings/TARGET-TIME (not committed); a crash or hang found becomes
# fuzz/regressions/TARGET/NAME with a fix, and FuzzCorpusTests replays it in the ordinary test run.
# CI does not run this: it replays the corpora and regressions as tests. One afl-fuzz at a time on a shared machine.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
fuzz=$repo/fuzz
targets() { sed -n 's/^ *\["\([a-z-]*\)"\] = .*/\1/p' "$fuzz/Passthru.Fuzz/Targets.cs"; }

usage() { echo "usage: scripts/fuzz.sh list | TARGET SECONDS | replay TARGET FILE..." >&2; exit 2; }
[ $# -ge 1 ] || usage
if [ "$1" = list ]; then targets; exit 0; fi
if [ "$1" != replay ]; then
  [ $# -eq 2 ] || usage
  targets | grep -qx -- "$1" || { echo "unknown target '$1' (scripts/fuzz.sh list)" >&2; exit 2; }
fi

# The tools: afl-fuzz from Debian's afl++ (only here: CI never runs it), SharpFuzz's instrumenter as a local dotnet tool.
if ! command -v afl-fuzz >/dev/null; then
  echo "installing afl++ (apt-get)" >&2
  ${SUDO:-$( [ "$(id -u)" = 0 ] || echo sudo )} apt-get install -y -q afl++ >/dev/null
fi
tools=$fuzz/.tools
[ -x "$tools/sharpfuzz" ] || dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools" >/dev/null

# Build, then instrument fresh copies of the assemblies whose branches AFL++ should see (ours and the TOML parser).
out=$fuzz/.out
dotnet build "$fuzz/Passthru.Fuzz" -c Release -nologo -v quiet >/dev/null
rm -rf "$out"; cp -r "$fuzz/Passthru.Fuzz/bin/Release/net10.0" "$out"
for dll in Passthru.Core.dll Tomlyn.dll; do "$tools/sharpfuzz" "$out/$dll" >/dev/null; done
harness=(dotnet "$out/Passthru.Fuzz.dll")

# Replay runs the uninstrumented build: instrumented code writes to AFL's shared map, which exists only under afl-fuzz.
if [ "$1" = replay ]; then shift; exec dotnet "$fuzz/Passthru.Fuzz/bin/Release/net10.0/Passthru.Fuzz.dll" replay "$@"; fi
target=$1 seconds=$2

seeds=$(mktemp -d); trap 'rm -rf "$seeds"' EXIT
for dir in "$fuzz/corpus/$target" "$fuzz/regressions/$target"; do [ -d "$dir" ] && cp "$dir"/* "$seeds"/ 2>/dev/null || true; done
# The shared Barrelfish build's SKB RAM disk: gunzipped for cpio, its device_db.pl for devicedb (copied to the temporary seeds only).
ramfs=$repo/../shared/barrelfish/build/skb_ramfs.cpio.gz
if [ "$target" = cpio ] && [ -f "$ramfs" ]; then gzip -dc "$ramfs" > "$seeds/shared-skb_ramfs.cpio"; fi
if [ "$target" = devicedb ] && [ -f "$ramfs" ]; then gzip -dc "$ramfs" | (cd "$seeds" && cpio -i --quiet --to-stdout skb/device_db.pl > shared-device_db.pl); fi
if [ "$target" = menu ]; then for f in "$repo"/../shared/fixtures/barrelfish/menu.lst*; do [ -f "$f" ] && cp "$f" "$seeds/shared-$(basename "$f")"; done; fi
[ -n "$(ls -A "$seeds")" ] || { echo "no seeds for $target" >&2; exit 1; }

# The harness writes its inputs under /dev/shm/passthru-fuzz-PID-*; afl-fuzz kills it, so this run's are removed here.
before=$(ls -d /dev/shm/passthru-fuzz-* 2>/dev/null || true)
trap 'rm -rf "$seeds"; for d in /dev/shm/passthru-fuzz-*; do [ -e "$d" ] && ! grep -qxF "$d" <<<"$before" && rm -rf "$d"; done; true' EXIT
findings=$fuzz/findings/$target-$(date +%Y%m%d-%H%M%S)
mkdir -p "$findings"
# A hang is an input that runs over 5 s (-t); unbounded memory dies at the GC's 512 MiB heap limit (a crash).
AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  DOTNET_GCHeapHardLimit=0x20000000 DOTNET_TieredCompilation=0 \
  nice afl-fuzz -V "$seconds" -t 5000 -m none -i "$seeds" -o "$findings" -- "${harness[@]}" "$target" > "$findings/afl.log" 2>&1 || {
    echo "afl-fuzz failed; its log:" >&2; tail -30 "$findings/afl.log" >&2; exit 1; }

stats=$findings/default/fuzzer_stats
get() { sed -n "s/^$1 *: *//p" "$stats"; }
echo "target:     $target"
echo "seconds:    $(( $(get last_update) - $(get start_time) ))"
echo "executions: $(get execs_done)"
echo "execs/s:    $(get execs_per_sec)"
echo "paths:      $(get corpus_count)"
echo "crashes:    $(get saved_crashes)"
echo "hangs:      $(get saved_hangs)"
echo "findings:   $findings"
for f in "$findings"/default/crashes/id:* "$findings"/default/hangs/id:*; do [ -e "$f" ] && echo "  $f"; done
exit 0
