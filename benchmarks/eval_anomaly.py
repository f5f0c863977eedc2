"""NAB (Numenta Anomaly Benchmark) on the files in ../shared/data/anomaly/nab/: rnnkit's
`AnomalyDetector` and a windowed-Gaussian detector written beside it, scored in the same run by
`rnnkit.nab` (the three profiles, threshold optimised over these files, normalised between the
null and the perfect detector), with the published scoreboard (all 58 files, standard profile).

Also measured: throughput in points per second per stream on one core (the whole-series path,
fit included and not, and the one-value-at-a-time `DetectorPool` path), and memory per stream.

With ``--seeds 0,1,2,3,4`` rnnkit is scored once per seed of its networks: the table shows
the mean over the seeds, then each seed and the lowest (throughput is timed on the first).

With ``--published NAB/results`` (the ``results`` folder of a checkout of numenta/NAB, which
holds each scoreboard detector's scores for every row of every file), those detectors are scored
by the same scorer on the same files, so that they compare with rnnkit exactly (the published
scoreboard is on all 58 files; these are fewer). Nothing is downloaded: the folder is optional.

``--data`` may also be a checkout of numenta/NAB (all 58 files, the windows in
``labels/``).

    python benchmarks/eval_anomaly.py [--data DIR] [--out runs/eval-anomaly] [--quick]
                                      [--seeds 0,1,2,3,4] [--published NAB/results]
                                      [--exclude DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RNNKIT_NUM_THREADS"):
    os.environ[_var] = "1"  # one core: the throughput asked for is per stream on one core

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rnnkit import nab  # noqa: E402
from rnnkit.estimators.anomaly import AnomalyDetector  # noqa: E402

Files = dict[str, tuple[np.ndarray, nab.Labelled]]  # name -> (scores, its labelled rows)

# NAB scoreboard (numenta/NAB README), standard profile, all 58 files
PUBLISHED = {
    "ARTime": 74.9,
    "Numenta HTM": 70.5,
    "CAD OSE": 69.9,
    "Random Cut Forest": 51.7,
    "Windowed Gaussian": 39.6,
    "Random": 11.0,
}
# the same detectors' own results files in a NAB checkout: folder name -> label
PUBLISHED_FILES = {
    "ARTime": "ARTime",
    "numenta": "Numenta HTM",
    "contextOSE": "CAD OSE",
    "randomCutForest": "Random Cut Forest",
    "windowedGaussian": "Windowed Gaussian",
}


def score_published(
    results: Path, names: list[str], labels: dict[str, nab.Labelled]
) -> tuple[dict[str, dict[str, float]], dict[str, Files]]:
    """Each scoreboard detector's own scores (NAB's ``results/<detector>/<category>/
    <detector>_<file>.csv``) on ``names``, by `rnnkit.nab`: profile -> normalised score; and
    the scores read, per detector."""
    table: dict[str, dict[str, float]] = {}
    read: dict[str, Files] = {}
    for folder, label in PUBLISHED_FILES.items():
        files: dict[str, tuple[np.ndarray, nab.Labelled]] = {}
        for name in names:
            category, file = name.split("/")
            path = results / folder / category / f"{folder}_{file}"
            if not path.is_file():
                raise SystemExit(f"--published: {path} is missing (expected NAB's results folder)")
            with open(path, newline="") as f:
                scores = np.array([float(r["anomaly_score"]) for r in csv.DictReader(f)])
            files[name] = (scores, labels[name])
        table[label] = {p: nab.score_corpus(files, p).score for p in nab.PROFILES}
        read[label] = files
    return table, read


def by_category(files: Files, threshold: float) -> dict[str, tuple[int, int, int]]:
    """Per NAB category, at one corpus threshold: (windows detected, windows, rows flagged
    outside every window), counted as `rnnkit.nab.score_corpus` counts them."""
    counts: dict[str, list[int]] = {}
    for name, (scores, lab) in files.items():
        c = counts.setdefault(name.split("/")[0], [0, 0, 0])
        flagged = (np.asarray(scores) >= threshold) & (lab.window != -2)
        inside = np.unique(lab.window[flagged & (lab.window >= 0)])
        c[0] += inside.size
        c[1] += int(np.unique(lab.window[lab.window >= 0]).size)
        c[2] += int(np.sum(flagged & (lab.window == -1)))
    return {k: (v[0], v[1], v[2]) for k, v in sorted(counts.items())}


def read_nab_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    ts = np.array([r["timestamp"] for r in rows], dtype="datetime64[ns]")
    return ts, np.array([float(r["value"]) for r in rows])


def windowed_gaussian(values: np.ndarray, window: int = 6400, step: int = 100) -> np.ndarray:
    """NAB's windowed-Gaussian baseline, from its description: a value scores one less the
    Gaussian tail probability ``Q(|x - mean| / sd)`` under the mean and standard deviation of
    up to ``window`` earlier values; the window grows value by value to ``window`` values, then
    slides ``step`` values at a time."""
    n = values.size
    c1 = np.concatenate([[0.0], np.cumsum(values)])
    c2 = np.concatenate([[0.0], np.cumsum(values * values)])
    scores = np.zeros(n)
    start, end = 0, 0  # the window is values[start:end]
    mean, sd = 0.0, 1.0
    for t in range(n):
        if end > 0:
            z = abs(values[t] - mean) / sd
            scores[t] = 1.0 - 0.5 * math.erfc(z / math.sqrt(2.0))
        if end - start < window:
            end = t + 1
        elif t + 1 - end == step:
            start, end = t + 1 - window, t + 1
        else:
            continue
        k = end - start
        mean = (c1[end] - c1[start]) / k
        sd = math.sqrt(max((c2[end] - c2[start]) / k - mean * mean, 0.0)) or 1e-6
    return scores


def machine() -> dict:
    import bench_machine

    versions = bench_machine.versions()
    return {
        "cpu_model": bench_machine.cpu_model(),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "versions": {k: versions.get(k) for k in ("python", "numpy", "numba")},
        "threads": {k: os.environ[k] for k in os.environ if k.endswith("_NUM_THREADS")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "anomaly" / "nab"))
    ap.add_argument("--out", default="runs/eval-anomaly")
    ap.add_argument("--quick", action="store_true", help="4 files, a short fit (a smoke test)")
    ap.add_argument("--params", default="{}", help="AnomalyDetector parameters as JSON")
    ap.add_argument("--seeds", default="0", help="seeds of rnnkit's networks, comma-separated")
    ap.add_argument(
        "--exclude",
        default=None,
        help="skip the files that this folder's data/ holds (default: none); with --data a NAB "
        "checkout, --exclude ../shared/data/anomaly/nab scores the 34 files not in the shared "
        "folder",
    )
    ap.add_argument(
        "--published",
        default=None,
        help="the results folder of a numenta/NAB checkout: score its detectors on these files",
    )
    args = ap.parse_args()
    data = Path(args.data)
    labels_file = data / "combined_windows.json"
    if not labels_file.is_file():  # a checkout of numenta/NAB keeps it in labels/
        labels_file = data / "labels" / "combined_windows.json"
    windows = nab.read_windows(labels_file)
    names = sorted(n for n in windows if (data / "data" / n).is_file())
    if args.exclude:
        names = [n for n in names if not (Path(args.exclude) / "data" / n).is_file()]
    params = json.loads(args.params)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        names = names[:: max(1, len(names) // 4)][:4]
        params.setdefault("steps", 10)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {json.dumps(machine())}", flush=True)
    print(f"NAB: {len(names)} files from {data}; AnomalyDetector({params})", flush=True)

    warm = np.sin(np.arange(200) / 5.0)  # compile the kernels before anything is timed
    AnomalyDetector(probation=50, steps=2).fit(warm).detect(warm)
    results: dict[str, dict[str, tuple[np.ndarray, nab.Labelled]]] = {"rnnkit": {}, "gauss": {}}
    points, fit_s, detect_s, gauss_s = 0, 0.0, 0.0, 0.0
    rows: dict[str, tuple[np.ndarray, nab.Labelled]] = {}
    for name in names:
        ts, values = read_nab_csv(data / "data" / name)
        labels = nab.label_rows(ts, windows[name], name)
        probation = nab.probation_length(values.size)
        det = AnomalyDetector(probation=probation, **{"seed": seeds[0], **params})
        t0 = time.perf_counter()
        det.fit(values)
        t1 = time.perf_counter()
        scores = det.detect(values)
        t2 = time.perf_counter()
        g = windowed_gaussian(values)
        t3 = time.perf_counter()
        fit_s, detect_s, gauss_s = fit_s + t1 - t0, detect_s + t2 - t1, gauss_s + t3 - t2
        points += values.size
        rows[name] = (values, labels)
        results["rnnkit"][name] = (scores, labels)
        results["gauss"][name] = (g, labels)
        print(
            f"  {name:58s} {values.size:6d} rows  fit {t1 - t0:5.2f} s  detect {t2 - t1:5.3f} s",
            flush=True,
        )

    # the other seeds, scored (not timed)
    per_seed = {seeds[0]: results["rnnkit"]}
    for seed in seeds[1:]:
        per_seed[seed] = {}
        for name in names:
            values, labels = rows[name]
            det = AnomalyDetector(probation=nab.probation_length(values.size), seed=seed, **params)
            per_seed[seed][name] = (det.fit_detect(values), labels)
        print(f"  seed {seed} scored", flush=True)
    seed_scores = {
        seed: {p: nab.score_corpus(files, p) for p in nab.PROFILES}
        for seed, files in per_seed.items()
    }

    # one value at a time through a DetectorPool, on the longest file
    longest = max(names, key=lambda n: (data / "data" / n).stat().st_size)
    _, values = read_nab_csv(data / "data" / longest)
    det = AnomalyDetector(
        probation=nab.probation_length(values.size), **{"seed": seeds[0], **params}
    ).fit(values)
    batch = det.detect(values)
    pool = det.pool()
    t0 = time.perf_counter()
    streamed = np.array([pool.update("s", v) for v in values])
    stream_s = time.perf_counter() - t0
    agree = float(np.max(np.abs(streamed - batch)))

    table = {"gauss": {p: nab.score_corpus(results["gauss"], p) for p in nab.PROFILES}}
    mean_over_seeds = {
        p: float(np.mean([s[p].score for s in seed_scores.values()])) for p in nab.PROFILES
    }
    print()
    print(f"{'detector':38s}{'standard':>10s}{'low FP':>10s}{'low FN':>10s}   files")
    rows_out = [(f"rnnkit AnomalyDetector{' (mean)' if len(seeds) > 1 else ''}", mean_over_seeds)]
    rows_out += [("windowed Gaussian (ours)", {p: r.score for p, r in table["gauss"].items()})]
    for label, s in rows_out:
        print(
            f"{label:38s}{s['standard']:10.1f}{s['reward_low_FP_rate']:10.1f}"
            f"{s['reward_low_FN_rate']:10.1f}   these {len(names)}"
        )
    published, published_files = (
        score_published(Path(args.published), names, {n: rows[n][1] for n in names})
        if args.published
        else ({}, {})
    )
    for label, s in published.items():
        print(
            f"{label + ' (its results files)':38s}{s['standard']:10.1f}"
            f"{s['reward_low_FP_rate']:10.1f}{s['reward_low_FN_rate']:10.1f}   these {len(names)}"
        )
    for label, value in PUBLISHED.items():
        print(f"{label + ' (published)':38s}{value:10.1f}{'':>20s}   all 58")
    print()
    for seed, profiles in seed_scores.items():
        std = profiles["standard"]
        print(
            f"rnnkit seed {seed}: {std.score:.1f} / {profiles['reward_low_FP_rate'].score:.1f} / "
            f"{profiles['reward_low_FN_rate'].score:.1f}; standard threshold {std.threshold:.4f}, "
            f"windows detected {std.tp}/{std.tp + std.fn}, false-positive rows {std.fp}"
        )
    # where the windows are found and the false alarms raised, at each detector's threshold
    sides = {f"rnnkit seed {seeds[0]}": (per_seed[seeds[0]], seed_scores[seeds[0]])}
    sides.update(
        {k: (f, {"standard": nab.score_corpus(f, "standard")}) for k, f in published_files.items()}
    )
    categories: dict[str, dict[str, tuple[int, int, int]]] = {}
    print("\nper category, standard threshold: windows detected / windows, false-positive rows")
    for label, (files, profiles) in sides.items():
        categories[label] = by_category(files, profiles["standard"].threshold)
    for category in categories[next(iter(categories))]:
        cells = "  ".join(
            "{:3d}/{:<3d} fp {:4d}".format(*categories[k][category]) for k in categories
        )
        print(f"  {category:24s} {cells}")
    print(f"  {'(columns)':24s} {' | '.join(categories)}")
    # where the score is lost, file by file, at each detector's own standard threshold
    lost = {
        label: nab.points_lost(files, profiles["standard"].threshold)
        for label, (files, profiles) in sides.items()
    }
    shown = [k for k in lost if k.startswith("rnnkit") or k in ("ARTime", "Numenta HTM")]
    print("\npoints lost against a perfect detector (standard): missed (highest score) / late /")
    print(f"false-positive rows = points / lost; {' | '.join(shown)} (all in the report)")
    for file in lost[next(iter(lost))]:
        cells = " | ".join(
            "{missed} ({hi}) / {late:.2f} / {fp_rows} = {fp:.2f} / {lost:.2f}".format(
                hi=",".join(f"{h:.2f}" for h in lost[k][file]["missed_highest"]) or "-",
                **lost[k][file],
            )
            for k in shown
        )
        short = file.split("/")[-1].removesuffix(".csv")
        print(f"  {short:40s} {lost[next(iter(lost))][file]['windows']:2.0f}  {cells}")
    for label, d in lost.items():
        total = sum(v["lost"] for v in d.values())
        print(
            f"  {label}: lost {total:.2f} (missed {sum(v['missed'] for v in d.values()):.0f}, "
            f"late {sum(v['late'] for v in d.values()):.2f}, false-positive rows "
            f"{sum(v['fp_rows'] for v in d.values()):.0f} = {sum(v['fp'] for v in d.values()):.2f})"
        )
    standard = [s["standard"].score for s in seed_scores.values()]
    print(
        f"rnnkit standard over seeds {seeds}: mean {np.mean(standard):.1f}, "
        f"min {np.min(standard):.1f}, max {np.max(standard):.1f}"
    )
    memory = det.memory_per_stream()
    throughput = {
        "detect (whole series, one core)": round(points / detect_s),
        "fit + detect": round(points / (fit_s + detect_s)),
        "one value at a time (DetectorPool)": round(values.size / stream_s),
        "windowed Gaussian": round(points / gauss_s),
    }
    report = {
        "files": len(names),
        "points": points,
        "scores": {
            "rnnkit_mean_over_seeds": {p: round(v, 2) for p, v in mean_over_seeds.items()},
            "gauss": {p: round(r.score, 2) for p, r in table["gauss"].items()},
            "published_results_files": {
                k: {p: round(v, 2) for p, v in d.items()} for k, d in published.items()
            },
        },
        "rnnkit_per_seed": {
            seed: {p: round(r.score, 2) for p, r in s.items()} for seed, s in seed_scores.items()
        },
        "thresholds": {
            seed: {p: r.threshold for p, r in s.items()} for seed, s in seed_scores.items()
        },
        "by_category_windows_detected_windows_fp_rows": categories,
        "points_lost_per_file": lost,
        "throughput_points_per_s": throughput,
        "stream_equals_batch_max_diff": agree,
        "memory_per_stream_bytes": memory,
        "params": det.get_params(),
        "machine": machine(),
    }
    for k, v in throughput.items():
        print(f"throughput, {k}: {v:,} points/s")
    print(f"one value at a time vs whole series on {longest}: max |difference| {agree:.1e}")
    print(f"memory per stream after its probationary period: {memory:,} bytes (constant)")
    path = out / ("nab-quick.json" if args.quick else "nab.json")
    path.write_text(json.dumps(report, indent=1, default=str))
    print(f"report: {path}")


if __name__ == "__main__":
    main()
