"""`make bench-parallel`: which ways of using both cores pay on this machine?

rnnkit can run independent recurrences on two threads: the two directions of a bidirectional
layer, and the layers of a stack as a wavefront over chunks of time (`rnnkit.layers.parallel`);
and it can advance many independent streams in one batched step (`StreamPool`) instead of one
`Stream.step` each. This times each switched on against switched off, in separate processes
(`bench_worker.py`, the variant set by environment variable), alternating A B A B, 2 BLAS
threads on every side, and prints the medians and the speed-up (off time / on time; above 1 it
pays).

    python benchmarks/parallel.py            # about 5 minutes
    python benchmarks/parallel.py --quick    # small cases, seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from bench import ROOT, run_worker  # benchmarks/ is on sys.path when run as a script

# what is compared: (name, environment when off, environment when on)
SWITCHES = {
    "directions": ({"RNNKIT_PARALLEL_DIRECTIONS": "0"}, {"RNNKIT_PARALLEL_DIRECTIONS": "1"}),
    "wavefront": ({"RNNKIT_WAVEFRONT": "0"}, {"RNNKIT_WAVEFRONT": "8"}),
    "pool": ({"RNNKIT_BENCH_STREAMS": "separate"}, {"RNNKIT_BENCH_STREAMS": "pool"}),
}


def cases(quick: bool) -> list[dict]:
    sizes = [32] if quick else [64, 256, 512]
    T, budget = (20, 0.3) if quick else (100, 2.0)
    out = []
    for switch, extra in (("directions", {"bidir": True}), ("wavefront", {"layers": 2})):
        for kind in ("train", "infer"):
            for H in sizes:
                case: dict = dict(kind=kind, cell="lstm", H=H, B=32, T=T, iters=1, blocks=15)
                case.update(budget=budget, switch=switch, **extra)
                case["id"] = f"{switch}: {kind} lstm H{H} B32 T{T} " + (
                    "bidirectional" if extra.get("bidir") else "2 layers"
                )
                out.append(case)
    for H in sizes:  # 32 streams of one LSTM, one step each: separately or as one pool
        case = dict(kind="streams", cell="lstm", H=H, B=32, T=1, iters=10, blocks=15)
        case.update(budget=budget, switch="pool", id=f"pool: 32 streams lstm H{H}, one step each")
        out.append(case)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small cases, seconds")
    p.add_argument("--repeats", type=int, default=3, help="rounds of off / on")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench", help="output folder")
    args = p.parse_args()
    todo = cases(args.quick)
    samples: dict[str, dict[str, list[float]]] = {c["id"]: {"off": [], "on": []} for c in todo}
    for r in range(args.repeats):
        for side in ("off", "on"):
            print(f"round {r + 1}/{args.repeats}: {side}", file=sys.stderr, flush=True)
            for switch, envs in SWITCHES.items():
                mine = [c for c in todo if c["switch"] == switch]
                env = envs[0] if side == "off" else envs[1]
                got = run_worker("rnnkit", mine, ROOT, extra_env=env)
                for c in mine:
                    samples[c["id"]][side].append(got[c["id"]])
    lines = [
        f"Median of {args.repeats} alternating rounds, separate processes, 2 threads; "
        "speed-up = time off / time on.",
        "",
        "| case | off | on | speed-up |",
        "|---|---|---|---|",
    ]
    result = {}
    for c in todo:
        off = statistics.median(samples[c["id"]]["off"])
        on = statistics.median(samples[c["id"]]["on"])
        result[c["id"]] = {"off": off, "on": on, "speedup": off / on}
        lines.append(f"| {c['id']} | {off * 1e3:.2f} ms | {on * 1e3:.2f} ms | {off / on:.2f} |")
    table = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "parallel.json").write_text(json.dumps(result, indent=2))
    (args.out / "parallel.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
