#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds, and runs every test (captures, parsers, and the
# virtual host with the real kernel). Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/publish.sh
log=$(mktemp)
set +e
dotnet test tests/Passthru.Tests -nologo -v quiet --logger "console;verbosity=normal" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# vstest's closing block: "Total tests: N", "     Passed: N", "     Failed: N" (absent when none failed).
total=$(sed -nE 's/^Total tests: ([0-9]+)/\1/p' "$log" | tail -n 1)
passed=$(sed -nE 's/^ +Passed: ([0-9]+)/\1/p' "$log" | tail -n 1)
failed=$(sed -nE 's/^ +Failed: ([0-9]+)/\1/p' "$log" | tail -n 1)
failed=${failed:-0}
rm -f "$log"
if [ -z "$total" ] || [ -z "$passed" ]; then echo "test: no test summary (the build failed?)"; echo "0 passed, 1 failed"; exit 1; fi
echo "${passed} passed, ${failed} failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
