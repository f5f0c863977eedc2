"""`make bench`: rnnkit against PyTorch and ONNX Runtime, side by side, on this machine.

Every library runs in its own process (`bench_worker.py`), the libraries alternate A B C A B C
for --repeats rounds, all with 2 threads; each number is the median over rounds of a median
over timed blocks. Ratios are peer time / rnnkit time: above 1, rnnkit is faster.

    python benchmarks/bench.py            # the full suite, about 10 minutes
    python benchmarks/bench.py --quick    # tiny cases, under a minute: a smoke test
    python benchmarks/bench.py --only stream   # one group of cases, into runs/bench-stream
    python benchmarks/bench.py --case "infer lstm H128 B1 T100"   # cases by id, runs/bench-cases

Writes runs/bench/bench.json, bench.md and bench.png, and prints the table. Both say where
they ran: bench.json's ``machine`` (CPU model, instruction sets, the BLAS and its kernels as
threadpoolctl sees them in the rnnkit worker, cores, versions) and the table's first lines.

Some machines set ``OPENBLAS_CORETYPE`` or ``OPENBLAS_L2_SIZE``, which pin NumPy's OpenBLAS to
an older kernel than the CPU's (Haswell on an AVX-512 CPU); a user's machine does not. The
workers run without them, so that rnnkit and its peers run as they would for a user, and the
report names what was cleared; ``--keep-env`` keeps them (tests and CI keep their environment).

A/B: rnnkit against itself, from two source trees, to check that a change slows no case:

    git worktree add /tmp/rnnkit-before HEAD~1     # the code before, say
    python benchmarks/bench.py --ab /tmp/rnnkit-before --repeats 6
    python benchmarks/bench.py --ab /tmp/rnnkit-before --case "stream lstm H128 float32"

runs the rnnkit worker with PYTHONPATH=A (the folder given, or its src/) and B (this checkout's
src/, or a second folder: ``--ab A B``) alternating A B A B for --repeats rounds, no peers, and
prints each case's medians and B / A (above 1: B is slower), into runs/bench-ab. One tree twice
(``--ab src src``) shows the noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"  # the rnnkit the workers import (PYTHONPATH), and so this process too
sys.path.insert(0, str(SRC))

from bench_machine import OPENBLAS_PINS  # noqa: E402  (benchmarks/ is on sys.path: a script)

from rnnkit import allocator  # noqa: E402  (the orchestrator times nothing: importing is fine)

WORKER = Path(__file__).resolve().parent / "bench_worker.py"
LIBS = ("rnnkit", "torch", "ort")
# (worker, library, rnnkit source tree): the processes of one round, in order
Worker = tuple[str, str, Path]
# glibc's malloc set as rnnkit tunes it (`rnnkit.allocator`), for every library's
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


def worker_env(
    src: Path,
    keep_env: bool,
    extra_env: dict[str, str] | None = None,
    environ: dict[str, str] | None = None,
) -> dict[str, str]:
    """A worker's environment: ``environ`` (default this process's) with rnnkit from ``src``,
    the same malloc settings on every side, and without `OPENBLAS_PINS` unless ``keep_env``."""
    env = dict(os.environ if environ is None else environ)
    env.update(PYTHONPATH=str(src), **(extra_env or {}))
    for key, value in SAME_MALLOC.items():
        env.setdefault(key, value)
    if not keep_env:
        for key in OPENBLAS_PINS:
            env.pop(key, None)
    return env


def call_worker(
    lib: str,
    lib_cases: list[dict],
    onnx_dir: Path,
    extra_env: dict[str, str] | None = None,
    src: Path = SRC,
    keep_env: bool = True,
) -> tuple[dict[str, float], dict]:
    """Time ``lib_cases`` with one library in a fresh process: ({case id: seconds}, what ran:
    the worker's ``{"lib", "rnnkit", "blas"}``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(lib_cases, fh)
    try:
        proc = subprocess.run(
            [sys.executable, str(WORKER), lib, fh.name, str(onnx_dir)],
            capture_output=True,
            text=True,
            env=worker_env(src, keep_env, extra_env),
            cwd=ROOT,
        )
    finally:
        os.unlink(fh.name)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"bench: the {lib} worker failed with status {proc.returncode}")
    *_, info_line, result_line = proc.stdout.strip().splitlines()
    info = json.loads(info_line)["worker"]
    if lib == "rnnkit" and Path(info["rnnkit"]).resolve() != src.resolve():
        raise SystemExit(
            f"bench: the rnnkit worker imported rnnkit from {info['rnnkit']}, expected {src}"
            " (does an installed rnnkit come before PYTHONPATH?)"
        )
    return json.loads(result_line), info


def run_worker(
    lib: str, lib_cases: list[dict], onnx_dir: Path, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    """Time ``lib_cases`` with one library in a fresh process; {case id: seconds}."""
    return call_worker(lib, lib_cases, onnx_dir, extra_env)[0]


Plan = dict[str, list[tuple[str, str, dict]]]  # {worker: [(row id, side, case)]}


def plan_peers(rows: list[dict]) -> Plan:
    """rnnkit's cases for the rnnkit worker, each peer's for its library's worker."""
    plan: Plan = {lib: [] for lib in LIBS}
    for row in rows:
        rid = row["case"]["id"]
        plan["rnnkit"].append((rid, "rnnkit", row["case"]))
        for peer in row["peers"]:
            lib, case = peer_case(row, peer)
            plan[lib].append((rid, peer, dict(case, id=f"{rid} | {peer}")))
    return plan


def measure(
    rows: list[dict],
    plan: Plan,
    workers: list[Worker],
    repeats: int,
    onnx_dir: Path,
    keep_env: bool,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict]]:
    """({row id: {side: [seconds, one per round]}}, {worker: what ran}): the ``workers`` run
    their ``plan`` in turn, A B C A B C, for ``repeats`` rounds."""
    samples: dict[str, dict[str, list[float]]] = {r["case"]["id"]: {} for r in rows}
    infos: dict[str, dict] = {}
    for r in range(repeats):
        for name, lib, src in workers:  # A B C, A B C, ...
            if not plan[name]:
                continue
            print(f"round {r + 1}/{repeats}: {name} ({len(plan[name])} cases)", flush=True)
            cases_ = [c for _, _, c in plan[name]]
            got, infos[name] = call_worker(lib, cases_, onnx_dir, src=src, keep_env=keep_env)
            for rid, side, case in plan[name]:
                samples[rid].setdefault(side, []).append(got[case["id"]])
    return samples, infos


def source_tree(path: Path) -> Path | None:
    """The folder holding the ``rnnkit`` package: ``path`` itself or its ``src/``."""
    for src in (path, path / "src"):
        if (src / "rnnkit" / "__init__.py").is_file():
            return src.resolve()
    return None


def medians_of(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {
        rid: {s: statistics.median(v) for s, v in sides.items()} for rid, sides in samples.items()
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny cases, under a minute")
    p.add_argument("--repeats", type=int, default=None, help="rounds of A B C (default 3; quick 2)")
    p.add_argument(
        "--out",
        type=Path,
        help="output folder (default runs/bench; with --only, runs/bench-GROUP; --ab: bench-ab; "
        "--quick adds -quick)",
    )
    groups = ("train", "infer", "stream", "matmul", "memory")
    p.add_argument(
        "--only", choices=groups, action="append", help="only these groups of cases (repeatable)"
    )
    p.add_argument(
        "--case", action="append", metavar="ID", help="only the case with this id (repeatable)"
    )
    p.add_argument(
        "--keep-env",
        action="store_true",
        help=f"keep {' and '.join(OPENBLAS_PINS)} for the workers (default: cleared, as for"
        " a user)",
    )
    p.add_argument(
        "--ab",
        nargs="+",
        type=Path,
        metavar="SRC",
        help="rnnkit against itself: A = SRC (a checkout or its src/), B = this checkout or a"
        " second SRC; alternating A B, no peers; prints B / A per case (default: off)",
    )
    args = p.parse_args()
    from bench_machine import describe, git_commit  # benchmarks/ is on sys.path: a script
    from bench_report import ab_report, report

    if args.ab and len(args.ab) > 2:
        p.error(f"--ab: expected one or two source trees, got {len(args.ab)}")
    srcs: list[Path] = []
    for path in args.ab or []:
        src = source_tree(path)
        if src is None:
            p.error(f"--ab: expected a folder with rnnkit/__init__.py or src/rnnkit/, got {path}")
        srcs.append(src)
    if len(srcs) == 1:
        srcs.append(SRC.resolve())
    rows = [r for r in cases(args.quick) if not args.only or r["group"] in args.only]
    if args.case:
        known = {r["case"]["id"] for r in rows}
        unknown = [c for c in args.case if c not in known]
        if unknown:
            p.error(f"no case {unknown[0]!r}; expected one of: {', '.join(sorted(known))}")
        rows = [r for r in rows if r["case"]["id"] in args.case]
    if args.out is None:  # a partial run does not overwrite the full suite's results
        part = "cases" if args.case else "-".join(args.only) if args.only else ""
        parts = ["bench"] + (["ab"] if args.ab else []) + ([part] if part else [])
        parts += ["quick"] if args.quick else []
        args.out = ROOT / "runs" / "-".join(parts)
    repeats = args.repeats or (2 if args.quick else 3)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.ab:
        workers: list[Worker] = [("A", "rnnkit", srcs[0]), ("B", "rnnkit", srcs[1])]
        plan = {name: [(r["case"]["id"], name, r["case"]) for r in rows] for name, *_ in workers}
    else:
        workers = [(lib, lib, SRC) for lib in LIBS]
        plan = plan_peers(rows)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.ab:
            export_models(rows, Path(tmp))
        samples, infos = measure(rows, plan, workers, repeats, Path(tmp), args.keep_env)
    machine = describe(infos[workers[0][0]]["blas"], args.keep_env)
    trees_run = {name: {"src": str(src), "commit": git_commit(src)} for name, _, src in workers}
    if args.ab:
        machine["rnnkit"] = trees_run
        table = ab_report(rows, samples, args.out, machine, repeats)
        print(table)
        return 0
    machine["rnnkit"] = trees_run["rnnkit"]
    table, ok = report(rows, medians_of(samples), args.out, machine, repeats, args.quick)
    print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
