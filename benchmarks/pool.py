"""`make bench-pool`: does stepping many streams as one batch (`StreamPool`, the planner's
``stream-batch`` path) pay against one `Stream.step` each?

32 streams of one LSTM, one step each, either separately or as one pool, in separate processes
(`bench_worker.py`, the variant set by ``RNNKIT_BENCH_STREAMS``), alternating A B A B, 2 BLAS
threads on every side; prints the medians and the speed-up (separate time / pool time; above 1
the pool pays).

    python benchmarks/pool.py            # about a minute
    python benchmarks/pool.py --quick    # small cases, seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from bench import ROOT, run_worker  # benchmarks/ is on sys.path when run as a script

SIDES = {"separate": {"RNNKIT_BENCH_STREAMS": "separate"}, "pool": {"RNNKIT_BENCH_STREAMS": "pool"}}


def cases(quick: bool) -> list[dict]:
    sizes = [32] if quick else [64, 256, 512]
    budget = 0.3 if quick else 2.0
    return [
        dict(kind="streams", cell="lstm", H=H, B=32, T=1, iters=10, blocks=15, budget=budget,
             id=f"pool: 32 streams lstm H{H}, one step each")
        for H in sizes
    ]  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small cases, seconds")
    p.add_argument("--repeats", type=int, default=3, help="rounds of separate / pool")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench", help="output folder")
    args = p.parse_args()
    todo = cases(args.quick)
    samples: dict[str, dict[str, list[float]]] = {c["id"]: {s: [] for s in SIDES} for c in todo}
    for r in range(args.repeats):
        for side, env in SIDES.items():
            print(f"round {r + 1}/{args.repeats}: {side}", file=sys.stderr, flush=True)
            got = run_worker("rnnkit", todo, ROOT, extra_env=env)
            for c in todo:
                samples[c["id"]][side].append(got[c["id"]])
    lines = [
        f"Median of {args.repeats} alternating rounds, separate processes, 2 threads; "
        "speed-up = separate time / pool time.",
        "",
        "| case | separate | pool | speed-up |",
        "|---|---|---|---|",
    ]
    result = {}
    for c in todo:
        off = statistics.median(samples[c["id"]]["separate"])
        on = statistics.median(samples[c["id"]]["pool"])
        result[c["id"]] = {"separate": off, "pool": on, "speedup": off / on}
        lines.append(f"| {c['id']} | {off * 1e3:.3f} ms | {on * 1e3:.3f} ms | {off / on:.2f} |")
    table = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pool.json").write_text(json.dumps(result, indent=2))
    (args.out / "pool.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
