"""A memory of the spikes a stream has already raised an alarm for (``AnomalyDetector(familiar=)``).

Many metrics spike again and again by about the same height: a CPU that jumps to 90 % of its
range every few hours, a disk that writes one burst a day. Each spike surprises the network, the
recent level and the seasonal difference as much as the first did, because a spike every few
hundred rows is rare in the likelihood's long window; so each raises an alarm, and NAB charges
every one that lies outside an anomaly window. A detector that keeps categories of what it has
seen (ARTime's adaptive resonance categories) is not surprised by a pattern it knows.

`Familiar` keeps the signature of the last `EVENTS` spikes that raised an alarm: a spike is a
value whose jump from the value before, ``j_t = x_t - x_{t-1}``, is at least ``jump`` times the
range of the values so far ``R_t``, and its signature is ``(d_t, j_t)`` with
``d_t = x_t - mean(x_{t-W} .. x_{t-1})`` (the last ``W`` values, the probationary length), on
the values as they came. When a later alarm is a spike whose signature lies within
``tol * R_t`` of a remembered one in both numbers, it is **familiar**: `AnomalyDetector` halves
its score (and its rest period begins, as after an alarm). A value beyond the range so far (the
range check) is never familiar. Other alarms (a drift, a level shift, a missing daily rise) are
left alone: their signature says little about whether they were seen.

The state of one stream is constant: the window of ``W`` values with its sums, the range, the
value before, and ``EVENTS`` signatures. The same steps score a whole series and a stream one
value at a time (`rnnkit.estimators.season.Alarm` calls `is_familiar` and `add` per row).
"""

from __future__ import annotations

import numpy as np

from . import likelihood

EVENTS = 8  # spikes remembered (the oldest is forgotten first)
_HEAD = 5  # the window's count, position, sum, sum of squares, steps since the sums were redone


class Familiar:
    """The spikes remembered by one stream; see the module docstring."""

    __slots__ = ("tol", "jump", "window", "lo", "hi", "prev", "events", "count")

    def __init__(self, tol: float, jump: float, head: np.ndarray) -> None:
        """``head``: the stream's probationary values (as they came), which fill the window and
        set the range and the value before the first one scored."""
        self.tol, self.jump = float(tol), float(jump)
        self.window = np.zeros(_HEAD + head.size)
        for x in head:
            likelihood.window_add(self.window, 0, self.window[_HEAD:], float(x))
        self.lo, self.hi = float(head.min()), float(head.max())
        self.prev = float(head[-1])
        self.events = np.zeros((EVENTS, 2))  # (d, j) of each remembered spike, a ring
        self.count = 0  # spikes remembered so far

    def is_familiar(self, x: float, out_of_range: bool) -> bool:
        """At an alarm on the value ``x``: whether it is a spike like one remembered (True), or
        else, if it is a spike, remember it (False)."""
        span = self.hi - self.lo
        j = x - self.prev
        if not span > 0 or abs(j) < self.jump * span:
            return False  # not a spike
        d = x - self.window[2] / self.window[0]
        known = self.events[: min(self.count, EVENTS)]
        near = self.tol * span
        if not out_of_range and np.any(
            (np.abs(known[:, 0] - d) <= near) & (np.abs(known[:, 1] - j) <= near)
        ):
            return True
        self.events[self.count % EVENTS] = d, j
        self.count += 1
        return False

    def add(self, x: float) -> None:
        """After each value: it joins the window, the range and becomes the value before."""
        likelihood.window_add(self.window, 0, self.window[_HEAD:], x)
        self.lo, self.hi = min(self.lo, x), max(self.hi, x)
        self.prev = x

    @staticmethod
    def nbytes(window: int) -> int:
        """Bytes of one stream's state for a window of ``window`` values."""
        return 8 * (_HEAD + window + 2 * EVENTS + 5)
