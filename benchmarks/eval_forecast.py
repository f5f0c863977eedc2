"""M4 Hourly (414 series, horizon 48, season 24): rnnkit's Forecaster beside statsforecast,
the seasonal naive and naive-2, scored with M4's sMAPE, MASE and OWA (`rnnkit.forecast_metrics`),
with the published numbers of the competition beside them.

    python benchmarks/eval_forecast.py [--minutes 10] [--out runs/eval-forecast] [--quick]

The competition's wide files (``"V1"`` the id, then the values) are converted to the long
format (``unique_id,ds,y`` with ``ds`` = 1, 2, ...) that ``rnnkit train forecast`` reads. Each
side runs in its own process, one after the other, with the same thread pins: rnnkit through
its command line (``rnnkit train forecast`` on the training file, ``rnnkit forecast`` of the
48 steps after it), statsforecast's AutoETS and AutoTheta with season 24 through this script's
``--side`` worker. The seasonal naive and naive-2 are computed here by rnnkit's own metrics
module: they reproduce M4's published 13.912 and 18.383 exactly, a check of the metrics.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rnnkit.forecast_metrics import naive2, score_forecasts, seasonal_naive  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "forecasting" / "m4-hourly"
HORIZON, SEASON = 48, 24
PINS = {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}

# M4 "Evaluation and Ranks", hourly totals: (sMAPE, MASE, OWA)
PUBLISHED = {
    "seasonal naive (M4)": (13.912, 1.193, 0.627),
    "naive-2 (M4)": (18.383, 2.395, 1.000),
    "M4 RNN benchmark": (14.698, 3.048, 1.036),
    "M4 MLP benchmark": (13.842, 2.607, 0.921),
    "ES-RNN, winner (Smyl)": (9.328, 0.893, 0.440),
}


def read_wide(path: Path, limit: int | None = None) -> dict[str, np.ndarray]:
    """M4's wide CSV: the id, then the values, rows padded with empty fields."""
    out: dict[str, np.ndarray] = {}
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for row in reader:
            out[row[0]] = np.array([float(v) for v in row[1:] if v.strip()])
            if limit is not None and len(out) == limit:
                break
    return out


def write_long(series: dict[str, np.ndarray], path: Path) -> Path:
    """``unique_id,ds,y``, ``ds`` counting each series' steps from 1."""
    with open(path, "w") as fh:
        fh.write("unique_id,ds,y\n")
        for uid, values in series.items():
            fh.writelines(f"{uid},{k + 1},{v:g}\n" for k, v in enumerate(values))
    return path


def read_forecasts(path: Path, ids: list[str]) -> dict[str, np.ndarray]:
    """Columns y_hat (and y_lo_80, y_hi_80) of ``rnnkit forecast``'s CSV, per series."""
    rows: dict[str, list[list[float]]] = {uid: [] for uid in ids}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            rows[row["unique_id"]].append(
                [float(row["y_hat"]), float(row["y_lo_80"]), float(row["y_hi_80"])]
            )
    return {uid: np.array(r) for uid, r in rows.items()}


def env() -> dict[str, str]:
    return {**os.environ, **PINS, "PYTHONPATH": str(ROOT / "src")}


# -- the sides -----------------------------------------------------------------------------------
def run_rnnkit(long_csv: Path, out: Path, minutes: float, models: int, log: Path) -> dict:
    model = out / "m4-hourly.safetensors"
    train = [
        sys.executable, "-m", "rnnkit.cli", "train", "forecast", "--csv", str(long_csv),
        "--horizon", str(HORIZON), "--season", str(SEASON), "--minutes", str(minutes),
        "--models", str(models), "--patience", "0", "--out", str(model), "--json", "--force",
    ]  # fmt: skip
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        done = subprocess.run(train, env=env(), stdout=subprocess.PIPE, stderr=fh, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"eval_forecast: rnnkit train forecast failed (see {log})")
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    forecasts = out / "rnnkit-forecasts.csv"
    predict = [
        sys.executable, "-m", "rnnkit.cli", "forecast", str(model), "--csv", str(long_csv),
        "--out", str(forecasts), "--plot", str(out / "rnnkit-forecasts.png"), "--force",
    ]  # fmt: skip
    t1 = time.perf_counter()
    subprocess.run(predict, env=env(), check=True, stdout=subprocess.DEVNULL)
    return {
        "forecasts": str(forecasts),
        "train_seconds": seconds,
        "forecast_seconds": time.perf_counter() - t1,
        "validation": metrics,
    }


def statsforecast_side(train_path: str, out_path: str, limit: int | None) -> None:
    """The worker: AutoETS and AutoTheta (season 24) on every series, forecasts to ``.npz``."""
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta

    series = read_wide(Path(train_path), limit)
    frame = pd.DataFrame(
        [(uid, k + 1, v) for uid, values in series.items() for k, v in enumerate(values)],
        columns=["unique_id", "ds", "y"],
    )
    result: dict[str, Any] = {}
    for name, model in (
        ("AutoETS", AutoETS(season_length=SEASON)),
        ("AutoTheta", AutoTheta(season_length=SEASON)),
    ):
        t0 = time.perf_counter()
        sf = StatsForecast(models=[model], freq=1, n_jobs=2)
        fc = sf.forecast(df=frame, h=HORIZON)
        seconds = time.perf_counter() - t0
        col = [c for c in fc.columns if c not in ("unique_id", "ds")][0]
        fc = fc.reset_index() if "unique_id" not in fc.columns else fc
        values = np.stack([fc.loc[fc["unique_id"] == uid, col].to_numpy() for uid in series])
        result[name] = values
        result[name + "_seconds"] = np.array(seconds)
    np.savez(out_path, **result)


def run_statsforecast(train: Path, out: Path, limit: int | None) -> dict | None:
    target = out / "statsforecast.npz"
    cmd = [sys.executable, __file__, "--side", "statsforecast", "--out", str(out)]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    done = subprocess.run(cmd, env=env(), stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["?"]
        print(f"statsforecast: not run ({tail[0]}); pip install statsforecast", file=sys.stderr)
        return None
    data = np.load(target)
    return {k: data[k] for k in data.files}


# -- the report ----------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="rnnkit's training budget")
    p.add_argument("--models", type=int, default=3, help="rnnkit's ensemble size")
    p.add_argument("--out", default="runs/eval-forecast", help="folder for the results")
    p.add_argument("--quick", action="store_true", help="40 series, 1 minute: a smoke test")
    p.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--side", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    limit = 40 if args.quick else args.limit
    if args.side == "statsforecast":
        statsforecast_side(str(DATA / "Hourly-train.csv"), str(out / "statsforecast.npz"), limit)
        return
    minutes = 1.0 if args.quick else args.minutes

    import bench_machine

    train = read_wide(DATA / "Hourly-train.csv", limit)
    test = read_wide(DATA / "Hourly-test.csv", limit)
    ids = list(train)
    history = [train[i] for i in ids]
    actual = [test[i][:HORIZON] for i in ids]
    print(
        f"M4 Hourly: {len(ids)} series, {min(map(len, history))}-{max(map(len, history))} "
        f"points, horizon {HORIZON}, season {SEASON}; machine: {bench_machine.cpu_model()}, "
        f"{os.cpu_count()} cores, pins {PINS}",
        file=sys.stderr,
    )
    long_csv = write_long(train, out / "m4-hourly-train-long.csv")

    rows: list[tuple[str, float, float, float, str]] = []

    def score(name: str, forecasts, lower=None, upper=None, note: str = "") -> dict:
        s = score_forecasts(history, actual, list(forecasts), SEASON, lower, upper, alpha=0.2)
        rows.append((name, s.smape, s.mase, s.owa, note))
        return s.as_dict()

    results: dict = {"series": len(ids), "published": PUBLISHED}
    results["seasonal_naive"] = score(
        "seasonal naive (rnnkit.forecast_metrics)",
        [seasonal_naive(x, SEASON, HORIZON) for x in history],
    )
    results["naive2"] = score(
        "naive-2 (rnnkit.forecast_metrics)", [naive2(x, SEASON, HORIZON) for x in history]
    )

    print(f"rnnkit: training for {minutes:g} minutes ...", file=sys.stderr)
    side = run_rnnkit(long_csv, out, minutes, args.models, out / "rnnkit-train.log")
    fc = read_forecasts(Path(side["forecasts"]), ids)
    note = f"train {side['train_seconds'] / 60:.1f} min on 2 cores ({args.models} seeds)"
    results["rnnkit"] = score(
        "rnnkit Forecaster",
        [fc[i][:, 0] for i in ids],
        [fc[i][:, 1] for i in ids],
        [fc[i][:, 2] for i in ids],
        note,
    ) | {k: v for k, v in side.items() if k != "forecasts"}

    print("statsforecast: AutoETS and AutoTheta ...", file=sys.stderr)
    peer = run_statsforecast(DATA / "Hourly-train.csv", out, limit)
    if peer is not None:
        for name in ("AutoETS", "AutoTheta"):
            seconds = float(peer[name + "_seconds"])
            results[name] = score(
                f"statsforecast {name} (season 24)",
                list(peer[name]),
                note=f"fit + forecast {seconds / 60:.1f} min on 2 cores",
            ) | {"seconds": seconds}

    lines = [
        f"M4 Hourly, {len(ids)} series, horizon {HORIZON}: sMAPE / MASE / OWA (lower is better)",
        "",
        "| method | sMAPE | MASE | OWA | note |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {s:.3f} | {m:.3f} | {o:.3f} | {note} |" for n, s, m, o, note in rows]
    if not args.quick and limit is None:
        lines += [f"| {n} | {s:.3f} | {m:.3f} | {o:.3f} | published |" for n, (s, m, o) in
                  PUBLISHED.items()]  # fmt: skip
    cov = results["rnnkit"].get("coverage")
    if cov is not None:
        lines.append(
            f"\nrnnkit's 80 % intervals: coverage {cov:.3f}, MSIS {results['rnnkit']['msis']:.3f}"
        )
    text = "\n".join(lines)
    print(text)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
