#!/usr/bin/env bash
# The virtual host: a q35 machine with an emulated Intel IOMMU running Debian's kernel, whose vfio-pci Passthru drives.
#   vhost.sh start DIR      boot one into DIR (console.log, qemu.pid, share/); returns once it takes commands
#   vhost.sh exec DIR [--timeout S] -- COMMAND...
#                           run COMMAND as root inside it (chrooted into this machine's root, same cwd); prints its
#                           stdout and stderr and exits with its exit code (124 on timeout)
#   vhost.sh stop DIR       halt it; QEMU is killed if it does not stop
# QEMU runs under `timeout` (VHOST_MAX_SECONDS, default 3600) so a forgotten virtual host cannot outlive its tests.
# VHOST_INTREMAP=off starts it with an IOMMU that does not remap interrupts (vfio then needs allow_unsafe_interrupts).
# VHOST_SRIOV=on adds an SR-IOV physical function: an emulated NVMe controller (2 VFs) behind a root port at 00:07.0.
# VHOST_GPU=on adds a GPU stand-in behind a root port at 00:06.0: an emulated VGA with its option ROM as function 0 and
#   an HD-audio controller as function 1 of one multifunction device, one IOMMU group (tests/vm/README.md).
# VHOST_GPU=boot: the same GPU as the boot display of UEFI firmware (OVMF), whose GOP framebuffer efifb keeps inside
#   the VGA's BAR 0, and no host driver for it (as when a user keeps amdgpu/nouveau off a GPU meant for guests).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$here/.cache

usage() { sed -n '2,10p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
verb=$1; dir=$2; shift 2

start() {
  case ${VHOST_INTREMAP:-on} in on|off) ;; *) echo "vhost: VHOST_INTREMAP is on or off, not '$VHOST_INTREMAP'" >&2; exit 2;; esac
  case ${VHOST_SRIOV:-off} in on|off) ;; *) echo "vhost: VHOST_SRIOV is on or off, not '$VHOST_SRIOV'" >&2; exit 2;; esac
  case ${VHOST_GPU:-off} in on|off|boot) ;; *) echo "vhost: VHOST_GPU is on, boot or off, not '$VHOST_GPU'" >&2; exit 2;; esac
  # QEMU 7.2's NVMe can be an SR-IOV PF (it needs a subsystem; max_ioqpairs - sriov_vq_flexible >= 2). On bus 0 it
  # would renumber the IOMMU groups after it (00:1f.x, the bridge), which other tests name: so only when asked.
  local sriov=()
  [ "${VHOST_SRIOV:-off}" = on ] && sriov=(-device pcie-root-port,id=rp9,chassis=9,slot=9,addr=07.0 -device nvme-subsys,id=ss0
    -device nvme,serial=pf0,subsys=ss0,bus=rp9,sriov_max_vfs=2,sriov_vq_flexible=4,sriov_vi_flexible=2,max_ioqpairs=6,msix_qsize=4)
  # A GPU and its HDMI audio, as a real card puts them: functions 0 and 1 of one device behind its own root port, so
  # they share a group. QEMU's VGA (1234:1111) carries SeaBIOS's VGA BIOS as its option ROM; bochs-drm and
  # snd-hda-intel take them in the virtual host, as amdgpu/nouveau and snd-hda-intel would on a desktop.
  local gpu=() firmware=() append="console=ttyS0 intel_iommu=on quiet panic=-1 no_timer_check"
  [ "${VHOST_GPU:-off}" != off ] && gpu=(-device pcie-root-port,id=rp6,chassis=6,slot=6,addr=06.0
    -device VGA,id=gpu0,bus=rp6,addr=00.0,multifunction=on -device intel-hda,id=hda0,bus=rp6,addr=00.1
    -device hda-duplex,bus=hda0.0,audiodev=noaud -audiodev none,id=noaud)
  # UEFI hands the kernel its GOP framebuffer (screen_info), which efifb takes: the `BAR 0: can't reserve` case.
  # passthru.nogpudriver tells init not to load bochs-drm, which would evict efifb as a real GPU driver does.
  if [ "${VHOST_GPU:-off}" = boot ]; then
    [ -r /usr/share/ovmf/OVMF.fd ] || { echo "vhost: /usr/share/ovmf/OVMF.fd is missing (scripts/install-deps.sh installs ovmf)" >&2; exit 1; }
    firmware=(-bios /usr/share/ovmf/OVMF.fd); append+=" passthru.nogpudriver"
  fi
  bash "$here/build.sh" >/dev/null   # idempotent: rebuilds only what changed
  mkdir -p "$dir/share"; dir=$(cd "$dir" && pwd)
  truncate -s 64M "$dir/nvme.img"
  boot 1 || { [ $? -eq 3 ] && boot 2; }
}

# One boot of the virtual host (start's machine, in $dir); returns 0 once it takes commands. A kernel that reports an
# RCU stall while it boots has lost its timer (TCG under load: "timer wakeup didn't happen", CPU 0 idle, no tick,
# seen once in CI, stop 38) and never becomes ready: the first boot returns 3 at once, and start boots once more.
# A first boot that is not ready after 300 s for any other reason returns 3 too (seen once in CI, stop 39: the GPU
# host's QEMU ran, yet its console stayed empty for 300 s, where it boots in 10-60 s), keeping its console and QEMU's
# log as console-first.log and qemu-first.log; a second boot that is not ready after 300 s fails.
boot() {
  local attempt=$1
  rm -rf "$dir/share"/* "$dir/console.log"
  # no_timer_check: on a loaded machine TCG's virtual time can miss the kernel's early check that the timer's interrupt
  # arrives, and with interrupt remapping on that check panics ("timer doesn't work through Interrupt-remapped IO-APIC").
  # Devices: the e1000e alone in its group at 00:02.0, an identical twin e1000e at 00:03.0, an NVMe controller at
  # 00:04.0, and two conventional-PCI e1000 functions behind one PCIe-to-PCI bridge, which share an IOMMU group.
  setsid timeout -k 5 "${VHOST_MAX_SECONDS:-3600}" qemu-system-x86_64 \
    -M q35,kernel-irqchip=split -accel tcg -m 2048 -smp 2 \
    -device "intel-iommu,intremap=${VHOST_INTREMAP:-on}" \
    -kernel "$cache/vmlinuz" -initrd "$cache/initrd.gz" \
    -append "$append" "${firmware[@]}" \
    -display none -monitor none -serial "file:$dir/console.log" -no-reboot -nodefaults \
    -netdev user,id=n0,restrict=on -device e1000e,netdev=n0,addr=02.0 \
    -netdev user,id=n1,restrict=on -device e1000e,netdev=n1,addr=03.0 \
    -drive "file=$dir/nvme.img,if=none,id=nvm,format=raw" -device nvme,drive=nvm,serial=passthru0,addr=04.0 \
    -device pcie-root-port,id=rp1,chassis=1,addr=05.0 -device pcie-pci-bridge,id=pbr,bus=rp1 \
    -netdev user,id=n2,restrict=on -device e1000,netdev=n2,bus=pbr,addr=01.0 \
    -netdev user,id=n3,restrict=on -device e1000,netdev=n3,bus=pbr,addr=02.0 \
    "${sriov[@]}" "${gpu[@]}" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$dir/share,mount_tag=share,security_model=none,multidevs=remap" \
    > "$dir/qemu.log" 2>&1 < /dev/null &
  echo $! > "$dir/qemu.pid"
  local waited=0 began=$SECONDS
  until [ -e "$dir/share/ready" ]; do
    if ! kill -0 "$(cat "$dir/qemu.pid")" 2>/dev/null; then
      echo "vhost: QEMU exited during boot" >&2; tail -n 20 "$dir/qemu.log" "$dir/console.log" >&2; exit 1; fi
    if [ "$attempt" -eq 1 ] && [ $((waited % 10)) -eq 0 ] && grep -q "rcu: INFO: rcu_.* detected stalls" "$dir/console.log" 2>/dev/null; then
      echo "vhost: the kernel stalled while booting (RCU stall, its timer lost: $dir/console-stalled.log); booting once more" >&2
      cp "$dir/console.log" "$dir/console-stalled.log"; stop; return 3; fi
    # UEFI firmware (VHOST_GPU=boot) adds about 20 s under TCG, more on a loaded machine.
    if [ $((SECONDS - began)) -ge 300 ]; then
      if [ "$attempt" -eq 1 ]; then
        echo "vhost: not ready after 300 s ($dir/console-first.log, $dir/qemu-first.log); booting once more" >&2
        cp "$dir/console.log" "$dir/console-first.log"; cp "$dir/qemu.log" "$dir/qemu-first.log"; stop; return 3; fi
      echo "vhost: not ready after 300 s, twice" >&2; tail -n 20 "$dir/console.log" "$dir/qemu.log" >&2; stop; exit 1; fi
    sleep 0.1; waited=$((waited + 1))
  done
}

exec_() {
  local timeout=600
  while [ $# -gt 0 ]; do case $1 in --timeout) timeout=$2; shift 2;; --) shift; break;; *) usage;; esac; done
  [ $# -gt 0 ] || usage
  local id; id=$(date +%s%N)-$$
  # %q quotes for bash: the virtual host runs command files with bash.
  printf '%q ' "$@" > "$dir/share/cmd/$id.tmp"; echo >> "$dir/share/cmd/$id.tmp"
  pwd > "$dir/share/cmd/$id.cwd"
  mv "$dir/share/cmd/$id.tmp" "$dir/share/cmd/$id.sh"
  local waited=0 limit=$((timeout * 10))
  until [ -e "$dir/share/out/$id.rc" ]; do
    if ! kill -0 "$(cat "$dir/qemu.pid")" 2>/dev/null; then echo "vhost: the virtual host is not running" >&2; exit 125; fi
    if [ $waited -ge $limit ]; then echo "vhost: command timed out after ${timeout} s" >&2; exit 124; fi
    sleep 0.1; waited=$((waited + 1))
  done
  cat "$dir/share/out/$id.out"; cat "$dir/share/out/$id.err" >&2
  return "$(cat "$dir/share/out/$id.rc")"
}

stop() {
  [ -f "$dir/qemu.pid" ] || return 0
  local pid; pid=$(cat "$dir/qemu.pid")
  touch "$dir/share/cmd/halt" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  # timeout(1) forwards TERM to QEMU; KILL the whole session if it lingers.
  kill -0 "$pid" 2>/dev/null && { kill -TERM "$pid" 2>/dev/null; sleep 1; pkill -KILL -s "$pid" 2>/dev/null || true; kill -KILL "$pid" 2>/dev/null || true; }
  rm -f "$dir/qemu.pid"
}

case $verb in
  start) start;;
  exec) exec_ "$@";;
  stop) stop;;
  *) usage;;
esac
