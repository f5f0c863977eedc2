"""Series from the Python API onto their grid (`as_series`), and `WindowStore`: every series
padded and laid end to end, so that a batch of training or forecast windows is one gather."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from .series import Series


class WindowStore:
    """Every series padded and laid end to end, so a batch of windows is one gather: ``lookback``
    points of seasonal back-fill before each series and ``horizon`` after it (its future
    covariates, or zeros), covariates standardised with the fitted mean and deviation."""

    def __init__(
        self,
        series: list[Series],
        lookback: int,
        horizon: int,
        season: int,
        cov_mean: np.ndarray,
        cov_std: np.ndarray,
    ) -> None:
        values, covs, offset = [], [], []
        at = 0
        C = len(cov_mean)
        for s in series:
            n = len(s.values)
            period = season if n >= season else n
            back = np.arange(-lookback, 0) % period  # the first cycle, repeated backwards
            values.append(np.concatenate([s.values[back], s.values, np.zeros(horizon)]))
            cov = np.zeros((n + horizon, C))
            if C:
                given = (s.covariates[: n + horizon] - cov_mean) / cov_std
                cov[: len(given)] = given
                covs.append(np.concatenate([cov[back], cov]))
            offset.append(at + lookback)
            at += lookback + n + horizon
        self.values = np.concatenate(values)
        self.covariates = np.concatenate(covs) if C else np.zeros((at, 0))
        self.offset = np.array(offset)
        self.start = np.array([s.start for s in series], dtype=np.float64)
        self.step = np.array([s.step for s in series], dtype=np.float64)


# -- inputs ------------------------------------------------------------------------------------
def as_series(
    y: Sequence[Any],
    times: Sequence[Any] | None,
    covariates: Sequence[Any] | None,
    what: str,
    kind: str | None = None,
) -> tuple[list[Series], str]:
    """Arrays from the Python API as `Series` on a grid, and the kind of their time axis."""
    name = f"Forecaster.{what}"
    if isinstance(y, np.ndarray) and y.ndim == 2:
        y = list(y)
    if len(y) == 0:
        raise InputError(f"{name}: expected at least one series, got none")
    for arg, given in (("times", times), ("covariates", covariates)):
        if given is not None and len(given) != len(y):
            raise InputError(
                f"{name}: {arg} has {len(given)} entries, expected one per series ({len(y)})"
            )
    out: list[Series] = []
    kinds = set()
    for i, values in enumerate(y):
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(v) == 0:
            raise InputError(f"{name}: series {i} is empty; expected at least one point")
        if not np.all(np.isfinite(v)):
            k = int(np.argmax(~np.isfinite(v)))
            raise InputError(
                f"{name}: series {i} holds {v[k]} at position {k}; expected finite numbers"
            )
        t_kind, start, step = "int", 0, 1
        if times is not None:
            t_kind, start, step = _grid(np.asarray(times[i]), len(v), f"{name}: times[{i}]")
        kinds.add(t_kind)
        cov = np.zeros((len(v), 0))
        if covariates is not None:
            cov = np.asarray(covariates[i], dtype=np.float64)
            cov = cov.reshape(len(cov), -1)
            if len(cov) < len(v) or not np.all(np.isfinite(cov)):
                raise InputError(
                    f"{name}: covariates[{i}] must be finite with at least {len(v)} rows (one per "
                    f"point, then the horizon's), got shape {cov.shape}"
                )
        out.append(Series(str(i), v, start, step, cov))
    if len(kinds) > 1:
        raise InputError(f"{name}: times mix time stamps and integer steps")
    found = kinds.pop()
    if kind is not None and found != kind:
        raise InputError(f"{name}: the model was fitted on {kind!r} times, got {found!r}")
    widths = {s.covariates.shape[1] for s in out}
    if len(widths) > 1:
        raise InputError(
            f"{name}: the series have different numbers of covariates {sorted(widths)}"
        )
    return out, found


def _grid(t: np.ndarray, n: int, what: str) -> tuple[str, int, int]:
    if t.shape != (n,):
        raise InputError(f"{what}: expected {n} times (one per point), got shape {t.shape}")
    if np.issubdtype(t.dtype, np.datetime64):
        unit = np.datetime_data(t.dtype)[0]
        kind = "months" if unit in ("M", "Y") else "seconds"
        ints = t.astype("datetime64[M]" if kind == "months" else "datetime64[s]").astype(np.int64)
    elif np.issubdtype(t.dtype, np.integer):
        kind, ints = "int", t.astype(np.int64)
    else:
        raise InputError(f"{what}: expected datetime64 or integer times, got dtype {t.dtype}")
    d = np.diff(ints)
    if len(d) and (np.any(d <= 0) or np.any(d != d[0])):
        raise InputError(
            f"{what}: expected increasing times one step apart (a regular grid); fill gaps "
            "first (rnnkit.data.series.read_long_csv does)"
        )
    return kind, int(ints[0]), int(d[0]) if len(d) else 1
