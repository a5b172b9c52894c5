#!/usr/bin/env bash
# Builds artifacts/passthru_VERSION_amd64.deb: the static binary (scripts/publish.sh), the man page and shell
# completions the binary generates from its own command definitions, and Debian's copyright and changelog.
# Needs dpkg-deb and gzip (scripts/install-deps.sh); run as any user: --root-owner-group makes the files root's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/publish.sh
bin=artifacts/bin/passthru

# The binary's own version (the SDK appends the source revision after '+'), with Debian revision 1: the packaging
# is not upstream's, so the package is not "native" and its changelog is changelog.Debian.gz.
upstream=$("$bin" --version)
upstream=${upstream%%+*}
version="$upstream-1"
maintainer="The Passthru developers <passthru@example.org>"
# Every date in the package is the last commit's, so the same commit builds the same .deb (dpkg-deb clamps file
# times to SOURCE_DATE_EPOCH too).
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
umask 022
chmod 755 "$root"
doc=$root/usr/share/doc/passthru
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/man/man1" "$doc" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
  "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/lintian/overrides"

install -m 755 "$bin" "$root/usr/bin/passthru"
"$bin" man | gzip -9n > "$root/usr/share/man/man1/passthru.1.gz"
"$bin" completion bash > "$root/usr/share/bash-completion/completions/passthru"
"$bin" completion zsh > "$root/usr/share/zsh/vendor-completions/_passthru"
"$bin" completion fish > "$root/usr/share/fish/vendor_completions.d/passthru.fish"

cat > "$doc/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: passthru
Comment: /usr/bin/passthru is one statically linked NativeAOT executable. Besides Passthru's own code it
 contains the .NET runtime and libraries (MIT, the .NET Foundation and contributors, with the third-party
 code its THIRD-PARTY-NOTICES lists), System.CommandLine (MIT, the .NET Foundation), Tomlyn (BSD-2-Clause,
 Alexandre Mutel), BouncyCastle.Cryptography (MIT, the Legion of the Bouncy Castle Inc.), and parts of the
 GNU C library (LGPL-2.1+, the Free Software Foundation), linked from Debian's libc6-dev.

Files: *
Copyright: 2026 The Passthru developers
License: MIT

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all
 copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
EOF

gzip -9n > "$doc/changelog.Debian.gz" <<EOF
passthru ($version) unstable; urgency=medium

  * Packaged: /usr/bin/passthru, the man page passthru(1), and completions
    for bash, zsh and fish, all generated from the command definitions.

 -- $maintainer  $date
EOF

# Static by design (see src/Passthru/Passthru.csproj): lintian's tags for static and non-PIE binaries say so.
cat > "$root/usr/share/lintian/overrides/passthru" <<'EOF'
# One static, position-dependent NativeAOT executable on purpose: it starts in tens of milliseconds under
# emulation and does not depend on the host's glibc (src/Passthru/Passthru.csproj says why).
passthru: statically-linked-binary [usr/bin/passthru]
# The same static image carries .NET's own zlib (System.IO.Compression's native part), which reads Barrelfish's gzip
# RAM disks (the SKB's device database): there is no shared library to use instead.
passthru: embedded-library zlib [usr/bin/passthru]
# Built from the project's own tree, not uploaded to Debian: there is no ITP bug to close.
passthru: initial-upload-closes-no-bugs [usr/share/doc/passthru/changelog.Debian.gz:1]
EOF

cat > "$root/DEBIAN/control" <<EOF
Package: passthru
Version: $version
Architecture: amd64
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: adduser
Recommends: qemu-system-x86, pciutils
Section: admin
Priority: optional
Description: pass PCIe devices through to QEMU guests with vfio-pci
 Passthru hands a real PCIe device (a NIC, a GPU, an NVMe drive) to a QEMU
 guest on a Linux/KVM host, and gives it back afterwards. It checks that the
 host is ready (IOMMU, kernel parameters, interrupt remapping, vfio modules),
 lists devices with their IOMMU groups, binds them to vfio-pci and back with a
 journal that restore reads even after a crash, configures the boot loader,
 and boots guests in QEMU with the devices passed through.
EOF

# The account `passthru run` starts QEMU as (it never runs as root): a system user, as libvirt's libvirt-qemu is.
# run creates it on first use where the package was not installed; purge leaves it, as Debian's policy asks.
cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    adduser --system --group --quiet --no-create-home --home /nonexistent --gecos "Passthru QEMU guests" passthru-qemu
fi
EOF

(cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
find "$root" -type d -exec chmod 755 {} +
find "$root" -type f -exec chmod 644 {} +
chmod 755 "$root/usr/bin/passthru" "$root/DEBIAN/postinst"

deb="artifacts/passthru_${version}_amd64.deb"
rm -f artifacts/passthru_*_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
