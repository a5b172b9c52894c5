#!/usr/bin/env python3
"""Pools the rounds of several bind-cycle.sh runs (one freshly started virtual host each, HOSTS=N): reads each run's
"all rounds (ms):" line and prints, per contender, the median over every round of every host, the ratios to the
builtins and the seed, the median of the per-round passthru/builtins ratios, and each host's own ratio beside them."""
import statistics
import sys


def rounds(path):
    for line in open(path):
        if line.startswith("all rounds (ms): "):
            parts = line[len("all rounds (ms): "):].split(" | ")
            table = {}
            for part in parts:
                words = part.split()
                # "seed 1 2 3", "NativeAOT floor 1 2 3": the name is every word before the first number.
                k = next(i for i, w in enumerate(words) if w.isdigit())
                table[" ".join(words[:k])] = [int(w) for w in words[k:]]
            return table
    sys.exit(f"pool-rounds: no 'all rounds (ms):' line in {path}")


hosts = [rounds(p) for p in sys.argv[1:]]
if not hosts:
    sys.exit("usage: pool-rounds.py BIND-CYCLE-OUTPUT...")
names = list(hosts[0])
pooled = {n: [v for h in hosts for v in h[n]] for n in names}
med = {n: statistics.median(v) for n, v in pooled.items()}
per_round = [p / b for h in hosts for p, b in zip(h["passthru"], h["builtins"])]
print(f"pooled over {len(hosts)} freshly started virtual hosts, {len(pooled['passthru'])} rounds (medians, ms):")
for n in names:
    print(f"  {n:16} {med[n]:7.1f}  {med[n] / med['builtins']:.2f}x the builtins")
print(f"passthru/builtins {med['passthru'] / med['builtins']:.3f}x (target <= 1.30x), passthru/seed "
      f"{med['passthru'] / med['seed']:.2f}x (target <= 1.2x); per round: median {statistics.median(per_round):.3f}x, "
      f"from {min(per_round):.3f}x to {max(per_round):.3f}x")
if "before" in med:
    print(f"passthru/before {med['passthru'] / med['before']:.3f}x (the older binary in the same rounds)")
print("each host, passthru/builtins by its own medians: " + ", ".join(
    f"{statistics.median(h['passthru']) / statistics.median(h['builtins']):.3f}x" for h in hosts))
