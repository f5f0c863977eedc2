"""Many series on Ray or Dask: series per second of ``--engine local``, Ray and Dask with 1 and 2
workers, forecasting M4 Hourly and scoring the NAB files (`rnnkit.engines`).

    python benchmarks/bench_engines.py [--rounds 3] [--copies 8] [--out runs/bench-engines]

Setup (this process): a small `Forecaster` is trained on M4 Hourly (414 series; read as
``eval_forecast.py`` reads it) and an `AnomalyDetector` fitted on the probationary periods of
the 24 NAB files (``../shared/data/anomaly/nab/data``), both saved. The data are each series
``--copies`` (``--copies-detect``) times, so that there is work to share: 414 x 8 = 3,312
series to forecast, 24 x 2 = 48 streams (247,092 values) to score.

Each side (local, ray x1, ray x2, dask x1, dask x2) runs in its own process, all with one
thread per process (``RNNKIT_NUM_THREADS``, ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` = 1)
and `rnnkit.tune_process`'s malloc settings: local is that one process; the engines' workers
are processes of one thread each, tuned the same way. A side
measures: **startup**, the seconds from nothing to the end of the first forecast (the
cluster's start, the workers importing rnnkit and loading the model, one pass); then
**warm** series per second, the median of ``--warm`` more passes on the running cluster; the
same for detection (its first pass loads the detector on each worker). The sides run in
rotating order, ``--rounds`` times (interleaved); the table shows the medians over rounds and
the ratios against local measured in the same run, and checks that every side's forecasts and
scores are the local ones bit for bit (a SHA-256 of the arrays).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_machine  # noqa: E402
from eval_forecast import DATA as M4  # noqa: E402, I001
from eval_forecast import HORIZON, SEASON, read_wide  # noqa: E402

NAB = ROOT.parent / "shared" / "data" / "anomaly" / "nab" / "data"
SIDES = {"local": ("local", None), "ray x1": ("ray", 1), "ray x2": ("ray", 2)}
SIDES |= {"dask x1": ("dask", 1), "dask x2": ("dask", 2)}
PINS = {"RNNKIT_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


# -- setup ---------------------------------------------------------------------------------------
def setup(out: Path, steps: int) -> None:
    """Train the small forecaster, fit the detector; save both."""
    from rnnkit import AnomalyDetector, Forecaster
    from rnnkit.engines import to_bytes
    from rnnkit.nab import probation_length

    series = list(read_wide(M4 / "Hourly-train.csv").values())
    forecaster = Forecaster(
        horizon=HORIZON, season=SEASON, n_models=1, hidden_size=32, steps=steps, seed=0
    )
    t0 = time.perf_counter()
    forecaster.fit(series)
    print(f"setup: forecaster trained on {len(series)} M4 Hourly series in "
          f"{time.perf_counter() - t0:.0f} s ({steps} steps)", file=sys.stderr)  # fmt: skip
    (out / "forecaster.safetensors").write_bytes(to_bytes(forecaster))  # rnnkit.save's file
    values = nab_values()
    probation = max(probation_length(min(len(v) for v in values)), 16)
    detector = AnomalyDetector(probation=probation, seed=0).fit(values)
    (out / "detector.safetensors").write_bytes(to_bytes(detector))


def nab_values() -> list[np.ndarray]:
    """The value column of each NAB file (as ``eval_anomaly.py`` reads them)."""
    out = []
    for path in sorted(NAB.glob("*/*.csv")):
        with open(path, newline="") as fh:
            out.append(np.array([float(r["value"]) for r in csv.DictReader(fh)]))
    return out


# -- one side, in its own process ------------------------------------------------------------------
def side(name: str, out: Path, copies: tuple[int, int], warm: int) -> dict:
    """Startup and warm throughput of one side, forecasting then detecting."""
    from rnnkit import Engine, engines, load, tune_process

    tune_process()  # as the `rnnkit` command does; the engines' workers do it too
    from rnnkit.data.windows import as_series

    kind, count = SIDES[name]
    workers = count or 1
    forecaster, detector = load(out / "forecaster.safetensors"), load(out / "detector.safetensors")
    m4 = list(read_wide(M4 / "Hourly-train.csv").values()) * copies[0]
    series, _ = as_series(m4, None, None, "predict")
    streams = nab_values() * copies[1]
    t0 = time.perf_counter()
    if kind == "ray":
        engines.start_ray(workers)
    elif kind == "dask":
        cluster, client = engines.start_dask(workers)
    engine = Engine(kind)  # the cluster just started (local: this process)
    result: dict = {"side": name}
    digest = hashlib.sha256()
    for task, run, count in (
        ("forecast", lambda: forecaster.forecast_series(series, (0.1, 0.9), engine), len(m4)),
        ("detect", lambda: detector.detect(streams, engine), len(streams)),
    ):
        t1 = time.perf_counter()
        first = run()
        startup = time.perf_counter() - (t0 if task == "forecast" else t1)
        times = []
        for _ in range(warm):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        for a in first:  # forecasts (point, quantiles) or each stream's scores
            digest.update(np.ascontiguousarray(a).tobytes())
        result[task] = {
            "startup_s": startup,
            "warm_series_per_s": count / statistics.median(times),
            "series": count,
        }
    result["sha256"] = digest.hexdigest()
    if kind == "ray":
        import ray

        ray.shutdown()
    elif kind == "dask":
        client.close()
        cluster.close()
    return result


# -- the orchestrator ----------------------------------------------------------------------------
def run_side(name: str, out: Path, copies: tuple[int, int], warm: int) -> dict:
    env = {**os.environ, **PINS, "PYTHONPATH": str(ROOT / "src")}
    argv = [sys.executable, __file__, "--side", name, "--out", str(out), "--warm", str(warm)]
    argv += ["--copies", str(copies[0]), "--copies-detect", str(copies[1])]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench_engines: side {name!r} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(runs: list[dict], machine: list[str], load: tuple[float, float]) -> str:
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(r["side"], []).append(r)

    def med(name: str, task: str, key: str) -> float:
        return statistics.median(r[task][key] for r in by[name])

    lines = [
        *machine,
        f"Load average over the run: {load[0]:.1f} at the start, {load[1]:.1f} at the end "
        f"(the machine is shared: its 2 cores ran other work too).",
        "",
        "| side | forecast: startup s | forecast: series/s (warm) | vs local | "
        "detect: startup s | detect: streams/s (warm) | vs local | same numbers as local |",
        "|---|---|---|---|---|---|---|---|",
    ]
    local_hash = by["local"][0]["sha256"]
    for name in SIDES:
        f, d = med(name, "forecast", "warm_series_per_s"), med(name, "detect", "warm_series_per_s")
        f0 = med("local", "forecast", "warm_series_per_s")
        d0 = med("local", "detect", "warm_series_per_s")
        same = all(r["sha256"] == local_hash for r in by[name])
        lines.append(
            f"| {name} | {med(name, 'forecast', 'startup_s'):.1f} | {f:,.0f} | {f / f0:.2f}x | "
            f"{med(name, 'detect', 'startup_s'):.1f} | {d:,.1f} | {d / d0:.2f}x | "
            f"{'yes' if same else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repeats (default: 3)")
    ap.add_argument("--copies", type=int, default=8, help="copies of each M4 series (default: 8)")
    ap.add_argument(
        "--copies-detect", type=int, default=2, help="copies of each NAB file (default: 2)"
    )
    ap.add_argument("--warm", type=int, default=3, help="warm passes per side (default: 3)")
    ap.add_argument("--steps", type=int, default=300, help="forecaster steps (default: 300)")
    ap.add_argument("--out", default="runs/bench-engines", help="(default: runs/bench-engines)")
    ap.add_argument("--side", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    if args.side:
        copies = (args.copies, args.copies_detect)
        print(json.dumps(side(args.side, out, copies, args.warm)))
        return
    out.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    setup(out, args.steps)
    runs = []
    names = list(SIDES)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotating order
        for name in order:
            runs.append(run_side(name, out, (args.copies, args.copies_detect), args.warm))
            print(f"round {r + 1}: {name}: {json.dumps(runs[-1])}", file=sys.stderr)
    machine = bench_machine.describe(bench_machine.blas(), keep_env=True)
    text = table(runs, bench_machine.header(machine), (load0, os.getloadavg()[0]))
    (out / "bench-engines.json").write_text(json.dumps({"machine": machine, "runs": runs}))
    (out / "bench-engines.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
