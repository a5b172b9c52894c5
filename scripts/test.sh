#!/usr/bin/env bash
# The README's test command: installs what the tests need, builds, and runs every test (captures, parsers, and the
# virtual host with the real kernel). With --fast, only the fast tier: the tests without the trait Tier=Slow (no QEMU,
# virtual host, packaging tools, libvirt, python validators, Debian packages or published binary; see
# tests/Passthru.Tests/Support/Tier.cs). Ends with "N passed, N failed, N skipped", after a line saying how many
# tests were not run. Without a filter, fewer tests than tests/expected-count fails the run (tests/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
filter=
case "${1:-}" in
  "") ;;
  --fast) filter="Tier!=Slow" ;;
  *) echo "usage: bash scripts/test.sh [--fast]" >&2; exit 2 ;;
esac
bash scripts/install-deps.sh
if [ -z "$filter" ]; then
  bash scripts/fetch-test-packages.sh >/dev/null   # the Debian packages pinned in tests/debian-packages
  bash scripts/publish.sh                          # the slow tier runs the published binary
fi
dotnet build tests/Passthru.Tests -nologo -v quiet
# Every test the assembly has, to count the ones the filter (or an aborted run) left out.
all=$(dotnet test tests/Passthru.Tests --no-build -nologo --list-tests 2>/dev/null | grep -c '^    ' || true)
log=$(mktemp)
set +e
dotnet test tests/Passthru.Tests --no-build -nologo -v quiet ${filter:+--filter "$filter"} --logger "console;verbosity=normal" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# vstest's closing block: "Total tests: N", "     Passed: N", "     Failed: N", "    Skipped: N" (absent when 0).
total=$(sed -nE 's/^Total tests: ([0-9]+)/\1/p' "$log" | tail -n 1)
passed=$(sed -nE 's/^ +Passed: ([0-9]+)/\1/p' "$log" | tail -n 1)
failed=$(sed -nE 's/^ +Failed: ([0-9]+)/\1/p' "$log" | tail -n 1)
skipped=$(sed -nE 's/^ +Skipped: ([0-9]+)/\1/p' "$log" | tail -n 1)
failed=${failed:-0}; skipped=${skipped:-0}
# CI keeps only the output's tail: name each failure there again, with the start of its message (its stack trace and
# output are above, in the run's order).
if [ "$failed" -gt 0 ] || [ "$status" -ne 0 ]; then
  echo "The failed tests, again (whole messages above):"
  awk '/^  Failed / { on = 1; n = 0 }
       /^  (Passed|Skipped) |^  Stack Trace:|^  Standard Output Messages:/ { on = 0 }
       on && n++ < 16 { print "  " $0 }' "$log"
fi
rm -f "$log"
if [ -z "$total" ] || [ -z "$passed" ]; then echo "test: no test summary (the build failed?)"; echo "0 passed, 1 failed, 0 skipped"; exit 1; fi
ok=yes
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ] || ok=no
notrun=$(( all > total ? all - total : 0 ))
if [ -n "$filter" ]; then
  echo "${notrun} not run (filter ${filter}: bash scripts/test.sh runs them too)"
else
  echo "${notrun} not run"
  expected=$(tr -dc '0-9' < tests/expected-count)
  if [ "$total" -lt "${expected:-0}" ]; then
    echo "test: ${total} tests ran, fewer than the ${expected} of tests/expected-count: tests were lost (tests/README.md)"
    ok=no
  elif [ "$total" -gt "${expected:-0}" ]; then
    echo "test: ${total} tests ran, more than the ${expected} of tests/expected-count: raise it to ${total} (tests/README.md)"
  fi
fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$ok" = yes ]
