"""The Numenta Anomaly Benchmark's scoring, written from its documented rules.

Lavin and Ahmad (2015), "Evaluating real-time anomaly detection algorithms: the Numenta Anomaly
Benchmark", and the NAB repository (``nab/sweeper.py``, ``config/profiles.json``,
``nab/runner.py``). For each data file:

- the first ``min(floor(0.15 n), 0.15 * 5000)`` rows are the **probationary period**: nothing
  there counts, neither detections nor the parts of windows that fall in it;
- each labelled **anomaly window** ``[start, end]`` is a true positive when at least one row in
  it is detected (``score >= threshold``); only its best (earliest) detection counts, worth
  ``A_tp * sigma(y) / sigma(-1)`` with the **scaled sigmoid** ``sigma(y) = 2 / (1 + e^{5y}) - 1``
  (``-1`` for ``y >= 3``) of the relative position ``y = -(right - i + 1) / width`` (``-1`` at the
  window's first row, so a detection there is worth exactly ``A_tp``);
- a window with no detection costs ``-A_fn``;
- every detection outside the windows is a false positive worth ``A_fp * sigma(y)``, a negative
  number: ``y = |i - right_prev| / (width_prev - 1)`` measured from the end of the previous window
  (a detection just after a window costs little), and ``-A_fp`` before any window.

The raw score of a detector at a threshold is the sum over all files; the **threshold is chosen
once for the whole corpus** (per profile) to maximise it. The reported score is normalised
between the null detector (no detection: ``-A_fn`` per window) and the perfect one (a detection
at each window's first row: ``A_tp`` per window): ``100 (raw - null) / (perfect - null)``.

Profiles (``config/profiles.json``): standard A_tp 1, A_fp 0.11, A_fn 1; reward_low_FP_rate
A_fp 0.22; reward_low_FN_rate A_fn 2.0 (A_tn is 1 in each and unused by the score).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class Profile:
    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}

PROBATION_PERCENT = 0.15


def probation_length(n: int, percent: float = PROBATION_PERCENT) -> int:
    """NAB's probationary period of a file of ``n`` rows: 15 %, at most 750 rows."""
    return int(min(math.floor(percent * n), percent * 5000))


def scaled_sigmoid(y: float) -> float:
    """``2 / (1 + exp(5 y)) - 1``, and -1 from ``y = 3`` on."""
    if y >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


MAX_TP = scaled_sigmoid(-1.0)  # 0.98661: a detection at a window's first row


@dataclass
class Labelled:
    """One file's rows as the scorer sees them (the same for every profile and detector).

    ``window``: per row, the index of its window among the file's windows, -1 outside them,
    -2 in the probationary period; ``tp_part``: sigma(y)/sigma(-1) in a window; ``fp_part``:
    sigma(y) outside (negative).
    """

    window: np.ndarray  # (n,) int
    tp_part: np.ndarray  # (n,) float, in a window
    fp_part: np.ndarray  # (n,) float, outside
    n_windows: int  # windows with at least one row after the probationary period


def label_rows(timestamps: np.ndarray, windows: list[tuple[str, str]], name: str = "") -> Labelled:
    """Place each row relative to the file's windows (timestamps as ``datetime64``, sorted)."""
    ts = np.asarray(timestamps).astype("datetime64[ns]")
    n = ts.shape[0]
    probation = probation_length(n)
    window = np.full(n, -1, np.int64)
    tp_part = np.zeros(n)
    fp_part = np.zeros(n)
    bounds = []
    for start, end in windows:
        a = int(np.searchsorted(ts, np.datetime64(start, "ns"), side="left"))
        b = int(np.searchsorted(ts, np.datetime64(end, "ns"), side="right")) - 1
        if b < a:
            raise InputError(f"NAB: window {start} .. {end} of {name!r} holds no row")
        bounds.append((a, b))
    bounds.sort()
    prev: tuple[int, int] | None = None
    k = 0  # the next window
    i = 0
    while i < n:
        if k < len(bounds) and i == bounds[k][0]:
            a, b = bounds[k]
            width = b - a + 1
            for j in range(a, b + 1):
                tp_part[j] = scaled_sigmoid(-(b - j + 1) / width) / MAX_TP
                window[j] = k
            prev = (b, width)
            k += 1
            i = b + 1
            continue
        if prev is None:
            fp_part[i] = -1.0  # before any window
        else:
            b, width = prev
            fp_part[i] = scaled_sigmoid(abs(b - i) / max(width - 1, 1))
        i += 1
    window[:probation] = -2
    counted = {int(w) for w in window if w >= 0}
    return Labelled(window, tp_part, fp_part, len(counted))


@dataclass
class CorpusScore:
    threshold: float
    raw: float
    null: float
    perfect: float
    score: float  # normalised: 0 null, 100 perfect
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # detections outside windows


def score_corpus(
    files: dict[str, tuple[np.ndarray, Labelled]], profile: Profile | str = "standard"
) -> CorpusScore:
    """The best threshold over the corpus and the normalised score there.

    ``files``: name -> (anomaly scores, one per row; `label_rows` of the file).
    """
    prof = PROFILES[profile] if isinstance(profile, str) else profile
    scores, gwin, tp_val, fp_val = [], [], [], []
    offset = 0
    for name, (s, lab) in files.items():
        s = np.asarray(s, np.float64)
        if s.shape != lab.window.shape:
            raise InputError(
                f"NAB: {name!r} has {lab.window.shape[0]} rows but {s.shape[0]} scores"
            )
        if not np.all(np.isfinite(s)):
            raise InputError(f"NAB: the scores of {name!r} contain NaN or infinity")
        keep = lab.window != -2
        w = lab.window[keep]
        scores.append(s[keep])
        gwin.append(np.where(w >= 0, w + offset, -1))
        tp_val.append(lab.tp_part[keep] * prof.tp)
        fp_val.append(lab.fp_part[keep] * prof.fp)
        offset += int(lab.window.max(initial=-1)) + 1
    s_all = np.concatenate(scores) if scores else np.zeros(0)
    w_all = np.concatenate(gwin) if gwin else np.zeros(0, np.int64)
    tp_all = np.concatenate(tp_val) if tp_val else np.zeros(0)
    fp_all = np.concatenate(fp_val) if fp_val else np.zeros(0)
    windows = np.unique(w_all[w_all >= 0])
    n_win = windows.size
    null = -prof.fn * n_win
    perfect = prof.tp * n_win
    order = np.argsort(-s_all, kind="stable")
    best = (null, math.inf, 0, n_win, 0)  # raw, threshold, tp, fn, fp
    win_score = dict.fromkeys(windows.tolist(), -prof.fn)
    total, n_fp = null, 0
    hit: set[int] = set()
    i, n = 0, order.size
    while i < n:
        level = s_all[order[i]]
        while i < n and s_all[order[i]] == level:  # every row at this score is detected together
            j = order[i]
            w = int(w_all[j])
            if w < 0:
                total += fp_all[j]
                n_fp += 1
            else:
                hit.add(w)
                old = win_score[w]
                if tp_all[j] > old:
                    win_score[w] = tp_all[j]
                    total += tp_all[j] - old
            i += 1
        if total > best[0]:
            best = (total, float(level), len(hit), n_win - len(hit), n_fp)
    raw, threshold, tp, fn, fp = best
    span = perfect - null
    score = 100.0 * (raw - null) / span if span > 0 else 0.0
    return CorpusScore(threshold, raw, null, perfect, score, tp, fn, fp)


def points_lost(
    files: dict[str, tuple[np.ndarray, Labelled]], threshold: float
) -> dict[str, dict[str, Any]]:
    """Per file, at one corpus threshold, the standard profile's points of the normalised score
    that the file costs against a perfect detector (they add up to 100 less the score): a
    missed window costs its +1 and -1 (2 of the corpus' 2 per window), a detection inside a
    window 1 less its scaled-sigmoid credit ("late"), a flagged row outside every window its
    false-positive weight. Also the windows, the windows missed with the highest score in each,
    and the false-positive rows."""
    prof = PROFILES["standard"]
    span = (prof.tp + prof.fn) * sum(lab.n_windows for _, lab in files.values())
    scale = 100.0 / span if span else 0.0
    table: dict[str, dict[str, Any]] = {}
    for name, (scores, lab) in files.items():
        s = np.asarray(scores, np.float64)
        flagged = (s >= threshold) & (lab.window != -2)
        missed, missed_high, late = 0, [], 0.0
        for w in np.unique(lab.window[lab.window >= 0]):
            inside = lab.window == w
            hits = flagged & inside
            if hits.any():
                late += prof.tp * (1.0 - float(lab.tp_part[hits].max()))
            else:
                missed += 1
                missed_high.append(float(s[inside].max()))
        fp = flagged & (lab.window == -1)
        fp_points = -float(np.sum(lab.fp_part[fp])) * prof.fp * scale + 0.0  # no -0.00
        table[name] = {
            "windows": lab.n_windows,
            "missed": missed,
            "missed_highest": missed_high,
            "late": late * scale,
            "fp_rows": int(fp.sum()),
            "fp": fp_points,
            "lost": (missed * (prof.tp + prof.fn) + late) * scale + fp_points,
        }
    return table


# -- NAB's files -------------------------------------------------------------------------------
def read_windows(path: str | os.PathLike) -> dict[str, list[tuple[str, str]]]:
    """``combined_windows.json``: ``category/file.csv`` -> its windows ``[start, end]``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"NAB: cannot read the windows file {str(path)!r} ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"NAB: {str(path)!r}: expected an object of file -> windows")
    out = {}
    for name, wins in data.items():
        try:
            out[name] = [(str(a), str(b)) for a, b in wins]
        except (TypeError, ValueError):
            raise InputError(
                f"NAB: {str(path)!r}: the windows of {name!r} are not [start, end] pairs"
            ) from None
    return out
