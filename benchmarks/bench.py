"""`make bench`: rnnkit against PyTorch and ONNX Runtime, side by side, on this machine.

Every library runs in its own process (`bench_worker.py`), the libraries alternate A B C A B C
for --repeats rounds, all with 2 threads; each number is the median over rounds of a median
over timed blocks. Ratios are peer time / rnnkit time: above 1, rnnkit is faster.

    python benchmarks/bench.py            # the full suite, about 10 minutes
    python benchmarks/bench.py --quick    # tiny cases, under a minute: a smoke test
    python benchmarks/bench.py --only stream   # one group of cases, into runs/bench-stream
    python benchmarks/bench.py --case "infer lstm H128 B1 T100"   # cases by id, runs/bench-cases

Writes runs/bench/bench.json, bench.md and bench.png, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rnnkit import allocator  # the orchestrator times nothing: importing rnnkit here is fine

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "bench_worker.py"
LIBS = ("rnnkit", "torch", "ort")
# glibc's malloc set as `import rnnkit` sets it (`rnnkit.allocator`), for every library's
# process: each side keeps its freed buffers for the next call (measured: PyTorch's LSTM
# training step at 256: 81.7 ms without, 83.8 with, in two runs)
SAME_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": str(allocator.MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(allocator.TRIM_THRESHOLD),
}


def cases(quick: bool) -> list[dict]:
    """Rows of the table: each an rnnkit case and its peers as (library, case)."""
    budget = 0.3 if quick else 2.0
    sizes = [32] if quick else [64, 256, 512]
    T = 10 if quick else 100

    def seq(kind: str, cell: str, H: int, B: int, **extra) -> dict:
        iters = 1 if not quick else 3
        base = dict(kind=kind, cell=cell, H=H, B=B, T=T, iters=iters, blocks=15, budget=budget)
        base.update(extra)
        base["id"] = f"{kind} {cell} H{H} B{B} T{T}" + (
            f" {base.get('layers', 1)}-layer bidirectional" if base.get("bidir") else ""
        )
        return base

    rows: list[dict] = []
    shapes = [(c, H, 32) for c in ("lstm", "gru") for H in sizes]
    if not quick:
        shapes += [(c, 128, B) for c in ("lstm", "gru") for B in (1, 8)]
    for cell, H, B in shapes:
        rows.append({"group": "train", "case": seq("train", cell, H, B), "peers": ["torch"]})
    big = {} if quick else {"layers": 2, "bidir": True}
    if not quick:
        rows.append(
            {"group": "train", "case": seq("train", "lstm", 256, 32, **big), "peers": ["torch"]}
        )
    for cell, H, B in shapes:
        rows.append({"group": "infer", "case": seq("infer", cell, H, B), "peers": ["torch", "ort"]})
    stream_sizes = [32] if quick else [64, 128, 256, 512]
    iters = 200 if quick else 2000
    for H in stream_sizes:
        for weights in ("float32", "int8", "bfloat16"):
            case = dict(kind="stream", cell="lstm", H=H, B=1, T=1, weights=weights, iters=iters)
            case.update(blocks=15, budget=budget, id=f"stream lstm H{H} {weights}")
            peers = ["torch-cell", "torch-seq", "ort"] if weights == "float32" else []
            rows.append({"group": "stream", "case": case, "peers": peers})
    for H in sizes[-1:] if quick else [256, 512]:
        mm = dict(kind="matmul", H=H, B=32, T=T, iters=3, blocks=15, budget=budget)
        mm["id"] = f"matmul H{H}"
        rows.append({"group": "matmul", "case": mm, "peers": []})
    steps = 20_000 if quick else 1_000_000
    mem = dict(kind="memory", what="stream", H=128, steps=steps, id=f"memory stream 1e4->{steps}")
    rows.append({"group": "memory", "case": mem, "peers": []})
    for T_mem, chunk in (
        [(50, None), (50, 10)] if quick else [(200, None), (2000, None), (2000, 100)]
    ):
        mc = dict(kind="memory", what="train", H=128, B=16, T=T_mem, chunk=chunk)
        mc["id"] = f"memory train T{T_mem} " + (f"truncated {chunk}" if chunk else "full BPTT")
        rows.append({"group": "memory", "case": mc, "peers": []})
    return rows


def peer_case(row: dict, peer: str) -> tuple[str, dict]:
    case = dict(row["case"])
    if peer.startswith("torch"):
        case["peer"] = peer
        return "torch", case
    case["onnx"] = onnx_name(case)
    return "ort", case


def onnx_name(case: dict) -> str:
    H, L = case["H"], case.get("layers", 1)
    return f"{case['cell']}-H{H}-L{L}{'-bidir' if case.get('bidir') else ''}.onnx"


def export_models(rows: list[dict], out: Path) -> None:
    import rnnkit  # the orchestrator times nothing: importing rnnkit here is fine

    for row in rows:
        if "ort" not in row["peers"]:
            continue
        case = row["case"]
        cls = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[case["cell"]]
        layer = cls(
            case["H"],
            case["H"],
            num_layers=case.get("layers", 1),
            bidirectional=case.get("bidir", False),
            seed=0,
        )
        path = out / onnx_name(case)
        if not path.exists():
            rnnkit.export_onnx(layer, path)


def run_worker(
    lib: str, lib_cases: list[dict], onnx_dir: Path, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    """Time ``lib_cases`` with one library in a fresh process; {case id: seconds}."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(lib_cases, fh)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), **(extra_env or {}))
    for key, value in SAME_MALLOC.items():
        env.setdefault(key, value)
    try:
        proc = subprocess.run(
            [sys.executable, str(WORKER), lib, fh.name, str(onnx_dir)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
    finally:
        os.unlink(fh.name)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"bench: the {lib} worker failed with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(rows: list[dict], repeats: int, onnx_dir: Path) -> dict[str, dict[str, float]]:
    """{row id: {side: median}}: sides are "rnnkit" and each peer name."""
    plan: dict[str, list[tuple[str, str, dict]]] = {lib: [] for lib in LIBS}
    for row in rows:
        rid = row["case"]["id"]
        plan["rnnkit"].append((rid, "rnnkit", row["case"]))
        for peer in row["peers"]:
            lib, case = peer_case(row, peer)
            plan[lib].append((rid, peer, dict(case, id=f"{rid} | {peer}")))
    samples: dict[str, dict[str, list[float]]] = {r["case"]["id"]: {} for r in rows}
    for r in range(repeats):
        for lib in LIBS:  # A B C, A B C, ...
            if not plan[lib]:
                continue
            print(f"round {r + 1}/{repeats}: {lib} ({len(plan[lib])} cases)", flush=True)
            got = run_worker(lib, [c for _, _, c in plan[lib]], onnx_dir)
            for rid, side, case in plan[lib]:
                samples[rid].setdefault(side, []).append(got[case["id"]])
    return {
        rid: {s: statistics.median(v) for s, v in sides.items()} for rid, sides in samples.items()
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny cases, under a minute")
    p.add_argument("--repeats", type=int, default=None, help="rounds of A B C (default 3; quick 2)")
    p.add_argument(
        "--out", type=Path, help="output folder (default runs/bench; with --only, runs/bench-GROUP)"
    )
    groups = ("train", "infer", "stream", "matmul", "memory")
    p.add_argument(
        "--only", choices=groups, action="append", help="only these groups of cases (repeatable)"
    )
    p.add_argument(
        "--case", action="append", metavar="ID", help="only the case with this id (repeatable)"
    )
    args = p.parse_args()
    from bench_report import report  # benchmarks/ is on sys.path when run as a script

    rows = [r for r in cases(args.quick) if not args.only or r["group"] in args.only]
    if args.case:
        known = {r["case"]["id"] for r in rows}
        unknown = [c for c in args.case if c not in known]
        if unknown:
            p.error(f"no case {unknown[0]!r}; expected one of: {', '.join(sorted(known))}")
        rows = [r for r in rows if r["case"]["id"] in args.case]
    if args.out is None:  # a partial run does not overwrite the full suite's results
        part = "cases" if args.case else "-".join(args.only) if args.only else ""
        args.out = ROOT / "runs" / (f"bench-{part}" if part else "bench")
    repeats = args.repeats or (2 if args.quick else 3)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        export_models(rows, Path(tmp))
        medians = measure(rows, repeats, Path(tmp))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}"
    table, ok = report(rows, medians, args.out, machine, repeats, args.quick)
    print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
