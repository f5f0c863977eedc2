"""Forecast accuracy as the M4 competition defines it (Makridakis et al. 2020, and the
competition's own R code in Mcompetitions/M4-methods).

For one series with history ``x_1..x_n``, actuals ``y_1..y_h``, forecasts ``f_1..f_h`` and
seasonal period ``m``::

    sMAPE = 200 / h * sum_t |y_t - f_t| / (|y_t| + |f_t|)            (0/0 counts as 0)
    MASE  = (1 / h * sum_t |y_t - f_t|) / (1 / (n - m) * sum_{i > m} |x_i - x_{i - m}|)
    MSIS  = (1 / h * sum_t (u_t - l_t) + 2 / a * (l_t - y_t) [y_t < l_t]
                                       + 2 / a * (y_t - u_t) [y_t > u_t]) / (same scale as MASE)

Each is averaged over the series; ``OWA = (sMAPE / sMAPE_naive2 + MASE / MASE_naive2) / 2``
on those averages. A series with a flat history (a constant, all zeros: the seasonal naive
error that scales MASE is 0) has no MASE or MSIS: it is left out of their averages (and of
naive-2's MASE, so OWA compares like with like), counted in ``Scores.flat``; when every series
is flat, MASE, MSIS and OWA are NaN. Naive-2 is the naive forecast of the seasonally adjusted
series: a series is adjusted only when it passes M4's seasonality test (the autocorrelation
at lag ``m`` beyond the 90 % limit ``1.645 * sqrt((1 + 2 * sum_{k < m} r_k^2) / n)``), by the
seasonal indices of a classical multiplicative decomposition (R's ``decompose``: a centred
2 x m moving average for even ``m``, the mean ratio per position in the cycle, scaled to
average 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = [
    "acf",
    "coverage",
    "mase",
    "msis",
    "naive2",
    "owa",
    "seasonal_indices",
    "seasonal_naive",
    "seasonality_test",
    "smape",
    "Scores",
    "score_forecasts",
]


def _pair(actual: object, forecast: object, what: str) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    if y.shape != f.shape or y.ndim != 1 or len(y) == 0:
        raise InputError(
            f"{what}: expected actuals and forecasts of the same length (1-D, not empty), "
            f"got shapes {y.shape} and {f.shape}"
        )
    return y, f


def smape(actual: object, forecast: object) -> float:
    """Symmetric MAPE of one series, in percent (0 to 200); a step where both are 0 counts 0."""
    y, f = _pair(actual, forecast, "smape")
    denom = np.abs(y) + np.abs(f)
    ratio = np.divide(np.abs(y - f), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(200.0 * np.mean(ratio))


def mase_scale(history: object, season: int) -> float:
    """The in-sample mean absolute error of the seasonal naive forecast (lag ``season``, or 1
    when the history is not longer than a season, as M4 does)."""
    x = np.asarray(history, dtype=np.float64)
    m = season if len(x) > season else 1
    if len(x) <= m:
        raise InputError(f"mase: expected a history longer than {m} points, got {len(x)}")
    return float(np.mean(np.abs(x[m:] - x[:-m])))


def mase(actual: object, forecast: object, history: object, season: int) -> float:
    """Mean absolute scaled error of one series, scaled by `mase_scale`; a flat history
    (scale 0) gives infinity unless the forecast is exact."""
    y, f = _pair(actual, forecast, "mase")
    scale = mase_scale(history, season)
    err = float(np.mean(np.abs(y - f)))
    return err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))


def msis(
    actual: object, lower: object, upper: object, history: object, season: int, alpha: float
) -> float:
    """Mean scaled interval score of one series for a ``1 - alpha`` interval."""
    y, lo = _pair(actual, lower, "msis")
    _, hi = _pair(actual, upper, "msis")
    if not 0 < alpha < 1:
        raise InputError(f"msis: expected alpha in (0, 1), got {alpha}")
    penalty = (hi - lo) + 2 / alpha * (lo - y) * (y < lo) + 2 / alpha * (y - hi) * (y > hi)
    scale = mase_scale(history, season)
    err = float(np.mean(penalty))
    return err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))


def coverage(actual: object, lower: object, upper: object) -> float:
    """The share of actuals inside ``[lower, upper]``."""
    y, lo = _pair(actual, lower, "coverage")
    _, hi = _pair(actual, upper, "coverage")
    return float(np.mean((y >= lo) & (y <= hi)))


def owa(smape_: float, mase_: float, smape_naive2: float, mase_naive2: float) -> float:
    """Overall weighted average against naive-2, from averages over the series; NaN when
    naive-2 is exact (flat series: nothing to compare against)."""
    if not smape_naive2 > 0 or not mase_naive2 > 0:
        return float("nan")
    return 0.5 * (smape_ / smape_naive2 + mase_ / mase_naive2)


# -- the benchmarks ---------------------------------------------------------------------------
def seasonal_naive(history: object, season: int, horizon: int) -> np.ndarray:
    """The last ``season`` values repeated over the horizon (the last value when ``season`` is
    1 or the history is shorter than a season)."""
    x = np.asarray(history, dtype=np.float64)
    m = season if len(x) >= season else 1
    return np.resize(x[len(x) - m :], horizon)


def acf(x: object, k: int) -> float:
    """The sample autocorrelation at lag ``k`` (R's ``acf``: sums over all points, one mean)."""
    a = np.asarray(x, dtype=np.float64)
    d = a - a.mean()
    denom = float(np.sum(d * d))
    return float(np.sum(d[k:] * d[: len(d) - k]) / denom) if denom > 0 else 0.0


def seasonality_test(history: object, season: int) -> bool:
    """M4's test: is the autocorrelation at lag ``season`` beyond its 90 % limit?"""
    x = np.asarray(history, dtype=np.float64)
    if season <= 1 or len(x) < 3 * season:  # M4 tests only series of 3 seasons or more
        return False
    r = np.array([acf(x, k) for k in range(1, season + 1)])
    limit = 1.645 * np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / len(x))
    return bool(abs(r[-1]) > limit)


def seasonal_indices(history: object, season: int) -> np.ndarray:
    """Multiplicative seasonal indices of a classical decomposition (R's ``decompose``), one
    per position in the cycle, aligned with the series' first point, averaging 1."""
    x = np.asarray(history, dtype=np.float64)
    m = season
    if m % 2 == 0:  # centred 2 x m moving average
        weights = np.r_[0.5, np.ones(m - 1), 0.5] / m
    else:
        weights = np.ones(m) / m
    half = len(weights) // 2
    trend = np.full(len(x), np.nan)
    trend[half : len(x) - half] = np.convolve(x, weights, mode="valid")
    ratio = x / trend
    padded = np.full(-(-len(x) // m) * m, np.nan)
    padded[: len(x)] = ratio
    figure = np.nanmean(padded.reshape(-1, m), axis=0)
    return figure / figure.mean()


def naive2(history: object, season: int, horizon: int) -> np.ndarray:
    """M4's naive-2: the last seasonally adjusted value, reseasonalised by the indices of the
    next positions in the cycle (no adjustment when `seasonality_test` fails)."""
    x = np.asarray(history, dtype=np.float64)
    if not seasonality_test(x, season):
        return np.full(horizon, x[-1])
    si = seasonal_indices(x, season)
    position = np.arange(len(x)) % season
    adjusted_last = x[-1] / si[position[-1]]
    future = (len(x) + np.arange(horizon)) % season
    return adjusted_last * si[future]


# -- many series ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scores:
    """Averages over the series; ``owa`` against naive-2 on the same series."""

    smape: float
    mase: float
    owa: float
    smape_naive2: float
    mase_naive2: float
    series: int
    coverage: float | None = None  # of the interval, when one was given
    msis: float | None = None
    flat: int = 0  # series of a flat history, left out of MASE and MSIS (module docstring)

    def as_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def score_forecasts(
    histories: Sequence[np.ndarray],
    actuals: Sequence[np.ndarray],
    forecasts: Sequence[np.ndarray],
    season: int,
    lower: Sequence[np.ndarray] | None = None,
    upper: Sequence[np.ndarray] | None = None,
    alpha: float = 0.2,
) -> Scores:
    """sMAPE, MASE and OWA (and the interval's coverage and MSIS when ``lower``/``upper`` are
    given) of forecasts of many series, each against its own history."""
    if not len(histories) == len(actuals) == len(forecasts) or not histories:
        raise InputError(
            "score_forecasts: expected as many histories, actuals and forecasts (at least one), "
            f"got {len(histories)}, {len(actuals)} and {len(forecasts)}"
        )
    s, m, s2, m2, cov, ms = [], [], [], [], [], []
    flat = 0
    for i, (x, y, f) in enumerate(zip(histories, actuals, forecasts, strict=True)):
        n2 = naive2(x, season, len(y))
        s.append(smape(y, f))
        s2.append(smape(y, n2))
        scaled = mase_scale(x, season) > 0
        flat += not scaled
        if scaled:
            m.append(mase(y, f, x, season))
            m2.append(mase(y, n2, x, season))
        if lower is not None and upper is not None:
            cov.append(coverage(y, lower[i], upper[i]))
            if scaled:
                ms.append(msis(y, lower[i], upper[i], x, season, alpha))
    means = [float(np.mean(v)) if v else float("nan") for v in (s, m, s2, m2)]
    return Scores(
        smape=means[0],
        mase=means[1],
        owa=owa(*means),
        smape_naive2=means[2],
        mase_naive2=means[3],
        series=len(histories),
        coverage=float(np.mean(cov)) if cov else None,
        msis=float(np.mean(ms)) if ms else (float("nan") if cov else None),
        flat=flat,
    )
