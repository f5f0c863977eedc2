"""`make bench-ctc`: rnnkit's `ctc_loss` against `torch.nn.functional.ctc_loss`, loss and gradient.

Each side runs in its own process (this file with ``--worker``), the sides alternate
(rnnkit, torch, rnnkit, torch, ...) for --repeats rounds, at each thread count of --threads
(OMP/OPENBLAS/MKL/NUMBA/RNNKIT_NUM_THREADS and torch.set_num_threads all pinned to it); each
number is the median over rounds of a median over timed blocks. The timed call is the loss and
the gradient with respect to ``log_probs`` (float32, time-major, ``reduction="mean"``): rnnkit's
`ctc_loss` returns both; PyTorch's is ``F.ctc_loss(...)`` then ``.backward()``. Both sides get
the same arrays (seed 0) and report their loss, which the table compares. Ratios are torch time
/ rnnkit time: above 1, rnnkit is faster.

    python benchmarks/bench_ctc.py                 # speech and digit-string sizes, a few minutes
    python benchmarks/bench_ctc.py --quick         # tiny cases, one round: a smoke test
    python benchmarks/bench_ctc.py --before /tmp/rnnkit-before   # and an older rnnkit beside

``--before DIR`` adds a third side, the rnnkit of another source tree (DIR or DIR/src), to show
a change's effect in the same run. Writes ctc.json and ctc.md into --out (runs/bench-ctc).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "RNNKIT_NUM_THREADS",
)


def cases(quick: bool) -> list[dict]:
    """(T, B, C, S range): speech frames over characters, and short digit strings."""
    if quick:
        shapes = [("speech", 30, 4, 29, 3, 8), ("digits", 20, 4, 12, 2, 5)]
    else:
        shapes = [
            ("speech", 100, 32, 30, 10, 20),  # the size of the first measurement (2026-12-01)
            ("speech", 200, 32, 29, 20, 40),
            ("speech", 400, 16, 29, 30, 60),
            ("speech", 400, 32, 29, 30, 60),
            ("digits", 150, 32, 12, 15, 20),
        ]
    budget = 0.2 if quick else 1.5
    return [
        dict(id=f"{kind} T{T} B{B} C{C} S{lo}-{hi}", T=T, B=B, C=C, S=(lo, hi), budget=budget)
        for kind, T, B, C, lo, hi in shapes
    ]


# -- the worker: one library, in its own process ----------------------------------------------
def problem(case: dict):
    """float32 ``log_softmax`` outputs (T, B, C), padded targets, input and target lengths."""
    import numpy as np

    rng = np.random.default_rng(0)
    T, B, C = case["T"], case["B"], case["C"]
    lo, hi = case["S"]
    logits = rng.normal(scale=3.0, size=(T, B, C))
    lp = logits - logits.max(-1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
    il = rng.integers((3 * T) // 4, T + 1, size=B)
    il[0] = T  # the longest fills the padded length
    tl = rng.integers(lo, hi + 1, size=B)
    targets = rng.integers(1, C, size=(B, hi))  # blank 0
    return lp.astype(np.float32), targets, il, tl


def timed(fn, budget: float, blocks: int = 15) -> float:
    """Median over blocks of the time per call; a block is as many calls as take ~20 ms."""
    for _ in range(3):  # warm-up: compilation, caches
        fn()
    t0 = time.perf_counter()
    fn()
    per_call = time.perf_counter() - t0
    iters = max(1, int(0.02 / max(per_call, 1e-6)))
    times = []
    start = time.perf_counter()
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        times.append((time.perf_counter() - t0) / iters)
        if time.perf_counter() - start > budget and len(times) >= 5:
            break
    return statistics.median(times)


def worker(lib: str, todo: list[dict]) -> dict:
    """{case id: {"seconds", "loss"}} for one library; also what ran ("_info")."""
    threads = int(os.environ["OMP_NUM_THREADS"])
    out: dict = {}
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
        F = torch.nn.functional
        for case in todo:
            lp_np, targets, il, tl = problem(case)
            lp = torch.tensor(lp_np, requires_grad=True)
            y, ilt, tlt = torch.tensor(targets), torch.tensor(il), torch.tensor(tl)

            def step(lp=lp, y=y, ilt=ilt, tlt=tlt):
                lp.grad = None
                loss = F.ctc_loss(lp, y, ilt, tlt, reduction="mean")
                loss.backward()
                return float(loss)

            out[case["id"]] = {"seconds": timed(step, case["budget"]), "loss": step()}
        out["_info"] = {"lib": "torch", "version": torch.__version__, "threads": threads}
        return out
    from bench_machine import blas

    import rnnkit

    for case in todo:
        lp_np, targets, il, tl = problem(case)

        def step_r(lp=lp_np, y=targets, il=il, tl=tl):
            return float(rnnkit.ctc_loss(lp, y, il, tl, reduction="mean")[0])

        out[case["id"]] = {"seconds": timed(step_r, case["budget"]), "loss": step_r()}
    where = str(Path(rnnkit.__file__).resolve().parent)
    out["_info"] = {"lib": "rnnkit", "rnnkit": where, "threads": threads, "blas": blas()}
    return out


# -- the orchestrator --------------------------------------------------------------------------
def run_worker(lib: str, todo: list[dict], threads: int, src: Path) -> dict:
    """Time ``todo`` with one library in a fresh process, ``threads`` everywhere pinned."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(Path(__file__).parent)]))
    env.update({key: str(threads) for key in THREAD_VARS})
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", lib, json.dumps(todo)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench_ctc: the {lib} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def source_dir(path: Path) -> Path:
    """DIR/src if it holds rnnkit, else DIR itself (which must)."""
    for cand in (path / "src", path):
        if (cand / "rnnkit" / "__init__.py").exists():
            return cand
    raise SystemExit(f"bench_ctc: --before: no rnnkit package in {path} or {path}/src")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny cases, one round: a smoke test")
    p.add_argument("--repeats", type=int, default=None, help="rounds (default 5; quick: 1)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread pins to run")
    p.add_argument("--before", type=Path, default=None, help="another rnnkit tree, beside")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-ctc", help="output folder")
    p.add_argument("--worker", nargs=2, metavar=("LIB", "CASES"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        lib, todo = args.worker[0], json.loads(args.worker[1])
        print(json.dumps(worker(lib, todo)))
        return 0

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_machine import describe, git_commit, header

    repeats = args.repeats or (1 if args.quick else 5)
    todo = cases(args.quick)
    sides = [("rnnkit", "rnnkit", ROOT / "src"), ("torch", "torch", ROOT / "src")]
    if args.before is not None:
        sides.append(("before", "rnnkit", source_dir(args.before.resolve())))
    samples: dict[str, dict[str, list[float]]] = {}
    losses: dict[str, dict[str, float]] = {}
    infos: dict[str, dict] = {}
    for r in range(repeats):
        for n in args.threads:
            for side, lib, src in sides:
                msg = f"round {r + 1}/{repeats}, {n} thread(s): {side}"
                print(msg, file=sys.stderr, flush=True)
                got = run_worker(lib, todo, n, src)
                infos[side] = got.pop("_info")
                for cid, v in got.items():
                    samples.setdefault(f"{cid} | {n}", {}).setdefault(side, []).append(v["seconds"])
                    losses.setdefault(cid, {})[side] = v["loss"]

    machine = describe(infos["rnnkit"].get("blas", []), keep_env=True)
    machine["rnnkit_commit"] = git_commit(ROOT / "src")
    if args.before is not None:
        machine["before"] = {"src": infos["before"]["rnnkit"], "commit": git_commit(sides[2][2])}
    names = [s for s, _, _ in sides]
    head = ["case", "threads", "rnnkit", "torch", "torch / rnnkit"]
    if args.before is not None:
        head += ["before", "before / rnnkit"]
    trees = f"rnnkit: {ROOT / 'src'} (commit {machine['rnnkit_commit']})"
    if args.before is not None:
        trees += f"; before: {machine['before']['src']} (commit {machine['before']['commit']})"
    lines = [
        *header(machine)[:1],
        trees,
        f"ctc_loss + gradient, float32, reduction='mean'; median of {repeats} rounds alternating "
        f"{' '.join(names)} (separate processes); ratio above 1: rnnkit is faster.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]  # fmt: skip
    result: dict = {"machine": machine, "repeats": repeats, "cases": {}}
    for key, by_side in samples.items():
        cid, n = key.split(" | ")
        med = {side: statistics.median(v) for side, v in by_side.items()}
        row = [cid, n, f"{med['rnnkit'] * 1e3:.2f} ms", f"{med['torch'] * 1e3:.2f} ms"]
        row.append(f"{med['torch'] / med['rnnkit']:.2f}")
        if "before" in med:
            row += [f"{med['before'] * 1e3:.2f} ms", f"{med['before'] / med['rnnkit']:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
        result["cases"][key] = {"median_seconds": med, "samples": by_side}
    worst = max(
        abs(v[s] - v["torch"]) / abs(v["torch"]) for v in losses.values() for s in v if s != "torch"
    )
    lines += ["", f"Largest relative difference of the loss from PyTorch's: {worst:.1e}."]
    result["losses"] = losses
    table = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ctc.json").write_text(json.dumps(result, indent=2))
    (args.out / "ctc.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
