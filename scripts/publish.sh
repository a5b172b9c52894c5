#!/usr/bin/env bash
# Publishes the NativeAOT binary to artifacts/bin/passthru: one static executable (see src/Passthru/Passthru.csproj).
# The virtual host runs it: it starts in about 40 ms under emulation, where `dotnet passthru.dll` takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
# The noise filter's grep exits 1 when it lets nothing through (a quiet, successful publish): only dotnet's status counts,
# so a failed publish fails here even with an old artifacts/bin/passthru left from an earlier run.
set +e
dotnet publish src/Passthru -c Release -r linux-x64 -o artifacts/bin -v quiet -nologo 2>&1 | grep -Ev '^\s*$|Determining projects|Restored '
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then echo "publish: dotnet publish failed (exit $status)" >&2; exit "$status"; fi
test -x artifacts/bin/passthru || { echo "publish: artifacts/bin/passthru was not produced" >&2; exit 1; }
