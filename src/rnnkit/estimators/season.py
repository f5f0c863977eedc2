"""A series' period, found in its probationary values, and the alarm's rest period.

`find_period` looks for the lag of the strongest peak of the autocorrelation of a series'
probationary values (between ``MIN_PERIOD`` rows and half of them). When that peak reaches
``min_acf`` the series is taken to repeat with that period, and `AnomalyDetector` adds a second
surprise, the **seasonal difference** ``z_t - z_{t-S}`` (the value one period earlier as the
prediction), scored by the same anomaly likelihood as the network's error. A recurrent network
of 16 units does not carry a phase across a period of hundreds of rows, so it cannot say that
today's rise is missing; the seasonal difference can (NAB's artificial daily series that go
flat, jump down or lose their jump: README, "Anomaly detection").

`Alarm` is the rest period after an alarm: a detector that fires once per event (as HTM, CAD
OSE and ARTime effectively do on NAB) instead of on every row of it.
"""

from __future__ import annotations

import numpy as np

from .familiar import Familiar

MIN_PERIOD = 4  # shorter repetitions are left to the network
NEAR = 0.97  # a peak this close to the highest one, at a shorter lag, is preferred


def find_period(values: np.ndarray, min_acf: float = 0.5, rise: bool = False) -> int:
    """The period (in rows) of ``values``, or 0 when the autocorrelation has no peak at least
    ``min_acf`` between `MIN_PERIOD` rows and half of them.

    The autocorrelation at lag ``L`` is ``sum(x_t x_{t+L}) / (n - L)`` over ``sum(x_t^2) / n``
    (the mean removed); a peak is a lag above its neighbours. Multiples of a period peak as
    high as the period itself, so the shortest lag peaking within ``NEAR`` of the highest
    peak is taken. With ``rise`` a peak counts only if it stands at least ``2 / sqrt(n)`` (the
    autocorrelation's noise level for white noise) above the lowest autocorrelation at the
    lags before it: the slowly decaying autocorrelation of a trending series has small bumps
    as high as 0.5 that are not a period (``AnomalyDetector(season_rise=True)``)."""
    x = np.asarray(values, np.float64) - np.mean(values)
    n = x.size
    energy = float(x @ x)
    if n < 2 * MIN_PERIOD + 2 or not energy > 0:
        return 0
    size = 1 << (2 * n - 1).bit_length()  # the FFT's linear (not circular) correlation
    f = np.fft.rfft(x, size)
    raw = np.fft.irfft(f * np.conj(f), size)[: n // 2 + 1]
    acf = raw / (n - np.arange(raw.size)) * (n / energy)
    lags = np.arange(MIN_PERIOD, n // 2)
    peak = (acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1])
    if not peak.any():
        return 0
    peaks = lags[peak]
    if rise:  # the lowest autocorrelation before each lag, from lag 1 on
        low = np.minimum.accumulate(acf[1:])  # low[L - 2]: the lowest over lags 1 .. L - 1
        peaks = peaks[acf[peaks] - low[peaks - 2] >= 2.0 / np.sqrt(n)]
        if not peaks.size:
            return 0
    top = acf[peaks].max()
    if top < min_acf:
        return 0
    # the shortest of the peaks nearly as high as the highest: a period's multiples peak too
    return int(peaks[np.argmax(acf[peaks] >= NEAR * top)])


class Alarm:
    """After a score at least ``level``, the next ``rest`` scores are multiplied by ``damp``.

    NAB credits only the first detection inside an anomaly window and charges every detection
    outside one, so a detector should fire once per event; damping (rather than zeroing) keeps
    the order of the damped scores for a threshold below ``level * damp``. With ``familiar``
    (`rnnkit.estimators.familiar.Familiar`), an alarm at a spike like one already alarmed is
    multiplied by ``damp`` too (its rest begins all the same); it is then told every value."""

    __slots__ = ("level", "rest", "damp", "since", "familiar")

    def __init__(self, level: float, rest: int, damp: float, familiar: Familiar | None = None):
        self.level, self.rest, self.damp = level, rest, damp
        self.since = rest + 1  # rows since the last alarm
        self.familiar = familiar

    def __call__(self, score: float, value: float = 0.0, out_of_range: bool = False) -> float:
        """The score of the next row; ``value`` (as it came) and whether it was beyond the range
        so far matter only with ``familiar``."""
        self.since += 1
        if self.since <= self.rest:
            score *= self.damp
        elif score >= self.level:
            self.since = 0
            if self.familiar is not None and self.familiar.is_familiar(value, out_of_range):
                score *= self.damp
        if self.familiar is not None:
            self.familiar.add(value)
        return score

    def run(
        self,
        scores: np.ndarray,
        values: np.ndarray | None = None,
        out_of_range: np.ndarray | None = None,
    ) -> np.ndarray:
        """`__call__` on each score in turn (with its value and range check, if given; the
        values are needed with ``familiar``, which would otherwise remember zeros)."""
        if self.familiar is not None and values is None:
            raise ValueError("Alarm.run: a familiar memory needs the values of the scores")
        if values is None or self.familiar is None:
            return np.array([self(float(s)) for s in scores])
        beyond = np.zeros(scores.size, bool) if out_of_range is None else out_of_range > 0
        rows = zip(scores, values, beyond, strict=True)
        return np.array([self(float(s), float(v), bool(b)) for s, v, b in rows])
