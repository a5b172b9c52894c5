#!/usr/bin/env bash
# Downloads the Debian packages the tests read stock files from, at the versions pinned in tests/debian-packages,
# into $TMPDIR/passthru-test-packages/PACKAGE/VERSION (what tests/Passthru.Tests/Setup/DebianPackage.cs reads).
# With package names, only those. Idempotent: a package already in the cache is not fetched again.
# Fails naming the pin when apt cannot get that version (Debian's archive drops superseded versions).
set -euo pipefail
cd "$(dirname "$0")/.."
pins=tests/debian-packages
cache=${TMPDIR:-/tmp}/passthru-test-packages
mkdir -p "$cache"
exec 9> "$cache/.lock"
flock 9
wanted=" $* "
updated=no
while IFS= read -r line; do
  line=${line%%#*}; line=${line//[[:space:]]/}
  [ -n "$line" ] || continue
  pkg=${line%%=*}; ver=${line#*=}
  [ $# -eq 0 ] || [[ $wanted == *" $pkg "* ]] || continue
  dir=$cache/$pkg/$ver
  compgen -G "$dir/*.deb" >/dev/null && continue
  tmp=$cache/download-$$
  rm -rf "$tmp"; mkdir -p "$tmp"
  if ! (cd "$tmp" && apt-get download -qq "$pkg=$ver" 2>&1 | grep -v "unsandboxed as root" >&2; compgen -G "$tmp/*.deb" >/dev/null); then
    if [ $updated = no ] && [ "$(id -u)" -eq 0 ]; then
      updated=yes; apt-get update -qq   # apt's lists may predate the pin
      (cd "$tmp" && apt-get download -qq "$pkg=$ver" 2>&1 | grep -v "unsandboxed as root" >&2) || true
    fi
    if ! compgen -G "$tmp/*.deb" >/dev/null; then
      rm -rf "$tmp"
      echo "fetch-test-packages: apt-get download $pkg=$ver failed: the version pinned in $pins is not in apt's archive (any more?); apt-cache policy $pkg lists what is, and tests/README.md says how to raise a pin" >&2
      exit 1
    fi
  fi
  mkdir -p "$dir"
  mv "$tmp"/*.deb "$dir/"
  rm -rf "$tmp"
  echo "fetch-test-packages: $pkg=$ver"
done < "$pins"
if [ $# -gt 0 ]; then
  for pkg in "$@"; do grep -q "^$pkg=" "$pins" || { echo "fetch-test-packages: $pkg is not pinned in $pins" >&2; exit 1; }; done
fi
