"""The network's echo of an outlier (``AnomalyDetector(echo=)``).

The network predicts each value from the ones before it. When one value is an outlier (a
one-row burst of tweets, a spike of latency) the network reads it, and its prediction for the
next value is pulled towards it; the value after the burst, back at the ordinary level, then
surprises it too. Its likelihood also averages the surprise over a short window
(``short_window``, 3 rows), so the outlier itself keeps the short-window mean high for that
long. Either way the network can raise its alarm one to three rows *after* an outlier, at a
value that is itself ordinary: the outlier's echo. On NAB such echoes were a third of the
network's false alarms (28 of 85 rows, seed 0, all 58 files; README, "Anomaly detection").

`step` tells whether a value is such an echo: it lies within ``echo / 2`` standard deviations
of the mean of the last ``W`` values (the probationary length; on the network's scale), while
one of the ``back`` values just before it (the likelihood's short window) lies at least
``echo`` standard deviations from that mean. `AnomalyDetector` halves the network's score
at an echo when it reaches the alarm level; the other parts, the range check and the alarm's
rest are left alone.

The state of one stream is one float64 array (`new_state`): the window's count, position, sums
and the window as a ring buffer, ``8 (5 + W)`` bytes, constant. `step` and `run` are one
compiled loop, so a stream scored one value at a time and the whole array agree exactly.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import likelihood

VAR_FLOOR = 1e-12  # the smallest variance of the window assumed (normalised values)
_HEAD = 5  # n, pos, sum, sum of squares, steps since the sums were redone


def new_state(window: int) -> np.ndarray:
    """A fresh state for a window of ``window`` values."""
    return np.zeros(_HEAD + window)


@numba.njit(cache=True, error_model="numpy")
def step(state: np.ndarray, z: float, echo: float, back: int) -> bool:
    """Whether ``z`` is an echo (see the module docstring) of the window so far; then ``z``
    joins the window. False while the window holds fewer than ``back + 1`` values."""
    n, pos = int(state[0]), int(state[1])
    buf = state[_HEAD:]
    found = False
    if n > back:
        mean = state[2] / n
        sd = math.sqrt(max(state[3] / n - mean * mean, VAR_FLOOR))
        if abs(z - mean) < 0.5 * echo * sd:  # an ordinary value ...
            size = buf.shape[0]
            for k in range(1, back + 1):  # ... just after an outlier
                if abs(buf[(pos - k) % size] - mean) >= echo * sd:
                    found = True
                    break
    likelihood.window_add(state, 0, buf, z)
    return found


@numba.njit(cache=True, error_model="numpy")
def run(state: np.ndarray, z: np.ndarray, echo: float, back: int, out: np.ndarray) -> None:
    """`step` over each value of ``z``, whether each is an echo into ``out`` (booleans)."""
    for t in range(z.shape[0]):
        out[t] = step(state, z[t], echo, back)


def nbytes(window: int) -> int:
    """Bytes of one stream's state for a window of ``window`` values."""
    return 8 * (_HEAD + window)
