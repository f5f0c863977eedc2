"""`Pool`: a sequence ``(T, B, F)`` to one vector per sequence ``(B, F)``, honouring ``lengths``.

With ``m_tb = 1`` for the valid steps ``t < lengths[b]`` (every step without lengths):

    last:  y_b = x_{L_b - 1, b}                        dx_{L_b - 1, b} = dy_b, 0 elsewhere
    mean:  y_b = sum_t m_tb x_tb / L_b                 dx_tb = m_tb dy_b / L_b
    max:   y_bf = max_{t: m_tb} x_tbf = x_{a_bf, b, f}  dx_{a_bf, b, f} = dy_bf (to the argmax)
    meanmax: y_b = [mean_b, max_b]  (2F features)      dx = dx_mean(dy_b[:F]) + dx_max(dy_b[F:])

``L_b = lengths[b]``. For a bidirectional recurrent layer the output at ``L_b - 1`` holds the
forward direction's last state but the reverse direction's *first* (it has seen one input).
``Pool("last", bidirectional=True)`` takes the first half of the features at ``L_b - 1`` and the
second half at step 0, which is PyTorch's ``h_n`` of both directions concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError, ShapeError
from .checks import check_finite, check_lengths, flag, like_input, show, time_mask
from .module import Module

MODES = ("last", "mean", "max", "meanmax")


@dataclass(frozen=True)
class PoolConfig:
    mode: str = "mean"
    bidirectional: bool = False


class Pool(Module):
    """Pooling over time: ``y = pool(x, lengths=None)``, ``(T, B, F)`` -> ``(B, F)``
    (``"meanmax"``: ``(B, 2F)``, the mean's features then the maximum's)."""

    config_class = PoolConfig
    accepts_lengths = True  # `Sequential` passes ``lengths`` on to it
    pools_time = True  # ... and no further: its output has no time axis

    def __init__(self, mode: str = "mean", bidirectional: bool = False) -> None:
        super().__init__()
        if not isinstance(mode, str) or mode not in MODES:
            raise InputError(f"Pool: mode must be one of {', '.join(MODES)}, got {show(mode)}")
        self.mode = mode
        self.bidirectional = flag("Pool", "bidirectional", bidirectional)
        if self.bidirectional and mode != "last":
            raise InputError(f"Pool: bidirectional=True applies to mode 'last' only, got {mode!r}")

    @property
    def config(self) -> PoolConfig:
        return PoolConfig(self.mode, self.bidirectional)

    def _prepare(self, x: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray | None]:
        x = like_input("Pool", "input", x)
        if x.ndim != 3:
            raise ShapeError(f"Pool: expected input of shape (T, B, F), got {tuple(x.shape)}")
        T, B, F = x.shape
        if T == 0:
            raise InputError(f"Pool: input has no steps, shape {tuple(x.shape)}")
        if self.bidirectional and F % 2:
            raise ShapeError(f"Pool: bidirectional expects an even feature size, got F={F}")
        check_finite("Pool", "input", x)
        lens = None if lengths is None else check_lengths("Pool", lengths, B, T)
        return x, lens

    def _index(self, x: np.ndarray, lens: np.ndarray | None) -> np.ndarray:
        """Time index ``(B, F)`` that "last" and "max" (and meanmax's max) read each output
        from."""
        T, B, F = x.shape
        if self.mode in ("max", "meanmax"):
            masked = np.where(time_mask(lens, T, B)[:, :, None], x, -np.inf)  # (T, B, F)
            return masked.argmax(axis=0)  # (B, F): the first maximum over valid steps
        last = np.full(B, T - 1) if lens is None else lens - 1  # (B,)
        index = np.repeat(last[:, None], F, axis=1)  # (B, F)
        if self.bidirectional:
            index[:, F // 2 :] = 0  # the reverse direction ends at step 0
        return index

    def _pool(self, x, lens):
        T, B, F = x.shape
        m = time_mask(lens, T, B).astype(x.dtype)[:, :, None]  # (T, B, 1)
        count = m.sum(axis=0)  # (B, 1): L_b
        mean = (x * m).sum(axis=0) / count if self.mode in ("mean", "meanmax") else None
        if self.mode == "mean":
            return mean, (m, count, None)
        index = self._index(x, lens)  # (B, F)
        y = np.take_along_axis(x, index[None], axis=0)[0]  # (B, F)
        if self.mode == "meanmax":
            return np.concatenate([mean, y], axis=1), (m, count, index)  # (B, 2F)
        return y, (m, count, index)

    def __call__(self, x, lengths=None) -> np.ndarray:
        x, lens = self._prepare(x, lengths)
        return self._pool(x, lens)[0]

    def forward_train(self, x, lengths=None):
        """``y, backward``; ``dx = backward(dy)`` with ``dy`` of shape (B, F)."""
        x, lens = self._prepare(x, lengths)
        y, cache = self._pool(x, lens)

        def backward(dy):
            dy = like_input("Pool", "dy", dy).astype(x.dtype, copy=False)
            if dy.shape != y.shape:
                raise ShapeError(f"Pool: expected dy of shape {y.shape}, got {tuple(dy.shape)}")
            m, count, index = cache
            F = x.shape[2]
            dy_mean = dy if self.mode == "mean" else dy[:, :F] if self.mode == "meanmax" else None
            dy_max = dy[:, F:] if self.mode == "meanmax" else None if self.mode == "mean" else dy
            dx = np.zeros_like(x)
            if dy_max is not None:  # the maximum's gradient goes only where it was read
                np.put_along_axis(dx, index[None], dy_max[None], axis=0)
            if dy_mean is not None:  # each valid step gets dy / L_b
                dx += m * (dy_mean / count)[None]  # (T, B, F)
            return dx

        return y, backward
