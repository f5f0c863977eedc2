"""A probe (not a benchmark): `AnomalyDetector` settings that leave its network alone, scored on
the 24 NAB files of the shared folder, the other 34 and all 58 in one run.

Each file's network is fitted once per seed (as `eval_anomaly.py` fits it) and its outputs are
kept (``--cache``, one pickle per seed), then the rest of the detector runs on them for each
config, by `AnomalyDetector._parts` and the same combination as `AnomalyDetector._detect_one`
(the largest part, 1 out of range, the alarm's rest): the defaults score what
`eval_anomaly.py` scores. A config is `AnomalyDetector` parameters as JSON, and may also hold
``"_drop_level_on_log": true``: no recent level on the values as they came for a series whose
network reads the log scale (it keeps ``level_log``'s); ``"_weights": {"network": 0.95}``:
a part's scores scaled (on top of ``network_weight``); ``"_echo": 0.4``: the seasonal
difference without echoes (a value whose seasonal score reaches 0.4 is not the next period's
prediction; tried, not in rnnkit); ``"_filter": 0.4``: the network reads its own prediction
instead of a value whose network score reaches 0.4 (`network_filtered`; tried, not in
rnnkit); ``"_rare": {"share": 0.001, "log_only": true, "parts": ["level"]}``: a part's alarms
halved at a value that at least ``share`` of the last 8,640 values reached (`common_halved`;
tried, not in rnnkit); ``"_echo_net": {"body": 1.0, "prev": 2.0, "back": 3}``: a part's
(the network's by default) alarms halved at an ordinary value after an outlier
(`echo_halved`). ``--learn-every N``: the networks keep learning as
``AnomalyDetector(learn_every=N)`` makes them (kept in their own pickles).

With ``--attribute``, for the first config and seed: which part was the largest at each row
flagged outside every window at the standard threshold (all 58), per category.
With ``--diagnose NAB/results``, for the first config and seed: per file of the 24 and of the
34, the points lost against a perfect detector (missed windows, late detections, false-positive
rows by part) by rnnkit and by Numenta HTM's own results files, each at its own threshold.

    python benchmarks/probe_anomaly.py --data /tmp/NAB --seeds 0,1,2,3,4 \\
        --configs '[{"surprise": "mixture", "level_log": false, "season_rise": false}, {}]'

Prints the standard score of each config on each set, per seed, then the mean [lowest-highest].
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
from collections import Counter
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RNNKIT_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval_anomaly import read_nab_csv  # noqa: E402

from rnnkit import nab  # noqa: E402
from rnnkit.estimators.anomaly import CLIP, AnomalyDetector, scale_of  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "anomaly" / "nab"
SETS = ("24", "34", "58")
OTHER_PROFILES = ("reward_low_FP_rate", "reward_low_FN_rate")


def networks(
    files: dict, seed: int, cache: Path, learn_every: int = 0
) -> dict[str, tuple[Any, np.ndarray]]:
    """Each file's fitted network and its outputs over the whole series, for one seed (with
    ``learn_every``, those of the network that keeps learning)."""
    path = cache / (f"seed{seed}.pkl" if not learn_every else f"seed{seed}-learn{learn_every}.pkl")
    if path.is_file():
        return pickle.loads(path.read_bytes())
    nets = {}
    for name, (values, _) in files.items():
        P = nab.probation_length(values.size)
        det = AnomalyDetector(probation=P, seed=seed, learn_every=learn_every).fit(values)
        x, _ = det._model_space(values, values[:P])
        mean, sd = scale_of(x[:P])
        nets[name] = (det.model_, det._network_out(np.clip((x - mean) / sd, -CLIP, CLIP), P))
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(nets))
    return nets


def parts_of(values: np.ndarray, net: tuple[Any, np.ndarray], seed: int, cfg: dict) -> dict:
    params = {k: v for k, v in cfg.items() if not k.startswith("_")}
    det = AnomalyDetector(probation=nab.probation_length(values.size), seed=seed, **params)
    assert not det.learn_every, "learn_every is set by --learn-every, for the cached networks"
    det.model_, out = net
    det._network_out = lambda z, P: out  # type: ignore[method-assign]
    parts = det._parts(values)
    if cfg.get("_drop_level_on_log") and "level_log" in parts:
        del parts["level"]
    if cfg.get("_echo") and "seasonal" in parts:
        parts["seasonal"] = seasonal_no_echo(det, values, float(cfg["_echo"]))
    if cfg.get("_level_var"):  # the recent levels' spread from the stream's own history
        for name in [
            k for k in ("level", "level_log") if k in parts and cfg["_level_var"] in ("both", k)
        ]:
            parts[name] = level_history_spread(det, values, name, bool(cfg.get("_larger")))
    if cfg.get("_rare"):  # parts' alarms at values the stream has often had: halved
        rare = cfg["_rare"]
        for name in rare.get("parts", ["level", "level_log"]):
            if name in parts and ("level_log" in parts or not rare.get("log_only")):
                parts[name] = common_halved(det, values, parts[name], rare)
    if cfg.get("_echo_net"):  # a part's echo of an outlier (the network's by default)
        for name in cfg["_echo_net"].get("parts", ["network"]):
            if name in parts:
                parts[name] = echo_halved(det, values, parts[name], cfg["_echo_net"])
    if cfg.get("_resolution"):  # the recent levels' alarms at a change small beside the range
        for name in ("level", "level_log"):
            if name in parts:
                parts[name] = small_halved(det, values, parts[name], float(cfg["_resolution"]))
    if cfg.get("_resolution_net") and "network" in parts:  # the same for the network's alarms
        parts["network"] = small_halved(
            det, values, parts["network"], float(cfg["_resolution_net"])
        )
    if cfg.get("_filter") and "network" in parts:
        parts["network"] = network_filtered(det, values, float(cfg["_filter"]))
    for name, weight in cfg.get("_weights", {}).items():  # a part's scores scaled
        if name in parts:
            parts[name] = parts[name] * weight
    P = det.probation
    return {"parts": parts, "alarm": det._alarm(values[:P]), "probation": P, "values": values[P:]}


def seasonal_no_echo(det: AnomalyDetector, s: np.ndarray, level: float) -> np.ndarray:
    """The seasonal part where a value whose seasonal score reaches ``level`` is not kept as
    the reference one period later (the prediction it failed is kept instead)."""
    from rnnkit.estimators import likelihood

    P = det.probation
    x, _ = det._model_space(s, s[:P])
    mean, sd = scale_of(x[:P])
    z = np.clip((x - mean) / sd, -CLIP, CLIP)
    period, svar, _ = det._season_of(z[:P])
    ref = z.copy()
    state = likelihood.new_state(det.short_window, det.long_window)
    out = np.empty(z.size - period)
    w = det._windows()
    for k in range(period, z.size):
        out[k - period] = likelihood.step(state, z[k] - ref[k - period], svar, *w)
        if out[k - period] >= level:
            ref[k] = ref[k - period]
    return out[P - period :]


def level_history_spread(
    det: AnomalyDetector, s: np.ndarray, name: str, larger: bool = False
) -> np.ndarray:
    """A recent level whose error ``z_t - mean(z_{t-W} .. z_{t-1})`` is judged against the
    mean square of the level's own errors over the last ``long_window`` rows (the stream's own
    history of that statistic), not against the variance of the window's values (tried, not in
    rnnkit)."""
    from rnnkit.estimators import likelihood

    P = det.probation
    x, logged = det._model_space(s, s[:P])
    if name == "level" and logged:
        z = det._level_space(s, P)
    else:
        mean, sd = scale_of(x[:P])
        z = np.clip((x - mean) / sd, -CLIP, CLIP)
    W, L = P, int(det.long_window)
    c = np.concatenate(([0.0], np.cumsum(z)))
    t = np.arange(z.size)
    n = np.minimum(t, W)
    err = np.zeros(z.size)
    ok = n >= 2
    err[ok] = z[ok] - (c[t[ok]] - c[t[ok] - n[ok]]) / n[ok]
    e2 = np.concatenate(([0.0], np.cumsum(err**2)))
    m = np.minimum(t, L)  # the errors before t (those of rows 0-1 are 0)
    var = np.full(z.size, 1.0)
    has = m >= 1
    var[has] = (e2[t[has]] - e2[t[has] - m[has]]) / m[has]
    if larger:  # the larger of that and the window's own variance
        c2 = np.concatenate(([0.0], np.cumsum(z**2)))
        wvar = np.zeros(z.size)
        wmean = (c[t[ok]] - c[t[ok] - n[ok]]) / n[ok]
        wvar[ok] = (c2[t[ok]] - c2[t[ok] - n[ok]]) / n[ok] - wmean**2
        var = np.maximum(var, wvar)
    var = np.maximum(var, 1e-6)
    out = np.zeros(z.size)
    state = likelihood.new_state(det.short_window, det.long_window)
    idx = np.flatnonzero(ok)
    scored = np.empty(idx.size)
    likelihood.run(state, err[idx], var[idx], *det._windows(), scored)
    out[idx] = scored
    return out[P:]


def common_halved(det: AnomalyDetector, s: np.ndarray, part: np.ndarray, rare: dict) -> np.ndarray:
    """A part's scores where they reach the alarm level, halved when the value is not rare in
    the stream's history: at least ``share`` of the last ``window`` values (as they came) lie at
    or beyond it, on its side of the recent mean (the last ``probation`` values)."""
    P = det.probation
    level = float(det.alarm or 0.4)
    share, window = float(rare.get("share", 0.003)), int(rare.get("window", 8640))
    out = part.copy()
    for t in np.flatnonzero(part >= level):
        r = P + int(t)
        hist = s[max(0, r - window) : r]
        up = s[r] >= np.mean(s[r - P : r])
        count = int(np.sum(hist >= s[r])) if up else int(np.sum(hist <= s[r]))
        if count >= share * hist.size:
            out[t] *= 0.5
    return out


def echo_halved(det: AnomalyDetector, s: np.ndarray, part: np.ndarray, echo: dict) -> np.ndarray:
    """The network's scores where they reach the alarm level, halved at an ordinary value (within
    ``body`` standard deviations of the last ``probation`` values' mean, on the network's scale)
    that follows an extreme one (at least ``prev`` of them away): the network read the outlier
    and predicts from it, so its surprise at the return is the outlier's echo."""
    P = det.probation
    level = float(det.alarm or 0.4)
    body, prev = float(echo.get("body", 1.0)), float(echo.get("prev", 2.0))
    x, _ = det._model_space(s, s[:P])
    out = part.copy()
    for t in np.flatnonzero(part >= level):
        r = P + int(t)
        rec = x[r - P : r]
        m, sd = float(np.mean(rec)), max(float(np.std(rec)), 1e-12)
        before = x[r - int(echo.get("back", 1)) : r]
        if abs(x[r] - m) < body * sd and np.max(np.abs(before - m)) >= prev * sd:
            out[t] *= 0.5
    return out


def small_halved(det: AnomalyDetector, s: np.ndarray, part: np.ndarray, r: float) -> np.ndarray:
    """A part's scores where they reach the alarm level, halved when the value lies within
    ``r`` times the range so far of the mean of the last ``probation`` values (as they came):
    a resolution of the range, as the detectors that quantise it have (tried, not in rnnkit)."""
    P = det.probation
    level = float(det.alarm or 0.4)
    out = part.copy()
    for t in np.flatnonzero(part >= level):
        k = P + int(t)
        span = float(s[:k].max() - s[:k].min())
        if abs(s[k] - float(np.mean(s[k - P : k]))) < r * span:
            out[t] *= 0.5
    return out


def network_filtered(det: AnomalyDetector, s: np.ndarray, level: float) -> np.ndarray:
    """The network's part when, after the learning period, a value whose network score
    reaches ``level`` is not what the network reads next: it reads its own prediction for that
    value (the members' mean), as a robust filter replaces an outlier; one step at a time
    (tried, not in rnnkit; with no value replaced it equals the whole-series part to
    round-off, which can move a row across the threshold)."""
    from rnnkit.estimators import likelihood
    from rnnkit.estimators.anomaly import _member_gaussians, _member_surprise

    P = det.probation
    x, _ = det._model_space(s, s[:P])
    mean, sd = scale_of(x[:P])
    z = np.clip((x - mean) / sd, -CLIP, CLIP)
    state = likelihood.new_state(det.short_window, det.long_window)
    w = det._windows()
    scores = np.zeros(z.size)  # scores[t] scores z[t]
    read = float(z[0])
    out, h = det.model_.stream_forward(np.array([[[read]]]))
    for t in range(1, z.size):
        means, variances = _member_gaussians(np.array(read), out[0, 0])
        raw = float(_member_surprise(np.array(z[t]), means, variances))
        scores[t] = likelihood.step_raw(state, raw, *w) * float(det.network_weight)
        read = float(np.mean(means)) if t >= P and scores[t] >= level else float(z[t])
        out, h = det.model_.stream_forward(np.array([[[read]]]), h)
    return scores[P:]


def combine(values: np.ndarray, p: dict) -> np.ndarray:
    """`AnomalyDetector._detect_one` from the parts."""
    parts = dict(p["parts"])
    out_of_range = parts.pop("range", None)
    raw = np.maximum.reduce(list(parts.values()))
    if out_of_range is not None:
        raw[out_of_range > 0] = 1.0
    scores = np.zeros(values.size)
    scores[p["probation"] :] = p["alarm"].run(raw, p["values"], out_of_range)
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a checkout of numenta/NAB (data/, labels/)")
    ap.add_argument("--seeds", default="0", help="seeds of the networks, comma-separated")
    ap.add_argument("--configs", default="[{}]", help="a JSON list of configs (default: [{}])")
    ap.add_argument("--cache", default="runs/probe-anomaly", help="where the networks are kept")
    ap.add_argument(
        "--learn-every",
        type=int,
        default=0,
        help="the networks keep learning every N values (AnomalyDetector's learn_every; default "
        "0: fixed)",
    )
    ap.add_argument("--attribute", action="store_true", help="which part raised each false alarm")
    ap.add_argument(
        "--profiles",
        action="store_true",
        help="also the reward-low-FP and reward-low-FN profiles' means (default: standard only)",
    )
    ap.add_argument(
        "--diagnose",
        default=None,
        metavar="NAB/results",
        help="NAB's results folder: per file of the 24, the points lost against a perfect "
        "detector by rnnkit (the first config and seed) and by Numenta HTM (default: off)",
    )
    args = ap.parse_args()
    data = Path(args.data)
    windows = nab.read_windows(data / "labels" / "combined_windows.json")
    names = sorted(n for n in windows if (data / "data" / n).is_file())
    shared = {n for n in names if (SHARED / "data" / n).is_file()}
    files = {}
    for name in names:
        ts, values = read_nab_csv(data / "data" / name)
        files[name] = (values, nab.label_rows(ts, windows[name], name))
    configs = json.loads(args.configs)
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[int, list[dict[str, float]]] = {}
    others: dict[tuple[int, str], list[dict[str, float]]] = {}
    for seed in seeds:
        nets = networks(files, seed, Path(args.cache), args.learn_every)
        for k, cfg in enumerate(configs):
            parts = {n: parts_of(v, nets[n], seed, cfg) for n, (v, _) in files.items()}
            scored = {n: (combine(v, parts[n]), lab) for n, (v, lab) in files.items()}
            sets = {
                "24": {n: scored[n] for n in names if n in shared},
                "34": {n: scored[n] for n in names if n not in shared},
                "58": scored,
            }
            r = {s: nab.score_corpus(f, "standard") for s, f in sets.items() if f}
            results.setdefault(k, []).append({s: v.score for s, v in r.items()})
            for prof in OTHER_PROFILES if args.profiles else ():
                others.setdefault((k, prof), []).append(
                    {s: nab.score_corpus(f, prof).score for s, f in sets.items() if f}
                )
            cells = "  ".join(f"{s} {v.score:.2f} (tp {v.tp} fp {v.fp})" for s, v in r.items())
            print(f"config {k} seed {seed}: {cells}", flush=True)
            if args.attribute and k == 0 and seed == seeds[0]:
                attribute(parts, scored, r["58"].threshold)
            if args.diagnose and k == 0 and seed == seeds[0]:
                for s in ("24", "34"):
                    diagnose(parts, sets[s], Path(args.diagnose))
    print()
    for k, cfg in enumerate(configs):
        summary: list[str] = []
        for s in SETS:
            v = [r[s] for r in results[k] if s in r]
            if v:
                summary.append(f"{s} {np.mean(v):.2f} [{np.min(v):.1f}-{np.max(v):.1f}]")
        print(f"config {k} {json.dumps(cfg)}: " + "  ".join(summary), flush=True)
        for prof in OTHER_PROFILES if args.profiles else ():
            means = {s: np.mean([r[s] for r in others[(k, prof)] if s in r]) for s in SETS}
            print(f"  {prof}: " + "  ".join(f"{s} {v:.2f}" for s, v in means.items()), flush=True)


def attribute(parts: dict, scored: dict, threshold: float) -> None:
    """Per category, the largest part at each row flagged outside every window."""
    by: dict[str, Counter] = {}
    for name, (scores, lab) in scored.items():
        p = parts[name]
        flagged = np.flatnonzero((scores >= threshold) & (lab.window == -1)) - p["probation"]
        count = by.setdefault(name.split("/")[0], Counter())
        for t in flagged:
            row = {k: v[t] for k, v in p["parts"].items()}
            count["range" if row.pop("range", 0) > 0 else max(row, key=row.__getitem__)] += 1
    print(f"  false-positive rows by the largest part (threshold {threshold:.4f}):")
    for category, count in sorted(by.items()):
        print(f"    {category:24s} {sum(count.values()):4d}  {dict(count.most_common())}")


def largest_part(p: dict, t: int) -> str:
    """The part that set the score of row ``t`` after the probationary period."""
    row = {k: v[t] for k, v in p["parts"].items()}
    return "range" if row.pop("range", 0) > 0 else max(row, key=row.__getitem__)


def losses(scores: np.ndarray, lab: nab.Labelled, threshold: float) -> dict[str, Any]:
    """One file's standard-profile points lost against a perfect detector at ``threshold``:
    raw points per missed window (2: -A_fn instead of A_tp), per late detection (1 - its
    scaled-sigmoid credit) and for the false-positive rows (A_fp sigma(y) each)."""
    prof = nab.PROFILES["standard"]
    hit = (scores >= threshold) & (lab.window != -2)
    wins = sorted({int(w) for w in lab.window if w >= 0})
    missed, late, first = [], 0.0, {}
    for w in wins:
        rows = np.flatnonzero(hit & (lab.window == w))
        if rows.size:
            first[w] = int(rows[0])
            late += prof.tp * (1.0 - lab.tp_part[rows[0]])
        else:
            missed.append(w)
    fp_rows = np.flatnonzero(hit & (lab.window == -1))
    return {
        "windows": len(wins),
        "missed": missed,
        "first": first,
        "late": late,
        "fp_rows": fp_rows,
        "fp": float(-prof.fp * lab.fp_part[fp_rows].sum()),
        "lost": (prof.tp + prof.fn) * len(missed) + late - prof.fp * lab.fp_part[fp_rows].sum(),
    }


def diagnose(parts: dict, scored: dict, results: Path) -> None:
    """Per file: where rnnkit and HTM lose against a perfect detector (standard profile, each
    at its own threshold over these files), in points of the normalised score."""
    htm = {}
    for name, (_, lab) in scored.items():
        category, file = name.split("/")
        path = results / "numenta" / category / f"numenta_{file}"
        htm[name] = (np.loadtxt(path, delimiter=",", skiprows=1, usecols=2), lab)
    ours, theirs = nab.score_corpus(scored, "standard"), nab.score_corpus(htm, "standard")
    span = (ours.perfect - ours.null) / 100.0  # raw points per point of the score
    print(
        f"  diagnosis (standard; rnnkit threshold {ours.threshold:.4f}, score "
        f"{ours.score:.2f}; HTM threshold {theirs.threshold:.4f}, score {theirs.score:.2f}):"
    )
    print(
        "    file | windows | rnnkit: missed, late, fp rows (by part), points lost | "
        "HTM: missed, late, fp rows, points lost"
    )
    total: dict[str, Counter[str]] = {"rnnkit": Counter(), "htm": Counter()}
    for name, (scores, lab) in scored.items():
        a = losses(scores, lab, ours.threshold)
        b = losses(htm[name][0], lab, theirs.threshold)
        p = parts[name]
        by = Counter(largest_part(p, int(t) - p["probation"]) for t in a["fp_rows"])
        late_by = Counter(largest_part(p, t - p["probation"]) for t in a["first"].values())
        miss_max = max((float(scores[lab.window == w].max()) for w in a["missed"]), default=0.0)
        for who, r in (("rnnkit", a), ("htm", b)):
            total[who].update(
                {
                    "missed": len(r["missed"]),
                    "fp_rows": r["fp_rows"].size,
                    "late": r["late"],
                    "fp": r["fp"],
                    "lost": r["lost"],
                }
            )
        print(
            f"    {name:60s} {a['windows']} | {len(a['missed'])} (max {miss_max:.2f}),"
            f" {a['late'] / span:.2f} (first by {dict(late_by)}), {a['fp_rows'].size} "
            f"{dict(by.most_common())} = {a['fp'] / span:.2f}; lost {a['lost'] / span:.2f} | "
            f"{len(b['missed'])}, {b['late'] / span:.2f}, {b['fp_rows'].size} = "
            f"{b['fp'] / span:.2f}; lost {b['lost'] / span:.2f}"
        )
    for who, c in total.items():
        print(
            f"    {who}: missed {c['missed']} ({2 * c['missed'] / span:.2f} points), late "
            f"{c['late'] / span:.2f}, fp rows {c['fp_rows']} ({c['fp'] / span:.2f}); lost "
            f"{c['lost'] / span:.2f}"
        )


if __name__ == "__main__":
    main()
