"""The recent level: how far a value lies from the mean of the values just before it.

The network predicts each value from the one before it, so after a level shift (a metric that
steps from 17 to 28 and stays there) it is surprised once, at the step, and then follows the new
level. Comparing each value with the mean and spread of the last ``W`` values (a windowed
Gaussian, NAB's simplest baseline) keeps the shift surprising for as long as the window still
remembers the old level:

    err_t = z_t - mean(z_{t-W} .. z_{t-1}),     var_t = var(z_{t-W} .. z_{t-1})   (at least
    VAR_FLOOR)

``err_t`` and ``var_t`` then go through the anomaly likelihood (`rnnkit.estimators.likelihood`)
like the network's error, which judges them against the stream's own history of such errors:
a stream that wanders between levels all the time is not alarmed by one more wander.

`small` tells whether a value lies within a given distance of the window's mean, before it
joins the window: ``AnomalyDetector(resolution=)`` halves the recent levels' alarms at a
change that small beside the range of the values so far (`run_means`, the whole series, also
keeps the window's mean before each value, for the same test).

The state of one stream is one float64 array (`new_state`): counters, the window's sums and the
window as a ring buffer, ``8 (5 + W)`` bytes. The sums are updated per step and summed again from
the buffer every ``W`` steps, so they do not drift. `step` (one value) and `run_means` (an array)
are one compiled loop, so a stream scored one value at a time and the whole array agree exactly.
"""

from __future__ import annotations

import numba
import numpy as np

from . import likelihood

VAR_FLOOR = 1e-6  # the smallest variance of the window assumed (normalised values)
_HEAD = 5  # n, pos, sum, sum of squares, steps since the sums were redone


def new_state(window: int) -> np.ndarray:
    """A fresh state for a window of ``window`` values."""
    return np.zeros(_HEAD + window)


@numba.njit(cache=True, error_model="numpy")
def step(state: np.ndarray, lik: np.ndarray, z: float, short: int, long: int, warmup: int) -> float:
    """Score ``z`` against the window (0 while it holds fewer than 2 values), then add it.

    ``lik`` is the likelihood state (`rnnkit.estimators.likelihood.new_state`) of this stream's
    level errors."""
    n = int(state[0])
    score = 0.0
    if n >= 2:
        mean = state[2] / n
        var = max(state[3] / n - mean * mean, VAR_FLOOR)
        score = likelihood.step(lik, z - mean, var, short, long, warmup)
    likelihood.window_add(state, 0, state[_HEAD:], z)
    return score


@numba.njit(cache=True, error_model="numpy")
def small(state: np.ndarray, z: float, limit: float) -> bool:
    """Whether ``z`` lies within ``limit`` of the window's mean (before ``z`` joins it): a
    change too small to be news (``AnomalyDetector(resolution=)``). False while the window
    holds fewer than 2 values."""
    n = int(state[0])
    return n >= 2 and abs(z - state[2] / n) < limit


@numba.njit(cache=True, error_model="numpy")
def run_means(
    state: np.ndarray,
    lik: np.ndarray,
    z: np.ndarray,
    short: int,
    long: int,
    warmup: int,
    out: np.ndarray,
    means: np.ndarray,
) -> None:
    """`step` over each value of ``z``, scores into ``out``, and the window's mean before each
    value into ``means`` (NaN while it holds fewer than 2 values): ``abs(z - means) < limit``
    is `small` for each value."""
    for t in range(z.shape[0]):
        n = int(state[0])
        means[t] = state[2] / n if n >= 2 else np.nan
        out[t] = step(state, lik, z[t], short, long, warmup)
