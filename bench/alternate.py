#!/usr/bin/env python3
"""alternate.py ROUNDS [--prepare CMD] [--status N] NAME=COMMAND...: the benchmarks' clock. Runs the commands in alternating rounds
(one warm-up round first, not counted), so load and drift hit all alike, and prints for each the median wall time and
the median CPU time (user + system, the child's own rusage: steadier than wall time on a shared machine), then the first
one's ratio against each other, and the median of its round-by-round differences from each (in ms). Output is discarded; a command that fails stops the benchmark. With --prepare, CMD
runs (through sh) before every command, untimed (dropping the page cache for cold runs). With --status, every command
is expected to exit N instead of 0 (a guest that powers off through isa-debug-exit makes QEMU exit 1)."""
import os, shlex, statistics, subprocess, sys, time

args = sys.argv[1:]
rounds = int(args.pop(0))
prepare = None
if args and args[0] == "--prepare":
    prepare = args[1]; args = args[2:]
expected = 0
if args and args[0] == "--status":
    expected = int(args[1]); args = args[2:]
commands = [a.split("=", 1) for a in args]
wall = {n: [] for n, _ in commands}; cpu = {n: [] for n, _ in commands}
null = os.open(os.devnull, os.O_WRONLY)
for r in range(rounds + 1):
    for name, command in commands:
        if prepare: subprocess.run(["sh", "-c", prepare], check=False)
        argv = ["sh", "-c", command] if any(c in command for c in "|;&<>$") else shlex.split(command)
        t0 = time.perf_counter()
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)])
        _, status, usage = os.wait4(pid, 0)
        t1 = time.perf_counter()
        if os.waitstatus_to_exitcode(status) != expected:
            sys.exit(f"bench: {name} exited {os.waitstatus_to_exitcode(status)}, not {expected}: {command}")
        if r == 0: continue
        wall[name].append((t1 - t0) * 1000); cpu[name].append((usage.ru_utime + usage.ru_stime) * 1000)
med = {n: (statistics.median(wall[n]), statistics.median(cpu[n])) for n, _ in commands}
for name, _ in commands:
    w, c = med[name]
    print(f"  {name:44s} {w:8.1f} ms wall  {c:8.1f} ms CPU")
first = commands[0][0]
for name, _ in commands[1:]:
    # The median of the round-by-round differences too: each round's pair ran back to back, so drift over the run
    # (another VM on the host, a frequency change) cancels out of it, where the two medians above can each move.
    diff = statistics.median(a - b for a, b in zip(wall[first], wall[name]))
    print(f"  {first}/{name}: {med[first][0] / med[name][0]:.2f}x wall, {med[first][1] / med[name][1]:.2f}x CPU; "
          f"{first} - {name}, paired by round: {diff:+.1f} ms wall (median)")
print(f"  ({rounds} rounds, medians; load average {' '.join(open('/proc/loadavg').read().split()[:3])})")
