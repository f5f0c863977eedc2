r"""Test-time VTLP: a recording read as several vocal tract lengths, the model's probabilities
averaged over them.

A voice unlike the training voices is partly a vocal tract of another length, and the
training saw warped copies (`rnnkit.audio.augment`, VTLP). At prediction the recording is
featurised ``K`` times with the mel filters warped by factors evenly spaced in
``[1 - v, 1 + v]``, the plain features (factor 1) among them::

    alpha_k = 1 - v + 2 v k / (K - 1),   k = 0 .. K-1        (K odd, so alpha_{(K-1)/2} = 1)
    p(c | x) = (1 / K) sum_k p(c | features(x, warp=alpha_k))

``K = 1`` or ``v = 0`` is the plain prediction. Instead of the mean, ``pick="confident"``
keeps, per recording, the one view whose probabilities are the most certain (the lowest
entropy ``H_k = -sum_c p_k(c) log p_k(c)``), as vocal tract length normalisation picks the
warp that fits a voice best, here per utterance and with no speaker labels (`pick_views`).
The warp is `rnnkit.audio.augment.vtlp_warp`,
through ``front.features(samples, warp=alpha)``; nothing here knows the model: `view_proba`
takes any function from a list of feature arrays to ``(N, C)`` probabilities.

This file needs numpy only: `benchmarks/speech_torch.py` can load it by path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

try:
    from ..errors import InputError
except ImportError:  # loaded by path, outside the package (benchmarks/speech_torch.py)
    InputError = ValueError  # type: ignore[assignment,misc]

Proba = Callable[[list[np.ndarray]], np.ndarray]  # features of N recordings -> (N, C)
TTA_PICKS = ("mean", "confident")  # how the views' probabilities become one (`pick_views`)


def check_tta(vtlp: Any, warps: Any, where: str) -> None:
    """One-line errors for a bad spread ``vtlp`` (a number in ``[0, 0.5)``) or count
    ``warps`` (an odd integer >= 1, so the factors are symmetric about 1 and hold it)."""
    if isinstance(vtlp, bool) or not isinstance(vtlp, (int, float)) or not 0 <= vtlp < 0.5:
        raise InputError(f"{where}: tta_vtlp must be a number in [0, 0.5), got {vtlp!r}")
    if (
        isinstance(warps, bool)
        or not isinstance(warps, (int, np.integer))
        or warps < 1
        or warps % 2 == 0
    ):
        raise InputError(f"{where}: tta_warps must be an odd integer >= 1, got {warps!r}")


def check_pick(pick: Any, where: str) -> None:
    """A one-line error unless ``pick`` is one of `TTA_PICKS`."""
    if pick not in TTA_PICKS:
        raise InputError(f"{where}: tta_pick must be one of {list(TTA_PICKS)}, got {pick!r}")


def _grid(spread: float, k: int) -> np.ndarray:
    """``k`` (odd) factors evenly spaced in ``[1 - spread, 1 + spread]``, the middle one
    exactly 1 (not 1 +- rounding)."""
    if k == 1 or spread == 0:
        return np.ones(1)
    factors = np.linspace(1.0 - spread, 1.0 + spread, int(k))
    factors[(int(k) - 1) // 2] = 1.0
    return factors


def tta_factors(vtlp: float, warps: int) -> np.ndarray:
    """``warps`` warp factors evenly spaced in ``[1 - vtlp, 1 + vtlp]``, 1 in the middle
    (``[1.0]`` when ``warps`` is 1 or ``vtlp`` is 0); classification's test-time VTLP."""
    check_tta(vtlp, warps, "tta_factors")
    return _grid(vtlp, warps)


def warp_grid(k: int, spread: float, where: str = "warps") -> np.ndarray:
    """``k`` warp factors evenly spaced in ``[1 - spread, 1 + spread]``, 1 among them: ``k``
    must be odd (1 alone for ``k = 1``), and a spread in (0, 0.5) when ``k > 1``; the
    transcriber's test-time VTLP (``Transcriber(warps=, warp_spread=)``)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 or k % 2 == 0:
        raise InputError(f"{where}: expected an odd number of warps >= 1 (1 and pairs), got {k!r}")
    if k > 1 and not 0 < spread < 0.5:
        raise InputError(f"{where}: {k} warps need a spread in (0, 0.5), got {spread!r}")
    return _grid(spread, k)


def warped_views(samples: np.ndarray, front: Any, factors: Iterable[float]) -> list[np.ndarray]:
    """One recording's features under each warp factor: ``[front.features(samples,
    warp=a) for a in factors]`` (``front``: a `rnnkit.audio.FrontEnd`, or anything with
    ``features(samples, warp=)``); all of the same length."""
    return [front.features(samples, warp=float(a)) for a in factors]


def pick_views(probas: np.ndarray, pick: str = "mean") -> np.ndarray:
    """``(N, C)`` probabilities from ``probas`` ``(K, N, C)``, view ``k``'s of each
    recording: ``"mean"`` averages the K views; ``"confident"`` keeps, per recording, the
    view of the lowest entropy (the first of equals, in the order of the views)."""
    check_pick(pick, "pick_views")
    probas = np.asarray(probas)
    if pick == "mean":
        return probas.mean(axis=0)
    p = np.clip(probas, np.finfo(probas.dtype).tiny, 1.0)
    entropy = -np.sum(probas * np.log(p), axis=2)  # (K, N): 0 log 0 counted as 0
    best = np.argmin(entropy, axis=0)  # (N,)
    return probas[best, np.arange(probas.shape[1])]


def view_proba(
    proba: Proba, views: Sequence[Sequence[np.ndarray]], pick: str = "mean"
) -> np.ndarray:
    """``proba(views[k])`` of every view ``k`` (``views[k][i]``: recording ``i``'s features
    under factor ``k``), made one by `pick_views` (the mean over views by default)."""
    return pick_views(np.stack([proba(list(view)) for view in views]), pick)


def warped_proba(
    proba: Proba,
    recordings: Sequence[np.ndarray],
    front: Any,
    factors: Sequence[float],
    pick: str = "mean",
) -> np.ndarray:
    """``(N, C)`` probabilities of the recordings (samples at ``front.rate``) from their
    features under each warp factor: averaged, or the most confident view's with
    ``pick="confident"`` (module docstring)."""
    per_recording = [warped_views(x, front, factors) for x in recordings]
    views = [[v[k] for v in per_recording] for k in range(len(factors))]
    return view_proba(proba, views, pick)
