"""Anomaly likelihood: how unusual the recent surprise of a stream is, compared with its own past.

After the idea of HTM's anomaly likelihood (Ahmad, Lavin, Purdy, Agha 2017, "Unsupervised
real-time anomaly detection for streaming data"): a detector's raw surprise is noisy, and what
is "surprising" differs between streams, so the score compares a short-window mean of the raw
surprise with the distribution of that mean over a long window of the stream's past:

    m_t = mean(r_{t-W_s+1} .. r_t)                  short window (W_s = 3)
    mu, sd = mean and standard deviation of m over the last W_l steps before t (W_l = 8640)
    Q_t = P(N(mu, sd^2) >= m_t) = erfc((m_t - mu) / (sd sqrt 2)) / 2     (sd at least SD_FLOOR)
    score_t = L / (L + log 1e10),  L = -log Q_t      in [0, 1): 0.5 where Q_t = 1e-10

with ``r_t = log(1 + e_t^2 / v_t)`` the raw surprise of step t's prediction error ``e_t``
under the predicted variance ``v_t``. A log scale as HTM's (``computeLogLikelihood``, which
clips at Q = 1e-10), here without the clip, so that the most anomalous steps keep their order
for a threshold. Until the long window holds ``warmup`` values the score is 0.

The state of one stream is one float64 array (`new_state`): a few counters and sums, then the two
windows as ring buffers, so memory per stream is constant: ``8 (8 + W_s + W_l)`` bytes (69 KB
for the defaults: W_s = 3, W_l = 8640). The window sums are updated per step and summed again
from the buffer every W_l steps, so they do not drift. `step` (one value) and `run` (an array)
are one compiled loop, so scoring a stream one value at a time and scoring the whole array agree
exactly.
"""

from __future__ import annotations

import math

import numba
import numpy as np

SD_FLOOR = 0.01  # the smallest standard deviation of m assumed
_LOG_FLOOR = math.log(1e-10)
_HEAD = 8  # n_s, pos_s, sum_s, n_l, pos_l, sum_l, sumsq_l, steps since the sums were redone


def new_state(short: int, long: int) -> np.ndarray:
    """A fresh state for windows of ``short`` and ``long`` values."""
    return np.zeros(_HEAD + short + long)


@numba.njit(cache=True, error_model="numpy")
def _tail_score(z: float) -> float:
    """``L / (L + 23.03)`` with ``L = -log Q(z)``, ``Q`` the Gaussian upper tail: 0 for
    ``z = -inf``, 0.5 where ``Q = 1e-10``, tending to 1, never saturating (ties at 1 would hide
    the order of the most anomalous steps from a threshold)."""
    if z < 8.0:
        lq = math.log(0.5 * math.erfc(z / math.sqrt(2.0)))
    else:  # the asymptotic tail, where erfc underflows
        lq = -0.5 * z * z - math.log(z * math.sqrt(2.0 * math.pi))
    return -lq / (-lq - _LOG_FLOOR)


@numba.njit(cache=True, error_model="numpy")
def step(state: np.ndarray, err: float, var: float, short: int, long: int, warmup: int) -> float:
    """Add one prediction error ``err`` of predicted variance ``var``; the step's score.

    The raw surprise is ``r = log(1 + err^2 / var)``, which grows with the Gaussian NLL of the
    error and is never below 0. A bounded surprise such as ``erf(|err| / sqrt(2 var))``
    saturates at 1, so a 40-sigma error counts as little as a 4-sigma one: on NAB it scored
    0-5 where ``log(1 + u^2)`` scored 15-32 (README, "Anomaly detection").
    """
    return step_raw(state, math.log1p(err * err / var), short, long, warmup)


@numba.njit(cache=True, error_model="numpy")
def step_raw(state: np.ndarray, raw: float, short: int, long: int, warmup: int) -> float:
    """`step` from the raw surprise ``raw`` itself (at least 0): for a surprise that is not
    one error's, such as the mean of an ensemble's members' own (``AnomalyDetector(surprise=
    "members")``)."""
    sbuf = state[_HEAD : _HEAD + short]
    lbuf = state[_HEAD + short : _HEAD + short + long]
    # the short window
    ns, ps = int(state[0]), int(state[1])
    if ns == short:
        state[2] -= sbuf[ps]
    else:
        ns += 1
    sbuf[ps] = raw
    state[2] += raw
    state[0], state[1] = ns, (ps + 1) % short
    m = state[2] / ns
    # compare with the long window's distribution of m, before m joins it
    nl = int(state[3])
    score = 0.0
    if nl >= warmup and nl > 1:
        mu = state[5] / nl
        var = max(state[6] / nl - mu * mu, 0.0)
        sd = max(math.sqrt(var), SD_FLOOR)
        score = _tail_score((m - mu) / sd)
    window_add(state, 3, lbuf, m)
    return score


@numba.njit(cache=True, error_model="numpy")
def window_add(state: np.ndarray, at: int, buf: np.ndarray, x: float) -> None:
    """Add ``x`` to the ring-buffer window ``buf`` whose count, position, sum, sum of squares
    and steps since the sums were redone are ``state[at : at + 5]``; the oldest value leaves a
    full window. The sums are summed again from the buffer every ``len(buf)`` steps, so they
    do not drift however long the stream (the recent level's window, `level`, is one too)."""
    size = buf.shape[0]
    n, pos = int(state[at]), int(state[at + 1])
    if n == size:
        old = buf[pos]
        state[at + 2] -= old
        state[at + 3] -= old * old
    else:
        n += 1
    buf[pos] = x
    state[at + 2] += x
    state[at + 3] += x * x
    state[at], state[at + 1] = n, (pos + 1) % size
    state[at + 4] += 1
    if state[at + 4] >= size:
        state[at + 4] = 0
        s = 0.0
        s2 = 0.0
        for k in range(n):
            s += buf[k]
            s2 += buf[k] * buf[k]
        state[at + 2], state[at + 3] = s, s2


@numba.njit(cache=True, error_model="numpy")
def run(
    state: np.ndarray,
    errs: np.ndarray,
    var: np.ndarray,
    short: int,
    long: int,
    warmup: int,
    out: np.ndarray,
) -> None:
    """`step` over each error of ``errs``, scores into ``out``."""
    for t in range(errs.shape[0]):
        out[t] = step(state, errs[t], var[t], short, long, warmup)


@numba.njit(cache=True, error_model="numpy")
def run_raw(
    state: np.ndarray, raws: np.ndarray, short: int, long: int, warmup: int, out: np.ndarray
) -> None:
    """`step_raw` over each raw surprise of ``raws``, scores into ``out``."""
    for t in range(raws.shape[0]):
        out[t] = step_raw(state, raws[t], short, long, warmup)
