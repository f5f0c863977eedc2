"""`rnnkit stream` fed lines live: the time from writing a line to reading its answer, paced
(every layer on one core, the default from a pipe) against ``--no-paced`` (a large layer's
products shared between the two cores, the back-to-back path).

Each side is a real ``rnnkit stream CHECKPOINT`` process reading a pipe; this process writes
one line of numbers every 1/RATE seconds (a sensor) and times each answer from when its line
was due (a late write is charged, no coordinated omission). The two sides alternate (A B A B
...), each number is the median over the repeats, and the CPU time each process spent per line
is read from /proc. The model: an LSTM(INPUT, HIDDEN) layer, large enough to split by default.

    python benchmarks/bench_stream_lines.py                 # about 1 minute
    python benchmarks/bench_stream_lines.py --quick         # seconds: a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIDES = {"paced": ["--paced"], "unpaced": ["--no-paced"]}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(checkpoint: Path, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env["PYTHONPATH"] = str(ROOT / "src")
    cmd = [sys.executable, "-m", "rnnkit.cli", "stream", str(checkpoint), *extra]
    return subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1
    )


def _run(proc: subprocess.Popen, lines: list[str], rate: float, warm: int) -> dict:
    """Write ``lines`` at ``rate`` Hz, read each answer; latencies after the first ``warm``."""
    assert proc.stdin is not None and proc.stdout is not None
    latencies = []
    cpu0 = _cpu_seconds(proc.pid)
    due = time.perf_counter()
    for k, line in enumerate(lines):
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        proc.stdin.write(line)
        proc.stdin.flush()
        answer = proc.stdout.readline()
        done = time.perf_counter()
        if not answer:
            raise SystemExit("bench_stream_lines: the stream ended early")
        if k >= warm:
            latencies.append(done - due)
        due += 1.0 / rate
    cpu = _cpu_seconds(proc.pid) - cpu0
    lat = np.array(latencies) * 1e3
    return {
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "cpu_us_per_line": cpu / len(lines) * 1e6,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=int, default=40, help="the LSTM's input size (40)")
    ap.add_argument("--hidden", type=int, default=256, help="the LSTM's hidden size (256)")
    ap.add_argument("--rate", type=float, default=100.0, help="lines per second (100)")
    ap.add_argument("--lines", type=int, default=1000, help="lines per run (1000)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per side (3)")
    ap.add_argument("--quick", action="store_true", help="100 lines, one run per side")
    args = ap.parse_args()
    if args.quick:
        args.lines, args.repeats = 100, 1
    sys.path.insert(0, str(ROOT / "src"))
    from bench_machine import blas, describe, git_commit

    import rnnkit

    machine = describe(blas(), keep_env=True)
    machine["rnnkit_commit"] = git_commit(ROOT / "src")
    rng = np.random.default_rng(0)
    lines = [",".join(f"{v:.4f}" for v in rng.standard_normal(args.input)) + "\n"]
    lines = lines * args.lines
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {name: [] for name in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        model = rnnkit.LSTM(args.input, args.hidden, seed=0)
        checkpoint = rnnkit.save(model, Path(tmp) / "lstm.safetensors")
        procs = {name: _start(checkpoint, extra) for name, extra in SIDES.items()}
        try:
            for proc in procs.values():  # load and compile, untimed
                _run(proc, lines[:50], 1000.0, 0)
            for _ in range(args.repeats):
                for name, proc in procs.items():  # A B A B
                    runs[name].append(_run(proc, lines, args.rate, len(lines) // 10))
        finally:
            for proc in procs.values():
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait(timeout=60)
    result = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
    }
    print(json.dumps({"machine": machine, "result": result}), file=sys.stderr)
    print(
        f"Machine: {machine['cpu_model']}, {machine['cores']} cores; rnnkit commit "
        f"{machine['rnnkit_commit']}; LSTM({args.input}, {args.hidden}); {args.lines} lines per "
        f"run at {args.rate:g} per second, median of {args.repeats}, sides interleaved; load "
        f"average (1 min) {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after\n"
    )
    print("| rnnkit stream | p50 ms | p99 ms | CPU per line |")
    print("|---|---:|---:|---:|")
    for name, r in result.items():
        print(
            f"| {' '.join(SIDES[name])} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['cpu_us_per_line']:.0f} us |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
