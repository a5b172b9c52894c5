#!/usr/bin/env bash
# Publishes the NativeAOT binary to artifacts/bin/passthru: one static executable (see src/Passthru/Passthru.csproj).
# The virtual host runs it: it starts in about 40 ms under emulation, where `dotnet passthru.dll` takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet publish src/Passthru -c Release -r linux-x64 -o artifacts/bin -v quiet -nologo 2>&1 | grep -Ev '^\s*$|Determining projects|Restored ' || true
test -x artifacts/bin/passthru || { echo "publish: artifacts/bin/passthru was not produced" >&2; exit 1; }
