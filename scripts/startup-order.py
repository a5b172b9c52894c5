#!/usr/bin/env python3
"""The managed methods a run of the NativeAOT binary enters, in the order it first enters them (src/Passthru/startup.order).

  startup-order.py prepare BINARY DEBUG-SYMBOLS WORKDIR
      writes WORKDIR/patched, a copy of BINARY with an int3 on the first byte of every managed method, and
      WORKDIR/methods.tsv (each method's address, its first byte, its symbol names)
  startup-order.py trace WORKDIR OUT -- ARGS...
      runs WORKDIR/patched with ARGS under ptrace; each method's first trap appends its names to OUT, puts its byte
      back and lets the thread go on. A method traps once, so the run takes about as long as a plain one (a debugger
      with a breakpoint on each of the ~20,000 methods took two minutes for `--version`).

Preparing is the slow part (nm over the debug symbols); do it outside the virtual host and trace inside it.
Run with Debian's /usr/bin/python3 (the standard library only: ctypes).
"""
import ctypes
import os
import signal
import subprocess
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_TRACEME, PTRACE_PEEKTEXT, PTRACE_POKETEXT, PTRACE_CONT = 0, 1, 4, 7
PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_SETOPTIONS = 12, 13, 0x4200
PTRACE_O_TRACECLONE, PTRACE_O_EXITKILL = 0x8, 0x100000
WALL = 0x40000000


class Registers(ctypes.Structure):  # struct user_regs_struct, x86-64
    _fields_ = [(name, ctypes.c_ulonglong) for name in (
        "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base "
        "ds es fs gs").split()]


def managed_code(binary):
    """The __managedcode section's address range and its offset in the file."""
    out = subprocess.run(["readelf", "-S", "-W", binary], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("[") and "]" in line:
            fields = line[line.index("]") + 1:].split()
            if len(fields) > 4 and fields[0] == "__managedcode":
                start = int(fields[2], 16)
                return start, start + int(fields[4], 16), int(fields[3], 16)
    sys.exit(f"startup-order: {binary} has no __managedcode section (not a NativeAOT binary?)")


def prepare(binary, symbols, work):
    start, end, offset = managed_code(binary)
    methods = {}
    nm = subprocess.run(["nm", "--defined-only", symbols], capture_output=True, text=True, check=True).stdout
    for line in nm.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in "tT":
            address = int(fields[0], 16)
            if start <= address < end:
                methods.setdefault(address, []).append(fields[2])   # aliases share an address: ILC knows one of them
    image = bytearray(open(binary, "rb").read())
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "methods.tsv"), "w") as table:
        for address, names in sorted(methods.items()):
            at = address - start + offset
            table.write("%x\t%d\t%s\n" % (address, image[at], " ".join(names)))
            image[at] = 0xCC
    patched = os.path.join(work, "patched")
    with open(patched, "wb") as f:
        f.write(image)
    os.chmod(patched, 0o755)
    print(f"startup-order: {len(methods)} methods marked in {patched}", file=sys.stderr)


def trace(work, out, args):
    names, first_byte = {}, {}
    for line in open(os.path.join(work, "methods.tsv")):
        address, byte, aliases = line.rstrip("\n").split("\t")
        names[int(address, 16)] = aliases.split(" ")
        first_byte[int(address, 16)] = int(byte)
    pid = os.fork()
    if pid == 0:
        libc.ptrace(PTRACE_TRACEME, 0, None, None)
        os.execv(os.path.join(work, "patched"), ["passthru"] + args)
    os.waitpid(pid, WALL)                                        # stopped at its exec
    libc.ptrace(PTRACE_SETOPTIONS, pid, None, ctypes.c_void_p(PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL))
    libc.ptrace(PTRACE_CONT, pid, None, None)
    entered, order, exit_code = set(), [], None
    registers = Registers()
    while True:
        try:
            tid, status = os.waitpid(-1, WALL)
        except ChildProcessError:
            break
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            if tid == pid:
                exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
            continue
        if not os.WIFSTOPPED(status):
            continue
        sig, deliver = os.WSTOPSIG(status), 0
        if sig == signal.SIGTRAP and status >> 16 == 0:
            libc.ptrace(PTRACE_GETREGS, tid, None, ctypes.byref(registers))
            address = registers.rip - 1
            if address in names:
                if address not in entered:                      # another thread may have trapped here first
                    entered.add(address)
                    order.append(address)
                    word = libc.ptrace(PTRACE_PEEKTEXT, tid, ctypes.c_void_p(address), None) & 0xFFFFFFFFFFFFFFFF
                    word = (word & ~0xFF) | first_byte[address]
                    libc.ptrace(PTRACE_POKETEXT, tid, ctypes.c_void_p(address), ctypes.c_void_p(word))
                registers.rip = address
                libc.ptrace(PTRACE_SETREGS, tid, None, ctypes.byref(registers))
            else:
                deliver = sig
        elif sig not in (signal.SIGTRAP, signal.SIGSTOP):           # a clone event, a new thread's first stop
            deliver = sig
        libc.ptrace(PTRACE_CONT, tid, None, ctypes.c_void_p(deliver))
    with open(out, "a") as f:
        for address in order:
            for name in names[address]:
                f.write(name + "\n")
    print(f"startup-order: passthru {' '.join(args)}: {len(order)} methods entered, exit {exit_code}", file=sys.stderr)
    return exit_code


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "prepare":
        prepare(*sys.argv[2:5])
    elif len(sys.argv) >= 5 and sys.argv[1] == "trace" and sys.argv[4] == "--":
        sys.exit(trace(sys.argv[2], sys.argv[3], sys.argv[5:]))
    else:
        sys.exit(__doc__)
