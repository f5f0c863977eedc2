"""`Forecaster`: one global recurrent model for many time series, forecasting a horizon at once.

How a forecast is made (the ideas that worked in the M4 competition, where Smyl's ES-RNN won
with a global model normalised per window):

- **Windows.** Training draws random windows from all series: ``lookback`` points in,
  ``horizon`` points out. A series shorter than the lookback is padded on the left with its own
  seasonal cycle (its first ``season`` points repeated backwards).
- **Per-window scaling.** Each window is divided by its level, the mean of its last seasonal
  cycle (``scaling="level"``, the default when every training value is positive), or
  standardised by that mean and the window's standard deviation (``"standard"``). So one
  network serves series of any scale, and an absolute error in the scaled space is a relative
  error in the original one, which is what sMAPE and MASE measure.
- **Patches.** The recurrent layer steps over one seasonal cycle at a time (``patch`` points,
  by default ``season``): a week of hourly data is 7 steps of 24 values, not 168 steps of one,
  so a long lookback is cheap and the daily profile is one input. Each step also gets the
  covariates of its points and the calendar features of its last time (hour of day, day of
  week, day of year for time stamps; the position in the season for integer steps).
- **Direct multi-step output (the default and only mode).** The head maps the last state, the
  last ``ceil(horizon / patch)`` cycles and the known future (calendar, covariates) to all
  ``horizon`` steps at once. Direct output was chosen over autoregression: no error feeds back
  into later steps, training optimises every step of the horizon with the metric's own loss,
  a forecast is one pass instead of ``horizon`` sequential steps, and direct multi-horizon
  models (MQ-RNN, N-BEATS) match or beat recursive ones on M4.
- **Outputs.** ``"point"`` (absolute error: the median), ``"quantile"`` (pinball loss at
  ``quantiles``; the 0.5 quantile is the point forecast, the outer ones the interval) or
  ``"gaussian"`` (mean and variance by Gaussian negative log-likelihood).
- **Ensemble.** ``n_models`` networks from different seeds are trained side by side, each on
  its own batches; forecasts are their mean (quantiles averaged level by level).

The last ``horizon`` points of every series are held out for validation: training windows
end before them, the validation loss is measured on them, training stops after ``patience``
evaluations without improvement and the best weights are kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from ..data.series import Series, calendar, calendar_size
from ..data.windows import WindowStore, as_series
from ..engines import Engine, map_partitions, partitions
from ..errors import InputError
from ..forecast_metrics import smape
from ..layers.module import Module
from ..losses import gaussian_nll, pinball
from ..models.forecast import ForecastEnsemble
from ..training.distributed import shard
from .base import Estimator
from .fitting import run_fit

OUTPUTS = ("point", "quantile", "gaussian")
SCALINGS = ("auto", "level", "standard")
DEFAULT_EPOCHS = 40  # the budget when none is given
MIN_STEPS_PER_EPOCH = 25
INPUT_CLIP = 20.0  # scaled inputs beyond this are clipped (an outlier cannot blow up a step)
VAR_FLOOR = 1e-4  # the smallest variance of a Gaussian output, in scaled units
PREDICT_BATCH = 1024
PARTITION = 64  # series forecast by one call, here or on an engine's worker (rnnkit.engines)
# The Gaussian NLL 0.5 * (log v + d^2 / v) is at least 0.5 * log(VAR_FLOOR); reported above that
# bound, it stays positive, as the trainer's divergence guard expects of a loss
NLL_OFFSET = -0.5 * math.log(VAR_FLOOR)


class Forecaster(Estimator):
    """Forecast many series: ``Forecaster(horizon=48, season=24).fit(series).predict(series)``.

    ``series`` is a list of 1-D arrays (oldest first); ``times``, optional, one array of time
    stamps (``datetime64``) or integer steps per series, on a regular grid; ``covariates``,
    optional, one ``(n_i + horizon, C)`` array per series: known values of C columns for the
    history and the horizon to forecast (at fit, ``(n_i, C)`` suffices).

    Learned: ``model_`` (a `ForecastEnsemble`), ``kind_`` (the time axis: "int", "seconds",
    "months"), ``season_in_steps_`` (with integer times, the position in the season counts
    steps; False for a model saved before 2026-12-03, which counted ``ds`` units), ``lookback_``,
    ``patch_``, ``scaling_``, ``n_covariates_``, ``history_``,
    ``skipped_`` (series too short to give a training window: still forecast, never trained on).
    """

    _estimator_type = "regressor"
    model_: ForecastEnsemble

    def __init__(
        self,
        horizon: int = 1,
        season: int = 1,
        lookback: int | None = None,
        patch: int | None = None,
        output: str = "quantile",
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        scaling: str = "auto",
        calendar: bool = True,
        cell: str = "lstm",
        hidden_size: int = 64,
        head_size: int = 128,
        num_layers: int = 1,
        n_models: int = 3,
        batch_size: int = 128,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        clip: float = 1.0,
        epochs: float | None = None,
        steps: int | None = None,
        minutes: float | None = None,
        patience: int | None = 5,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        self.horizon = horizon
        self.season = season
        self.lookback = lookback
        self.patch = patch
        self.output = output
        self.quantiles = quantiles
        self.scaling = scaling
        self.calendar = calendar
        self.cell = cell
        self.hidden_size = hidden_size
        self.head_size = head_size
        self.num_layers = num_layers
        self.n_models = n_models
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip = clip
        self.epochs = epochs
        self.steps = steps
        self.minutes = minutes
        self.patience = patience
        self.seed = seed
        self.verbose = verbose

    # -- parameters ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        name = "Forecaster"
        for key in ("horizon", "season", "hidden_size", "head_size", "num_layers", "n_models"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"{name}: {key} must be a positive integer, got {value!r}")
        for key in ("lookback", "patch"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise InputError(f"{name}: {key} must be a positive integer or None, got {value!r}")
        if self.output not in OUTPUTS:
            raise InputError(f"{name}: output must be one of {OUTPUTS}, got {self.output!r}")
        if self.scaling not in SCALINGS:
            raise InputError(f"{name}: scaling must be one of {SCALINGS}, got {self.scaling!r}")
        q = np.asarray(self.quantiles, dtype=np.float64)
        if self.output == "quantile" and (
            q.ndim != 1 or len(q) == 0 or np.any((q <= 0) | (q >= 1))
        ):
            raise InputError(f"{name}: quantiles must be levels in (0, 1), got {list(np.ravel(q))}")

    def _levels(self) -> np.ndarray:
        if self.output == "quantile":
            return np.sort(np.asarray(self.quantiles, dtype=np.float64))
        return np.array([0.5])

    def _geometry(self) -> tuple[int, int]:
        """(lookback, patch): the patch is the season (1 without one); the lookback a whole
        number of patches, by default 14 cycles (at least 4 * horizon points)."""
        patch = self.patch or max(self.season, 1)
        lookback = self.lookback or max(14 * patch, 4 * self.horizon, 8)
        return -(-lookback // patch) * patch, patch

    # -- fit ---------------------------------------------------------------------------------------
    def fit(
        self,
        y: Sequence[Any],
        times: Sequence[Any] | None = None,
        covariates: Sequence[Any] | None = None,
        out: str | Path | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Forecaster:
        """Learn from the series ``y``; the last ``horizon`` points of each are validation.
        ``out``: keep the best checkpoint there (``.last`` and ``.loss.png`` beside it)."""
        self._check_params()
        series, kind = as_series(y, times, covariates, "fit")
        return self.fit_series(series, kind, out, metadata)

    def fit_series(
        self,
        series: list[Series],
        kind: str,
        out: str | Path | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Forecaster:
        """`fit` on series already on their grid (`rnnkit.data.series`)."""
        with one_blas_thread():
            return self._fit_series(series, kind, out, metadata)

    def _fit_series(
        self,
        series: list[Series],
        kind: str,
        out: str | Path | None,
        metadata: dict[str, Any] | None,
    ) -> Forecaster:
        self._check_params()
        H = self.horizon
        self.kind_ = kind
        self.season_in_steps_ = True
        self.lookback_, self.patch_ = self._geometry()
        self.n_covariates_ = series[0].covariates.shape[1]
        positive = all(np.all(s.values[: len(s.values) - H] > 0) for s in series)
        self.scaling_ = (
            ("level" if positive else "standard") if self.scaling == "auto" else (self.scaling)
        )
        if self.n_covariates_:
            stacked = np.concatenate([s.covariates[: len(s.values)] for s in series])
            self.cov_mean_ = stacked.mean(axis=0)
            self.cov_std_ = np.maximum(stacked.std(axis=0), 1e-8)
        else:
            self.cov_mean_ = self.cov_std_ = np.zeros(0)
        store = self._store(series)
        n = np.array([len(s.values) for s in series])
        hi = n - 2 * H  # the last training origin: targets end before the validation part
        trainable = np.flatnonzero(hi >= 1)
        if len(trainable) == 0:
            raise InputError(
                f"Forecaster.fit: every series is too short ({n.max()} points at most); "
                f"expected at least 2 * horizon + 1 = {2 * H + 1} (training and validation)"
            )
        self.skipped_ = [series[i].uid for i in np.flatnonzero(hi < 1)]
        lo = np.minimum(self.lookback_, hi)
        valid = np.flatnonzero(n > H)
        self.model_ = self._network()
        objective = ForecastObjective(self, store, trainable, lo, hi, valid, n - H)
        run_fit(
            self,
            objective,
            unit="window",
            default_epochs=DEFAULT_EPOCHS,
            out=out,
            metadata=metadata,
        )
        return self

    def _network(self) -> ForecastEnsemble:
        L, P = self.lookback_, self.patch_
        K = self._calendar_size()
        C = self.n_covariates_
        net = {
            "input_size": P * (1 + C) + K,
            "extra_size": self._skip() + self.horizon * C + K,
            "horizon": self.horizon,
            "outputs": {"point": 1, "gaussian": 2}.get(self.output, len(self._levels())),
            "hidden_size": self.hidden_size,
            "head_size": self.head_size,
            "num_layers": self.num_layers,
            "cell": self.cell,
        }
        assert L % P == 0
        model = ForecastEnsemble(self.n_models, net, seed=self.seed)
        for k in range(self.n_models):
            self._start_at_seasonal_naive(model.member(k).skip.params["weight"])
        return model

    def _start_at_seasonal_naive(self, w: np.ndarray) -> None:
        """Set the head's linear skip to the seasonal naive forecast (each step the value one
        season earlier among the last points the head sees; the last value without a season):
        training starts from that benchmark and learns what improves on it."""
        skip, K = self._skip(), w.shape[0] // self.horizon
        first = self.hidden_size  # z follows the recurrent state in the head's input
        m = self.season if 1 < self.season <= skip else 1
        for j in range(self.horizon):
            lag = first + skip - m + (j % m)
            for k in range(K if self.output != "gaussian" else 1):
                w[j * K + k, lag] = 1.0

    def _skip(self) -> int:
        """Last points handed to the head directly: whole cycles covering the horizon."""
        return min(self.lookback_, -(-self.horizon // self.patch_) * self.patch_)

    def _calendar_size(self) -> int:
        return calendar_size(self.kind_, self.season) if self.calendar else 0

    def _store(self, series: list[Series]) -> WindowStore:
        return WindowStore(
            series, self.lookback_, self.horizon, self.season, self.cov_mean_, self.cov_std_
        )

    # -- windows -----------------------------------------------------------------------------------
    def _windows(
        self, store: WindowStore, rows: np.ndarray, origins: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Scaled inputs of the windows of series ``rows`` whose forecast starts at
        ``origins``: ``x`` (T, B, F), ``z`` (B, E), scaled targets (B, H) (garbage past a
        series' end), and each window's ``loc`` and ``scale`` (B,)."""
        L, P, H = self.lookback_, self.patch_, self.horizon
        B, T = len(rows), L // P
        pos = store.offset[rows, None] + origins[:, None] + np.arange(-L, H)  # (B, L + H)
        win = store.values[pos]
        past = win[:, :L]
        w = min(L, P if P > 1 else max(self.season, 8))
        loc = past[:, -w:].mean(axis=1)
        if self.scaling_ == "level":
            scale = np.abs(loc)
            scale = np.where(scale > 1e-8, scale, 1.0)
            loc = scale
        else:
            scale = past.std(axis=1)
            scale = np.maximum(scale, 1e-3 * np.abs(past).mean(axis=1) + 1e-8)
        scaled = (win - loc[:, None]) / scale[:, None]
        x_in = np.clip(scaled[:, :L], -INPUT_CLIP, INPUT_CLIP)
        parts = [x_in.reshape(B, T, P)]
        extra = [x_in[:, L - self._skip() :]]
        C = self.n_covariates_
        if C:
            cov = store.covariates[pos]  # (B, L + H, C)
            parts.append(cov[:, :L].reshape(B, T, P * C))
            extra.append(cov[:, L:].reshape(B, H * C))
        if self.calendar and self._calendar_size():
            index = origins[:, None] - L + P * np.arange(1, T + 1) - 1  # each patch's last
            t = store.start[rows, None] + index * store.step[rows, None]
            t0 = store.start[rows] + origins * store.step[rows]
            if self.kind_ == "int" and self.season_in_steps_:  # the position in the season
                # counts steps, not ds units (a model saved before 2026-12-03 counted ds units)
                t, t0 = t // store.step[rows, None], t0 // store.step[rows]
            parts.append(calendar(self.kind_, self.season, t))
            extra.append(calendar(self.kind_, self.season, t0))
        x = np.concatenate(parts, axis=2).transpose(1, 0, 2).astype(np.float32)
        z = np.concatenate(extra, axis=1).astype(np.float32)
        return x, z, scaled[:, L:], loc, scale

    # -- predictions in the scaled space -------------------------------------------------------
    def _scaled(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The ensemble's forecast (B, H, Q) in scaled units (quantile levels of `_levels`,
        or the Gaussian mean as Q = 1), and the Gaussian variance (B, H) or None."""
        outs = [
            np.asarray(self.model_.member(k)(x, z), np.float64) for k in range(len(self.model_))
        ]
        if self.output == "gaussian":
            means = np.stack([o[..., 0] for o in outs])
            var = np.stack([softplus(o[..., 1]) + VAR_FLOOR for o in outs])
            return means.mean(0)[..., None], var.mean(0) + means.var(0)
        return np.mean([np.sort(o, axis=-1) for o in outs], axis=0), None

    def _predict_store(
        self, store: WindowStore, rows: np.ndarray, origins: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
        """Scaled forecasts of many windows in batches: (quantiles or mean, var, loc, scale)."""
        parts = []
        for s in range(0, len(rows), PREDICT_BATCH):
            x, z, _, loc, scale = self._windows(
                store, rows[s : s + PREDICT_BATCH], origins[s : s + PREDICT_BATCH]
            )
            q, var = self._scaled(x, z)
            parts.append((q, var, loc, scale))
        q = np.concatenate([p[0] for p in parts])
        var = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])  # type: ignore[misc]
        return (
            q,
            var,
            np.concatenate([p[2] for p in parts]),
            np.concatenate([p[3] for p in parts]),
        )

    # -- predict -----------------------------------------------------------------------------------
    def forecast_series(
        self,
        series: list[Series],
        levels: Sequence[float] = (),
        engine: str | Engine = "local",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Point forecasts (N, horizon) after the end of each series, and the quantiles
        ``levels`` (N, horizon, len(levels)) (from the Gaussian, or interpolated between the
        trained quantile levels; a level outside them is an `InputError`).

        The series are forecast in partitions of `PARTITION` consecutive series, one after the
        other here or on ``engine``'s workers ("ray", "dask" or an `rnnkit.Engine`;
        `rnnkit.engines`): the same numbers either way, in the order of ``series``."""
        self._check_fitted("predict")
        for s in series:
            if s.covariates.shape[1] != self.n_covariates_:
                raise InputError(
                    f"Forecaster.predict: series {s.uid!r} has {s.covariates.shape[1]} "
                    f"covariates, the model was fitted with {self.n_covariates_} (expected the "
                    "covariate columns of the training file)"
                )
            if self.n_covariates_ and len(s.covariates) < len(s.values) + self.horizon:
                raise InputError(
                    f"Forecaster.predict: series {s.uid!r} has covariates for "
                    f"{len(s.covariates) - len(s.values)} future steps; expected {self.horizon} "
                    "(in a CSV: rows after its last y, y left empty, holding the covariates)"
                )
        lv = tuple(float(p) for p in levels)
        if any(not 0 < p < 1 for p in lv):
            raise InputError(f"Forecaster: quantile levels must be in (0, 1), got {list(lv)}")
        if self.output != "gaussian":  # a level outside the trained ones, before any work
            self._interpolate(np.zeros((1, 1, len(self._levels()))), np.array(lv))
        parts = [(series[s], lv) for s in partitions(len(series), PARTITION)]
        with one_blas_thread():  # once: threadpoolctl costs ~10 ms a call (engine workers: 1)
            done = map_partitions(_forecast_partition, self, parts, engine)
        return np.concatenate([d[0] for d in done]), np.concatenate([d[1] for d in done])

    def _forecast_part(
        self, series: list[Series], levels: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """`forecast_series` of one partition."""
        store = self._store(series)
        rows = np.arange(len(series))
        origins = np.array([len(s.values) for s in series])
        q, var, loc, scale = self._predict_store(store, rows, origins)
        point = self._point(q)
        lv = np.asarray(levels, dtype=np.float64)
        if var is not None:
            z = np.array([NormalDist().inv_cdf(float(p)) for p in lv])
            quant = point[..., None] + np.sqrt(var)[..., None] * z
        else:
            quant = self._interpolate(q, lv)
        return _unscale(point, loc, scale), _unscale(quant, loc[:, None], scale[:, None])

    def _point(self, q: np.ndarray) -> np.ndarray:
        if self.output == "gaussian":
            return q[..., 0]
        return (
            self._interpolate(q, np.array([0.5]))[..., 0]
            if self.output == "quantile"
            else (q[..., 0])
        )

    def _interpolate(self, q: np.ndarray, levels: np.ndarray) -> np.ndarray:
        trained = self._levels()
        if len(levels) == 0:
            return np.zeros((*q.shape[:-1], 0))
        if (
            self.output != "quantile"
            or np.any(levels < trained[0] - 1e-9)
            or np.any(levels > trained[-1] + 1e-9)
        ):
            raise InputError(
                f"Forecaster: quantiles {levels.tolist()} are outside the trained levels "
                f"{trained.tolist()} (output={self.output!r}); fit with output='quantile' and "
                "quantiles covering them, or output='gaussian'"
            )
        if len(trained) == 1:
            return np.repeat(q, len(levels), axis=-1)
        out = np.empty((*q.shape[:-1], len(levels)))
        for j, p in enumerate(levels):
            k = int(np.clip(np.searchsorted(trained, p) - 1, 0, len(trained) - 2))
            a = (p - trained[k]) / (trained[k + 1] - trained[k])
            out[..., j] = (1 - a) * q[..., k] + a * q[..., k + 1]
        return out

    def predict(
        self,
        y: Sequence[Any],
        times: Sequence[Any] | None = None,
        covariates: Sequence[Any] | None = None,
        engine: str | Engine = "local",
    ) -> np.ndarray:
        """Point forecasts ``(N, horizon)`` of the ``horizon`` steps after each series
        (``engine``: where, `forecast_series`)."""
        self._check_fitted("predict")
        series, _ = as_series(y, times, covariates, "predict", self.kind_)
        return self.forecast_series(series, engine=engine)[0]

    def predict_quantiles(
        self,
        y: Sequence[Any],
        quantiles: Sequence[float],
        times: Sequence[Any] | None = None,
        covariates: Sequence[Any] | None = None,
        engine: str | Engine = "local",
    ) -> np.ndarray:
        """``(N, horizon, len(quantiles))`` forecast quantiles."""
        self._check_fitted("predict")
        series, _ = as_series(y, times, covariates, "predict", self.kind_)
        return self.forecast_series(series, quantiles, engine)[1]

    def predict_interval(
        self,
        y: Sequence[Any],
        coverage: float = 0.8,
        times: Sequence[Any] | None = None,
        covariates: Sequence[Any] | None = None,
        engine: str | Engine = "local",
    ) -> tuple[np.ndarray, np.ndarray]:
        """The central ``coverage`` prediction interval: ``(lower, upper)``, each (N, horizon)."""
        if not 0 < coverage < 1:
            raise InputError(
                f"Forecaster.predict_interval: coverage must be in (0, 1), got {coverage}"
            )
        levels = [(1 - coverage) / 2, (1 + coverage) / 2]
        q = self.predict_quantiles(y, levels, times, covariates, engine)
        return q[..., 0], q[..., 1]

    def score(self, y: Sequence[Any], y_future: Sequence[Any]) -> float:
        """Minus the mean sMAPE of the forecasts of ``y`` against ``y_future`` (greater is
        better, as scikit-learn expects)."""
        pred = self.predict(y)
        return -float(
            np.mean(
                [
                    smape(np.asarray(a)[: self.horizon], p)
                    for a, p in zip(y_future, pred, strict=True)
                ]
            )
        )

    # -- checkpoints -------------------------------------------------------------------------------
    def _learned(self) -> dict[str, Any]:
        return {
            "kind": self.kind_,
            "season_in_steps": self.season_in_steps_,
            "lookback": self.lookback_,
            "patch": self.patch_,
            "scaling": self.scaling_,
            "n_covariates": self.n_covariates_,
            "cov_mean": np.asarray(self.cov_mean_).tolist(),
            "cov_std": np.asarray(self.cov_std_).tolist(),
            "skipped": list(getattr(self, "skipped_", [])),
        }

    def _restore(self, learned: dict[str, Any], model: Module) -> None:
        if not isinstance(model, ForecastEnsemble):
            raise TypeError(f"expected a ForecastEnsemble network, got {type(model).__name__}")
        self.quantiles = tuple(self.quantiles)
        self.kind_ = str(learned["kind"])
        self.season_in_steps_ = bool(learned.get("season_in_steps", False))  # False: older
        self.lookback_ = int(learned["lookback"])
        self.patch_ = int(learned["patch"])
        self.scaling_ = str(learned["scaling"])
        self.n_covariates_ = int(learned["n_covariates"])
        self.cov_mean_ = np.asarray(learned["cov_mean"], dtype=np.float64)
        self.cov_std_ = np.asarray(learned["cov_std"], dtype=np.float64)
        self.skipped_ = list(learned.get("skipped", []))
        model.eval()
        self.model_ = model


def one_blas_thread() -> Any:
    """BLAS on one thread: the products here are small (a batch of windows by a few hundred
    weights), and a second BLAS thread costs more than it brings, up to 80 times on a busy
    2-core machine (0.16 ms against 12 ms for (128, 114) x (114, 128), measured); rnnkit's own
    compiled time loops still use every core."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _forecast_partition(
    model: Forecaster, part: tuple[list[Series], tuple[float, ...]]
) -> tuple[np.ndarray, np.ndarray]:
    """One partition's forecasts (`rnnkit.engines.map_partitions` calls it, here or on a
    worker): ``(point, quantiles)`` of its series at its levels."""
    return model._forecast_part(*part)


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _unscale(q: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    shape = (-1,) + (1,) * (q.ndim - 1)
    return q * np.reshape(scale, shape) + np.reshape(loc, shape)


class ForecastObjective:
    """One training step: a batch of random windows for each member of the ensemble, the
    loss of the output kind in scaled units; evaluation on the last ``horizon`` points of each
    series. Batches of step ``s`` come from a generator seeded by (seed, s, member)."""

    def __init__(
        self,
        est: Forecaster,
        store: WindowStore,
        trainable: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        valid: np.ndarray,
        valid_origin: np.ndarray,
    ) -> None:
        self.est, self.store = est, store
        self.model = est.model_
        self.trainable, self.lo, self.hi = trainable, lo, hi
        self.valid, self.valid_origin = valid, valid_origin
        windows = int(np.sum(hi[trainable] - lo[trainable] + 1))
        per_epoch = math.ceil(windows / (est.batch_size * max(est.patch_, 1)))
        self.steps_per_epoch = max(MIN_STEPS_PER_EPOCH, per_epoch)
        self.eval_note = ""
        self.shard: tuple[int, int] | None = None  # data-parallel: (rank, world), its windows

    def _loss(self, out: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        est = self.est
        if est.output == "gaussian":
            raw = out[..., 1]
            var = softplus(raw) + VAR_FLOOR
            loss, dmean, dvar = gaussian_nll(out[..., 0], var, target.astype(out.dtype))
            loss += NLL_OFFSET
            grad = np.stack([dmean, dvar / (1 + np.exp(-raw))], axis=-1)  # softplus' = sigmoid
            return loss, grad
        loss, grad = pinball(out, target.astype(out.dtype), est._levels())
        return loss, grad

    def train_step(self, step: int) -> tuple[float, int]:
        est = self.est
        self.model.train()
        losses = []
        B = est.batch_size
        for k in range(len(self.model)):
            rng = np.random.default_rng([est.seed, step, k])
            rows = self.trainable[rng.integers(len(self.trainable), size=B)]
            origins = rng.integers(self.lo[rows], self.hi[rows] + 1)
            mine = shard(B, self.shard)  # every rank draws the same windows, keeps its own
            rows, origins = rows[mine], origins[mine]
            if len(rows) == 0:  # more ranks than windows in a batch
                continue
            x, z, target, _, _ = est._windows(self.store, rows, origins)
            out, backward = self.model.member(k).forward_train(x, z)
            loss, grad = self._loss(out, target)
            backward(grad)
            losses.append(loss)
        if not losses:
            return 0.0, 0
        return float(np.mean(losses)), len(rows) * len(self.model)

    def evaluate(self) -> float:
        est = self.est
        rows = self.valid
        origins = self.valid_origin[rows]
        self.model.eval()
        q, var, loc, scale = est._predict_store(self.store, rows, origins)
        self.model.train()
        pos = self.store.offset[rows, None] + origins[:, None] + np.arange(est.horizon)
        actual = self.store.values[pos]
        target = (actual - loc[:, None]) / scale[:, None]
        if var is not None:
            loss = gaussian_nll(q[..., 0], var, target)[0] + NLL_OFFSET
        else:
            loss = pinball(q, target, est._levels())[0]
        point = _unscale(est._point(q), loc, scale)
        s = np.mean([smape(a, p) for a, p in zip(actual, point, strict=True)])
        self.eval_note = f"sMAPE {s:.3f}"
        return float(loss)

    def carry_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def load_carry(self, arrays: dict[str, np.ndarray]) -> None:
        pass
