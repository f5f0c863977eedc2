"""`AnomalyDetector`: online, causal anomaly scores from a recurrent model's surprise.

How a series is scored, one value at a time (each score uses only the values before it):

1. **Probationary period.** A series' first ``probation`` values (NAB's rule gives 15 % of a
   file, at most 750) are its learning period: they are buffered (at most ``probation`` numbers)
   and score 0. At its end the series' scale is fixed (mean and standard deviation of those
   values; with ``transform="auto"`` of ``log(1 + x)`` instead, for a non-negative series whose
   probationary values fit the log scale better, `log_fits_better`: bursty counts) and, when
   the detector has not been fitted yet, the network is fitted on them: full BPTT over
   overlapping chunks, Gaussian NLL, AdamW, ``steps`` steps. The network is then fixed by
   default; with ``learn_every=N`` (opt-in) it **keeps learning**: each stream takes its own
   copy, and every ``N`` values it takes ``learn_steps`` AdamW steps on the last ``probation``
   values, each value scored before it is learned from (`rnnkit.estimators.online`). On NAB
   that gained 0.4-0.6 points (README) at the cost of the shared `StreamPool`, 1.6x the
   memory per stream and a third of the whole-series throughput, so it is off by default. The
   buffered values are then fed through the network to warm its state and the likelihood's
   windows.
2. **Surprise.** An ensemble of ``members`` small GRUs (`NextValueModel`, 4 of hidden 8, each
   from its own seed, trained each on its own NLL, held as one block-diagonal stack) reads the
   normalised value ``z_t`` and each member predicts a Gaussian ``N(mean_i, var_i)`` for
   ``z_{t+1}``; when it comes, its raw surprise (``surprise="members"``) is the mean over the
   members of each one's own ``log(1 + (z - mean_i)^2 / var_i)``, which grows with the Gaussian
   NLL of the error (``surprise="mixture"``, the default before: the same under the members'
   mixture, moment-matched, whose spread of the means widens the variance where the members
   disagree). One network of 16 scored 62-68 on NAB depending on its seed; the ensemble 63-66
   (README).
3. **Likelihood.** The score compares the short-window mean of the raw surprise with its
   long-window distribution (`rnnkit.estimators.likelihood`), as HTM's anomaly likelihood does,
   on a log scale in [0, 1], times ``network_weight`` (0.95; 1 in older checkpoints): of the
   parts, the network's raised the most false alarms per anomaly it found first on NAB, so its
   score counts for a little less than the others' (README).
4. **Seasonal difference** (``season``, "auto"). When the probationary values repeat with a
   period ``S`` (`rnnkit.estimators.season.find_period`: an autocorrelation peak of at least
   0.5; with ``season_rise`` one that also stands at least ``2 / sqrt(n)`` above the
   autocorrelation at the lags before it, so that the slowly decaying autocorrelation of a
   trending series is not read as a period), the value ``S`` rows earlier is a second
   prediction; its error ``z_t - z_{t-S}`` (variance from the probationary period) goes
   through a likelihood of its own, and the score is the larger of the two; when the value one
   period earlier predicts the probationary values better than the network does (a lower
   Gaussian NLL over them), it is the seasonal score alone.
   The network does not carry a phase across hundreds of rows; this catches a period that goes
   flat or loses its peak, and does not raise an alarm at every expected jump.
5. **Recent level** (``level``, True). The value against the mean and spread of the last
   ``probation`` values as they came (not on the log scale; `rnnkit.estimators.level`), a
   third error through a likelihood of its own; the score is the largest. When the network
   reads ``log(1 + x)``, ``level_log`` adds a fourth: the recent level of the values on that
   scale (the network's), through a likelihood of its own. The network follows a
   level shift after one step; the recent level stays surprised while its window remembers the
   old level. On NAB it raised the standard score on the 24 shared files and far more on the
   34 others (README).
6. **Range check** (``range_check``, 0.05; None: off). A value beyond the range of the
   series' values so far (as they came) by more than 5 % of that range scores 1, as
   Numenta's HTM detector in NAB does ("spatial anomaly"): a model fitted on the probationary
   period has no opinion on values it never saw.
7. **Rest after an alarm** (``alarm`` 0.4, ``rest`` ``probation // 4``): after a score of at
   least ``alarm`` (Q = 2e-7 in the likelihood), the next ``rest`` scores are halved, so that
   an event is reported once, not on each of its rows (NAB charges each row). The level was
   chosen on NAB (README, "Anomaly detection": 0.375-0.45 scored 64-68, 0.5 scored 61).
8. **Familiar spikes** (``familiar`` 0.1, None: off; ``familiar_jump`` 0.5). An alarm at a spike
   (a jump of at least ``familiar_jump`` times the range so far) whose height and jump lie within
   ``familiar`` times that range of a spike alarmed before is halved
   (`rnnkit.estimators.familiar`): a metric that spikes alike every few hours is alarmed once.
9. **An outlier's echo** (``echo`` 2.0, None: off). The network's alarm at an ordinary value
   (within ``echo / 2`` standard deviations of the recent mean) just after an outlier (one of
   the ``short_window`` values before it at least ``echo`` away) is halved: the network read
   the outlier and its surprise at the return is the outlier's echo (`rnnkit.estimators.echo`).
10. **Resolution** (``resolution`` 0.15, None: off). A recent level's alarm at a value within
   ``resolution`` times the range so far of its window's mean is halved: a change small beside
   what the stream has shown (a tweet burst beside the largest ones) is not news, as in the
   detectors that resolve values to a share of the range (README, "Anomaly detection"). The
   network's alarm is halved the same way within ``network_resolution`` (0.03) of the range.

Memory per stream is constant: the network's state (hidden floats), the likelihood's two
windows (``8 (8 + short_window + long_window)`` bytes), for a periodic series a second
likelihood and the last period of values, for the recent level a third likelihood and the last
``probation`` values (on the log scale, ``level_log``, a fourth and as many values again), with
``surprise="members"`` each member's mean and variance, with ``echo`` the last ``probation``
values on the network's scale, with online learning its own network
(weights, gradients, AdamW's moments) and its last ``probation`` values, with ``familiar`` the
last ``probation`` values and eight spikes' signatures, and, during the
probationary period only, up to ``probation`` buffered values.

Many series share one network and one `StreamPool` (`DetectorPool`) when the network is fixed
(``learn_every=0``); when it keeps learning, each series steps its own copy (a `StreamPool` of
one). Each has its own scale, its own likelihood state and its own probationary period.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from ..engines import Engine, map_partitions, partitions
from ..errors import InputError
from ..losses import gaussian_nll
from ..models.predictive import LOGVAR_MAX, LOGVAR_MIN, NextValueModel
from ..optim import AdamW, clip_grad_norm
from ..stream import StreamPool
from . import echo, likelihood, online
from . import level as recent_level
from .base import Estimator
from .familiar import Familiar
from .season import Alarm, find_period

MIN_PROBATION = 16  # values needed to fit the network and set a series' scale
CLIP = 50.0  # normalised values beyond this many standard deviations are read as this
MIN_ACF = 0.5  # season="auto": a series repeats when its autocorrelation peaks this high
DAMP = 0.5  # scores in the rest period after an alarm are multiplied by this
VAR_FLOOR = 1e-6  # the smallest variance of a seasonal difference assumed (normalised)
PARTITION = 4  # series scored by one call, here or on an engine's worker (rnnkit.engines)


def _as_series(x: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"AnomalyDetector.{what}: expected a series of numbers") from None
    if arr.ndim != 1:
        raise InputError(
            f"AnomalyDetector.{what}: expected a 1-D series (or a list of them), got shape "
            f"{arr.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InputError(
            f"AnomalyDetector.{what}: value {bad[0]} is {arr[bad[0]]}; expected finite numbers"
        )
    return arr


def _series_list(X: Any, what: str) -> tuple[list[np.ndarray], bool]:
    """The series of ``X`` and whether it was a single one."""
    if isinstance(X, np.ndarray) and X.ndim == 1:
        return [_as_series(X, what)], True
    if isinstance(X, (list, tuple)) and X and all(np.ndim(x) == 0 for x in X):
        return [_as_series(X, what)], True
    if isinstance(X, (list, tuple)):
        return [_as_series(x, what) for x in X], False
    return [_as_series(X, what)], True


def log_fits_better(head: np.ndarray) -> bool:
    """``transform="auto"``: whether ``log(1 + x)`` describes a series' probationary values
    better than ``x`` itself, as a Box-Cox choice between the two by likelihood: the Gaussian
    log-likelihood of the changes ``x_t - x_{t-1}`` against that of the changes of
    ``log(1 + x_t)`` less the Jacobian ``sum(log(1 + x_t))``. Only for values that are never
    negative; a flat series stays as it is."""
    if head.size < 3 or not head.min() >= 0:
        return False
    var = float(np.var(np.diff(head)))
    logged = np.log1p(head)
    var_log = float(np.var(np.diff(logged)))
    if not (var > 0 and var_log > 0):
        return False
    n = head.size - 1
    return bool(-0.5 * n * math.log(var_log) - float(np.sum(logged[1:])) > -0.5 * n * math.log(var))


def scale_of(values: np.ndarray) -> tuple[float, float]:
    """A series' centre and scale from its probationary values (a flat one: 0.1 % of its level)."""
    mean = float(np.mean(values))
    sd = float(np.std(values))
    if not sd > 1e-12 * max(1.0, abs(mean)):
        sd = 1e-3 * max(abs(mean), 1.0)
    return mean, sd


class AnomalyDetector(Estimator):
    """Anomaly scores in [0, 1] for streams of numbers; see the module docstring.

    >>> det = AnomalyDetector(probation=200, seed=0)
    >>> scores = det.fit_detect(values)           # one score per value, the first 200 are 0
    >>> pool = det.pool(); pool.update("s1", 3.2) # streams, one value at a time
    """

    _estimator_type = "outlier_detector"
    # checkpoints from before these parameters load with the values they behaved by
    _added_params = {
        "transform": None,
        "level": False,
        "learn_every": 0,
        "surprise": "mixture",
        "level_log": False,
        "season_rise": False,
        "network_weight": 1.0,
        "familiar": None,
        "familiar_jump": 0.5,
        "echo": None,
        "resolution": None,
        "network_resolution": None,
    }
    model_: NextValueModel

    def __init__(
        self,
        cell: str = "gru",
        hidden_size: int = 8,
        num_layers: int = 1,
        members: int = 4,
        probation: int = 750,
        short_window: int = 3,
        long_window: int = 8640,
        warmup: int = 100,
        steps: int = 100,
        lr: float = 1e-2,
        chunk: int = 64,
        range_check: float | None = 0.05,
        season: int | str | None = "auto",
        transform: str | None = "auto",
        level: bool = True,
        level_log: bool = True,
        surprise: str = "members",
        season_rise: bool = True,
        network_weight: float = 0.95,
        learn_every: int = 0,
        learn_steps: int = 5,
        learn_lr: float = 3e-3,
        alarm: float | None = 0.4,
        rest: int | None = None,
        familiar: float | None = 0.1,
        familiar_jump: float = 0.5,
        echo: float | None = 2.0,
        resolution: float | None = 0.15,
        network_resolution: float | None = 0.03,
        seed: int = 0,
    ) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.members = members
        self.probation = probation
        self.short_window = short_window
        self.long_window = long_window
        self.warmup = warmup
        self.steps = steps
        self.lr = lr
        self.chunk = chunk
        self.range_check = range_check
        self.season = season
        self.transform = transform
        self.level = level
        self.level_log = level_log
        self.surprise = surprise
        self.season_rise = season_rise
        self.network_weight = network_weight
        self.learn_every = learn_every
        self.learn_steps = learn_steps
        self.learn_lr = learn_lr
        self.alarm = alarm
        self.rest = rest
        self.familiar = familiar
        self.familiar_jump = familiar_jump
        self.echo = echo
        self.resolution = resolution
        self.network_resolution = network_resolution
        self.seed = seed

    def _check_params(self) -> None:
        for name in (
            "hidden_size",
            "num_layers",
            "members",
            "short_window",
            "long_window",
            "steps",
            "chunk",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(
                    f"AnomalyDetector: {name} must be a positive integer, got {value!r}"
                )
        if not isinstance(self.probation, (int, np.integer)) or self.probation < MIN_PROBATION:
            raise InputError(
                f"AnomalyDetector: probation must be an integer of at least {MIN_PROBATION} "
                f"values, got {self.probation!r}"
            )
        if not isinstance(self.warmup, (int, np.integer)) or self.warmup < 2:
            raise InputError(
                f"AnomalyDetector: warmup must be an integer >= 2, got {self.warmup!r}"
            )
        if self.range_check is not None and not self.range_check >= 0:
            raise InputError(
                f"AnomalyDetector: range_check must be >= 0 or None, got {self.range_check!r}"
            )
        if not (
            self.season is None
            or self.season == "auto"
            or (isinstance(self.season, (int, np.integer)) and self.season >= 0)
        ):
            raise InputError(
                f"AnomalyDetector: season must be 'auto', a period in rows (0: none) or None, "
                f"got {self.season!r}"
            )
        if isinstance(self.season, (int, np.integer)) and self.season > self.probation // 2:
            raise InputError(
                f"AnomalyDetector: season {self.season} is longer than half the probationary "
                f"period ({self.probation} values); expected at most {self.probation // 2}"
            )
        for name in ("level", "level_log", "season_rise"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InputError(
                    f"AnomalyDetector: {name} must be True or False, got {getattr(self, name)!r}"
                )
        if self.surprise not in ("members", "mixture"):
            raise InputError(
                f"AnomalyDetector: surprise must be 'members' or 'mixture', got {self.surprise!r}"
            )
        if not (
            isinstance(self.network_weight, (int, float, np.floating))
            and 0 < self.network_weight <= 1
        ):
            raise InputError(
                f"AnomalyDetector: network_weight must be in (0, 1], got {self.network_weight!r}"
            )
        if self.transform not in ("auto", None):
            raise InputError(
                f"AnomalyDetector: transform must be 'auto' or None, got {self.transform!r}"
            )
        if self.alarm is not None and not 0 < self.alarm <= 1:
            raise InputError(
                f"AnomalyDetector: alarm must be in (0, 1] or None, got {self.alarm!r}"
            )
        if self.rest is not None and not (
            isinstance(self.rest, (int, np.integer)) and self.rest >= 0
        ):
            raise InputError(
                f"AnomalyDetector: rest must be a non-negative integer or None, got {self.rest!r}"
            )
        if self.familiar is not None and not (
            isinstance(self.familiar, (int, float, np.floating)) and self.familiar > 0
        ):
            raise InputError(
                f"AnomalyDetector: familiar must be a positive share of the range or None, got "
                f"{self.familiar!r}"
            )
        if not (
            isinstance(self.familiar_jump, (int, float, np.floating)) and self.familiar_jump > 0
        ):
            raise InputError(
                f"AnomalyDetector: familiar_jump must be a positive share of the range, got "
                f"{self.familiar_jump!r}"
            )
        if self.echo is not None and not (
            isinstance(self.echo, (int, float, np.floating)) and self.echo > 0
        ):
            raise InputError(
                f"AnomalyDetector: echo must be a positive number of standard deviations or "
                f"None, got {self.echo!r}"
            )
        for name in ("resolution", "network_resolution"):
            share = getattr(self, name)
            if share is not None and not (
                isinstance(share, (int, float, np.floating)) and share > 0
            ):
                raise InputError(
                    f"AnomalyDetector: {name} must be a positive share of the range or None, "
                    f"got {share!r}"
                )
        if not self.lr > 0:
            raise InputError(f"AnomalyDetector: lr must be positive, got {self.lr!r}")
        for name in ("learn_every", "learn_steps"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise InputError(
                    f"AnomalyDetector: {name} must be a non-negative integer, got {value!r}"
                )
        if not self.learn_lr > 0:
            raise InputError(f"AnomalyDetector: learn_lr must be positive, got {self.learn_lr!r}")

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> AnomalyDetector:
        """Fit the network on the probationary part (the first ``probation`` values) of each
        series of ``X`` (one series, or a list of them), each normalised by its own scale."""
        self._check_params()
        series, _ = _series_list(X, "fit")
        parts = []
        for k, s in enumerate(series):
            head = s[: self.probation]
            if head.size < MIN_PROBATION:
                raise InputError(
                    f"AnomalyDetector.fit: series {k} has {head.size} values; expected at least "
                    f"{MIN_PROBATION}"
                )
            head, _ = self._model_space(head, head)
            mean, sd = scale_of(head)
            parts.append(np.clip((head - mean) / sd, -CLIP, CLIP))
        self.model_ = NextValueModel(
            self.cell, self.hidden_size, self.num_layers, seed=self.seed, members=self.members
        )
        self.losses_ = _train(self.model_, parts, self.steps, self.lr, self.chunk)
        return self

    def _learned(self) -> dict[str, Any]:
        return {"losses": [float(v) for v in self.losses_]}

    def _restore(self, learned: dict[str, Any], model: Any) -> None:
        if not isinstance(model, NextValueModel):
            raise InputError(f"expected a NextValueModel, got {type(model).__name__}")
        self.model_ = model
        self.losses_ = list(learned.get("losses", []))

    # -- scoring -----------------------------------------------------------------------------
    def detect(self, X: Any, engine: str | Engine = "local") -> Any:
        """Scores of each value of a series (or of each series of a list), causal; the first
        ``probation`` values of each series score 0 (its learning period). The series are
        scored in partitions of `PARTITION`, here or on ``engine``'s workers ("ray", "dask" or
        an `rnnkit.Engine`; `rnnkit.engines`): the same numbers, in the order of ``X``."""
        self._check_fitted("detect")
        series, single = _series_list(X, "detect")
        parts = [series[s] for s in partitions(len(series), PARTITION)]
        out = [
            scores
            for done in map_partitions(_detect_partition, self, parts, engine)
            for scores in done
        ]
        return out[0] if single else out

    def fit_detect(self, X: Any, engine: str | Engine = "local") -> Any:
        """`fit` on the probationary parts, then `detect`: what ``rnnkit detect`` does."""
        return self.fit(X).detect(X, engine)

    def _detect_one(self, s: np.ndarray) -> np.ndarray:
        """The whole series at once: the sequence forward of the network, the likelihood's
        loop; the same numbers as `DetectorPool` stepping through it (tested)."""
        scores = np.zeros(s.size)
        if s.size < self.probation:
            return scores  # still learning
        parts = self._parts(s)
        out_of_range = parts.pop("range", None)
        raw = np.maximum.reduce(list(parts.values()))
        if out_of_range is not None:
            raw[out_of_range > 0] = 1.0
        P = self.probation
        scores[P:] = self._alarm(s[:P]).run(raw, s[P:], out_of_range)
        return scores

    def _parts(self, s: np.ndarray) -> dict[str, np.ndarray]:
        """The parts of the score of each value after the probationary period, before the
        largest is taken and the alarm's rest applied (`_detect_one`): "network" (absent where
        the seasonal score stands alone), "seasonal", "level", "level_log" (each when it
        applies), and "range" (1 where a value is out of range, then the score is 1)."""
        P = min(self.probation, s.size)
        x, logged = self._model_space(s, s[:P])
        mean, sd = scale_of(x[:P])
        z = np.clip((x - mean) / sd, -CLIP, CLIP)
        out = self._network_out(z, P)  # (T, 2K)
        state = likelihood.new_state(self.short_window, self.long_window)
        lik = np.empty(z.size - 1)
        if self._by_members(out.shape[-1] // 2):  # each member's own surprise, their mean
            means, variances = _member_gaussians(z[:-1], out[:-1])  # predictions for z[t + 1]
            raws = _member_surprise(z[1:, None], means, variances)
            likelihood.run_raw(state, raws, *self._windows(), lik)
        else:  # the surprise under the members' mixture
            mu, var = NextValueModel.gaussian(z[:, None], out)  # predictions for z[t + 1]
            likelihood.run(state, z[1:] - mu[:-1], var[:-1], *self._windows(), lik)
        parts = {"network": lik[P - 1 :] * float(self.network_weight)}  # lik[t - 1] scores z[t]
        heard = self._echo()
        if heard is not None:  # the network's alarms at an outlier's echo, halved
            echoes = np.empty(z.size, dtype=np.bool_)
            echo.run(echo.new_state(P), z, heard[0], int(self.short_window), echoes)
            net = parts["network"]
            net[echoes[P:] & (net >= heard[1])] *= DAMP
        period, svar, use_net = self._season_of(z[:P])
        if period:  # the seasonal difference's likelihood; seasonal[k] scores z[k + period]
            state = likelihood.new_state(self.short_window, self.long_window)
            diff = z[period:] - z[:-period]
            seasonal = np.empty(diff.size)
            likelihood.run(state, diff, np.full(diff.size, svar), *self._windows(), seasonal)
            parts["seasonal"] = seasonal[P - period :]
            if not use_net:  # the seasonal score alone
                del parts["network"]
        levels = {}  # the recent levels' likelihoods; their scores[t] score z[t]
        if self.level:  # on the values as they came
            levels["level"] = self._level_space(s, P) if logged else z
        if self.level and self.level_log and logged:  # and on the log scale too
            levels["level_log"] = z
        means = np.full(z.size, np.nan)  # the raw level's window mean before each value
        for name, values in levels.items():
            level_scores = np.empty(z.size)
            recent_level.run_means(
                recent_level.new_state(P),
                likelihood.new_state(self.short_window, self.long_window),
                values,
                *self._windows(),
                level_scores,
                means if name == "level" else np.empty(z.size),
            )
            parts[name] = level_scores[P:]
        if "level" in levels and self.alarm is not None:  # alarms at a change too small halved
            for share, names in (
                (self.resolution, list(levels)),
                (self.network_resolution, ["network"]),
            ):
                if share is None:
                    continue
                tiny = np.abs(levels["level"] - means) < self._small_limits(s, P, float(share))
                for name in names:
                    if name in parts:
                        part = parts[name]
                        part[tiny[P:] & (part >= float(self.alarm))] *= DAMP
        if self.range_check is not None:
            lo = np.minimum.accumulate(s)[P - 1 : -1]  # the range of the values before t
            hi = np.maximum.accumulate(s)[P - 1 : -1]
            tol = self.range_check * (hi - lo)
            out_of_range = ((s[P:] > hi + tol) | (s[P:] < lo - tol)) & (hi > lo)
            parts["range"] = out_of_range.astype(np.float64)
        return parts

    @staticmethod
    def _small_limits(s: np.ndarray, P: int, share: float) -> np.ndarray:
        """Per row, how near the recent level's window mean a value is a change too small to
        be news: ``share`` times the range of the values before it, in the units of the
        recent level on the values as they came; -1 (nothing that near) in the learning
        period."""
        limits = np.full(s.size, -1.0)
        if s.size > P:
            _, sd = scale_of(s[:P])
            span = np.maximum.accumulate(s)[P - 1 : -1] - np.minimum.accumulate(s)[P - 1 : -1]
            limits[P:] = share * span / sd
        return limits

    def _network_out(self, z: np.ndarray, P: int) -> np.ndarray:
        """The network's outputs for the whole normalised series, learning online from row
        ``P`` on when ``learn_every`` is set (`rnnkit.estimators.online`)."""
        return online.network_out(
            self.model_,
            z,
            P,
            int(self.learn_every),
            int(self.learn_steps),
            float(self.learn_lr),
            int(self.probation),
            int(self.chunk),
        )

    def _model_space(self, values: np.ndarray, head: np.ndarray) -> tuple[np.ndarray, bool]:
        """The values the network reads (before scaling): ``log(1 + x)`` when ``transform`` is
        "auto" and `log_fits_better` says so for the probationary values ``head``; and which."""
        if self.transform == "auto" and log_fits_better(head):
            return np.log1p(np.maximum(values, 0.0)), True
        return values, False

    @staticmethod
    def _level_space(s: np.ndarray, P: int) -> np.ndarray:
        """The values as they came, normalised by their probationary scale: what the recent
        level judges when the network reads ``log(1 + x)``."""
        mean, sd = scale_of(s[:P])
        return np.clip((s - mean) / sd, -CLIP, CLIP)

    def _by_members(self, members: int) -> bool:
        """Whether the raw surprise is the mean of the ``members`` members' own."""
        return self.surprise == "members" and members > 1

    def _season_of(self, head: np.ndarray) -> tuple[int, float, bool]:
        """A series' period (0: none), the variance of its seasonal difference, and whether
        the network's surprise counts: not when the value one period earlier predicts the
        probationary values better (a lower Gaussian NLL over them) than the network does."""
        period = (
            find_period(head, MIN_ACF, bool(self.season_rise))
            if self.season == "auto"
            else int(self.season or 0)
        )
        if not period:
            return 0, 1.0, True
        svar = seasonal_variance(head, period)
        out, _ = self.model_.stream_forward(head[:, None, None])
        mu, var = NextValueModel.gaussian(head[:, None], out[:, 0])  # mu[t] predicts head[t + 1]
        net = _nll(head[period:] - mu[period - 1 : -1], var[period - 1 : -1])
        seasonal = _nll(head[period:] - head[:-period], np.full(head.size - period, svar))
        return period, svar, bool(net <= seasonal)

    def _alarm(self, head: np.ndarray) -> Alarm:
        """The rest after an alarm of a series whose probationary values are ``head`` (with
        ``familiar``, its memory of spikes starts from them)."""
        level = math.inf if self.alarm is None else float(self.alarm)
        rest = int(self.probation) // 4 if self.rest is None else int(self.rest)
        known = None
        if self.familiar is not None and self.alarm is not None:
            known = Familiar(float(self.familiar), float(self.familiar_jump), head)
        return Alarm(level, rest, DAMP, known)

    def _echo(self) -> tuple[float, float] | None:
        """``(echo, alarm)`` when the network's alarms at an outlier's echo are halved
        (`rnnkit.estimators.echo`): only when there are alarms; else None."""
        if self.echo is None or self.alarm is None:
            return None
        return float(self.echo), float(self.alarm)

    def _windows(self) -> tuple[int, int, int]:
        return int(self.short_window), int(self.long_window), int(self.warmup)

    def pool(self) -> DetectorPool:
        """Streams scored one value at a time, all through one `StreamPool`; fits the network
        on the first stream to finish its probationary period if `fit` was not called."""
        self._check_params()
        return DetectorPool(self)

    def memory_per_stream(self) -> int:
        """Bytes held per stream after its probationary period: the network's state, the
        likelihood's windows, the scale and the pending prediction, the seasonal difference's
        and the recent level's windows, and with online learning the stream's own network and
        its optimizer's state and last values."""
        layers = self.num_layers * (2 if self.cell == "lstm" else 1)
        lik = 8 + self.short_window + self.long_window
        period = self.probation // 2 if self.season == "auto" else int(self.season or 0)
        seasonal = lik + period + 3 if period else 0  # at most: the period found may be shorter
        level = lik + 7 + self.probation if self.level else 0  # its window, scale, likelihood
        if self.level and self.level_log and self.transform == "auto":  # at most: log scale
            level += lik + 5 + self.probation  # its window and likelihood (the network's scale)
        members = 2 * self.members if self._by_members(self.members) else 0  # their means, vars
        learning = 0
        if self.learn_every:  # its own network, gradients, AdamW moments, last values
            model = getattr(self, "model_", None) or NextValueModel(
                self.cell, self.hidden_size, self.num_layers, members=self.members
            )
            learning = online.learner_bytes(model, int(self.probation))
        state = layers * self.hidden_size * self.members
        remembers = self.familiar is not None and self.alarm is not None  # as `_alarm`
        known = Familiar.nbytes(int(self.probation)) if remembers else 0
        echoes = echo.nbytes(int(self.probation)) if self._echo() is not None else 0
        return 8 * (state + lik + 6 + members + seasonal + level) + learning + known + echoes


def _detect_partition(model: AnomalyDetector, series: list[np.ndarray]) -> list[np.ndarray]:
    """One partition's scores (`rnnkit.engines.map_partitions` calls it, here or on a
    worker)."""
    return [model._detect_one(s) for s in series]


def _member_gaussians(z: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each member's mean and variance ``(..., K)`` of the next value from the normalised
    value ``z (...)`` and the head's output ``(..., 2K)`` (`NextValueModel.gaussian` before
    the mixture)."""
    K = out.shape[-1] // 2
    return z[..., None] + out[..., :K], np.exp(np.clip(out[..., K:], LOGVAR_MIN, LOGVAR_MAX))


def _member_surprise(z: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """``surprise="members"``: the mean over the members (the last axis) of each one's own raw
    surprise ``log(1 + (z - mean_i)^2 / var_i)``."""
    return np.mean(np.log1p((z - means) ** 2 / variances), axis=-1)


def _nll(err: np.ndarray, var: np.ndarray) -> float:
    """The mean Gaussian negative log-likelihood of errors ``err`` of variances ``var``."""
    return float(np.mean(0.5 * (np.log(2 * np.pi * var) + err * err / var)))


def seasonal_variance(head: np.ndarray, period: int) -> float:
    """The variance of the seasonal difference over a series' normalised probationary values."""
    return max(float(np.var(head[period:] - head[:-period])), VAR_FLOOR)


def _train(model: NextValueModel, parts: list[np.ndarray], steps: int, lr: float, chunk: int):
    """Full-batch BPTT over overlapping chunks of each normalised series; per-step losses."""
    xs, ys = [], []
    for z in parts:
        n = z.size - 1  # inputs z[:-1], targets z[1:]
        length = min(chunk, n)
        starts = list(range(0, n - length + 1, max(1, length // 2)))
        if starts[-1] != n - length:
            starts.append(n - length)
        for a in starts:
            xs.append(z[a : a + length])
            ys.append(z[a + 1 : a + length + 1])
    width = max(x.size for x in xs)
    x = np.zeros((width, len(xs), 1))
    y = np.zeros((width, len(xs)))
    mask = np.zeros((width, len(xs)))
    for b, (xi, yi) in enumerate(zip(xs, ys, strict=True)):
        x[: xi.size, b, 0], y[: yi.size, b], mask[: yi.size, b] = xi, yi, 1.0
    shape = (width, len(xs), model.members)  # each member its own Gaussian NLL
    y3 = np.broadcast_to(y[..., None], shape)
    mask3 = np.broadcast_to(mask[..., None], shape)
    blocks = model.block_masks() if model.members > 1 else None
    model.train()
    opt = AdamW(model, lr=lr, weight_decay=0.0)  # no decay: the zeros across members stay 0
    losses = []
    for k in range(steps):
        opt.lr = lr * 0.5 * (1 + math.cos(math.pi * k / steps))  # cosine to 0
        model.zero_grad()
        (mean, var), backward = model.forward_train(x)
        loss, dmean, dvar = gaussian_nll(mean, var, y3, mask=mask3)
        backward(dmean, dvar)
        if blocks is not None:
            model.mask_grads(blocks)
        clip_grad_norm(model, 1.0)
        opt.step()
        losses.append(float(loss))
    model.eval()
    return losses


class DetectorPool:
    """Many streams scored one value at a time; one network, one `StreamPool`.

    ``update(id, value)`` scores one value of one stream; ``update_many({id: value})`` one
    value of each of several streams, in one batched network step. A stream joins at its first
    value. The scores equal `AnomalyDetector.detect` on the same series (up to round-off).
    """

    def __init__(self, detector: AnomalyDetector) -> None:
        self.detector = detector
        self._pool: StreamPool | None = None
        self._streams: dict[Hashable, _StreamState] = {}
        self._windows = detector._windows()
        self._echo = detector._echo()
        # the alarm level (inf: no alarms), at which a small change's score is halved
        self._alarm_level = math.inf if detector.alarm is None else float(detector.alarm)
        res, net = detector.resolution, detector.network_resolution  # None: off
        self._shares = (None if res is None else float(res), None if net is None else float(net))
        if hasattr(detector, "model_"):
            self._pool = StreamPool(detector.model_)

    def __contains__(self, stream_id: Hashable) -> bool:
        return stream_id in self._streams

    def __len__(self) -> int:
        return len(self._streams)

    def update(self, stream_id: Hashable, value: float) -> float:
        return self.update_many({stream_id: value})[stream_id]

    def update_many(self, values: Mapping[Hashable, float]) -> dict[Hashable, float]:
        scores: dict[Hashable, float] = {}
        ready: dict[Hashable, tuple[float, float]] = {}  # streams past probation: (z, value)
        for sid, value in values.items():
            v = float(value)
            if not math.isfinite(v):
                raise InputError(f"DetectorPool: stream {sid!r}: expected a finite value, got {v}")
            st = self._streams.get(sid)
            if st is None:
                st = self._streams[sid] = _StreamState(self.detector)
            if st.buffer is not None:  # the probationary period
                st.buffer.append(v)
                scores[sid] = 0.0
                if len(st.buffer) == self.detector.probation:
                    self._start(sid, st)
                continue
            x = math.log1p(max(v, 0.0)) if st.log else v
            ready[sid] = (min(max((x - st.mean) / st.sd, -CLIP), CLIP), v)
        if ready:
            scores.update(self._step(ready))
        return {sid: scores[sid] for sid in values}

    def _out_of_range(self, st: _StreamState, z: float) -> bool:
        """The range check (`AnomalyDetector.range_check`) of the value ``z`` as it came (not
        transformed); then the range takes ``z`` in."""
        check = self.detector.range_check
        lo, hi = st.lo, st.hi
        out = (
            check is not None
            and hi > lo
            and not lo - check * (hi - lo) <= z <= hi + check * (hi - lo)
        )
        st.lo, st.hi = min(lo, z), max(hi, z)
        return bool(out)

    def _start(self, sid: Hashable, st: _StreamState) -> None:
        """The end of a stream's probationary period: its scale, the network (fitted now if it
        was not), and its buffered values fed through to warm the state and the likelihood."""
        assert st.buffer is not None
        head = np.asarray(st.buffer)
        st.buffer = None
        if self._pool is None:
            self.detector.fit(head)
            self._pool = StreamPool(self.detector.model_)
        x, st.log = self.detector._model_space(head, head)
        st.mean, st.sd = scale_of(x)
        st.lmean, st.lsd = scale_of(head) if st.log else (st.mean, st.sd)
        z = np.clip((x - st.mean) / st.sd, -CLIP, CLIP)
        period, st.svar, st.use_net = self.detector._season_of(z)
        if period:
            st.season = np.zeros(period)
            st.slik = likelihood.new_state(self.detector.short_window, self.detector.long_window)
        if self.detector.level:
            st.level = recent_level.new_state(self.detector.probation)
            st.llik = likelihood.new_state(self.detector.short_window, self.detector.long_window)
            if self.detector.level_log and st.log:  # the recent level on the log scale too
                st.loglevel = recent_level.new_state(self.detector.probation)
                st.loglik = likelihood.new_state(
                    self.detector.short_window, self.detector.long_window
                )
        if self.detector._echo() is not None:  # the window that tells an outlier's echo
            st.echo = echo.new_state(self.detector.probation)
        if self.detector.learn_every:  # its own network, which keeps learning
            st.learner = online.Learner(self.detector.model_, float(self.detector.learn_lr))
            st.own = StreamPool(st.learner.model)  # the step plan follows the weights' updates
            st.own.join(sid)
            st.recent = np.zeros(self.detector.probation)
        else:
            self._pool.join(sid)
        for zt, value in zip(z, head, strict=True):  # the same steps as afterwards; the
            self._step({sid: (zt, value)})  # scores are not reported
        st.lo, st.hi = float(head.min()), float(head.max())
        st.alarm = self.detector._alarm(head)

    def _step(self, ready: dict[Hashable, tuple[float, float]]) -> dict[Hashable, float]:
        assert self._pool is not None
        short, long, warmup = self._windows
        shared = {sid: v for sid, v in ready.items() if self._streams[sid].own is None}
        outs = {}
        if len(shared) == 1:  # one stream: the single-stream step, on its column of the pool
            ((sid, (z, _)),) = shared.items()
            outs[sid] = self._pool.step_one(sid, np.array([z]))
        elif shared:
            outs = self._pool.step({sid: np.array([z]) for sid, (z, _) in shared.items()})
        for sid, (z, _) in ready.items():  # streams with their own network (learn_every)
            own = self._streams[sid].own
            if own is not None:
                outs[sid] = own.step_one(sid, np.array([z]))
        scores = {}
        for sid, (z, value) in ready.items():
            st = self._streams[sid]
            score = 0.0
            if st.means is not None and st.variances is not None:  # the members' predictions
                raw = float(_member_surprise(np.array(z), st.means, st.variances))
                score = likelihood.step_raw(st.lik, raw, short, long, warmup)
            elif st.var > 0:  # a prediction for this value
                score = likelihood.step(st.lik, z - st.mu, st.var, short, long, warmup)
            score *= float(self.detector.network_weight)
            if st.echo is not None and self._echo is not None:  # the outlier's echo, halved
                heard = echo.step(st.echo, z, self._echo[0], short)
                if heard and score >= self._echo[1]:
                    score *= DAMP
            zl = min(max((value - st.lmean) / st.lsd, -CLIP), CLIP) if st.log else z
            tiny, tiny_net = self._small_change(st, zl)  # resolution, network_resolution
            if tiny_net and score >= self._alarm_level:
                score *= DAMP
            if st.season is not None:  # the value one period earlier, as a second prediction
                period = st.season.size
                k = st.seen % period
                if st.seen >= period:
                    diff = z - st.season[k]
                    seasonal = likelihood.step(st.slik, diff, st.svar, short, long, warmup)
                    score = max(score, seasonal) if st.use_net else seasonal
                st.season[k] = z
            if st.level is not None:  # the recent level, a third prediction
                lev = recent_level.step(st.level, st.llik, zl, short, long, warmup)
                if tiny and lev >= self._alarm_level:
                    lev *= DAMP
                score = max(score, lev)
            if st.loglevel is not None:  # and on the log scale
                lev = recent_level.step(st.loglevel, st.loglik, z, short, long, warmup)
                if tiny and lev >= self._alarm_level:
                    lev *= DAMP
                score = max(score, lev)
            st.seen += 1
            beyond = st.lo <= st.hi and self._out_of_range(st, value)
            if beyond:
                score = 1.0
            if st.alarm is not None:
                score = st.alarm(score, value, beyond)
            out = outs[sid]
            if self.detector._by_members(out.size // 2):
                st.means, st.variances = _member_gaussians(np.array(z), out)
            elif out.size == 2:  # NextValueModel.gaussian of one member, on floats
                d, s = out
                st.mu, st.var = z + float(d), math.exp(min(max(float(s), LOGVAR_MIN), LOGVAR_MAX))
            else:
                mu, var = NextValueModel.gaussian(np.array([z]), out)
                st.mu, st.var = float(mu), float(var)
            if st.learner is not None:
                self._learn(st, z)
            scores[sid] = float(score)
        return scores

    def _small_change(self, st: _StreamState, zl: float) -> tuple[bool, bool]:
        """Whether the value ``zl`` (the recent level's units) lies within ``resolution``, and
        within ``network_resolution``, times the range so far of the recent level's window
        mean (before the value joins it); False for an option that is off, without alarms or
        without a recent level."""
        if st.level is None or math.isinf(self._alarm_level) or not st.lo < st.hi:
            return False, False
        span = st.hi - st.lo
        levels, network = self._shares
        tiny = levels is not None and recent_level.small(st.level, zl, levels * span / st.lsd)
        tiny_net = network is not None and recent_level.small(st.level, zl, network * span / st.lsd)
        return tiny, tiny_net

    def _learn(self, st: _StreamState, z: float) -> None:
        """Keep the stream's last values; every ``learn_every`` values after its probationary
        period, the network's update on them (as `online.network_out` makes it)."""
        assert st.learner is not None and st.recent is not None
        det = self.detector
        window = st.recent.size
        k = st.seen % window  # st.seen counts z already
        st.recent[k - 1] = z
        past = st.seen - det.probation
        if past > 0 and past % det.learn_every == 0:
            recent = (
                np.concatenate((st.recent[k:], st.recent[:k]))
                if st.seen >= window
                else (st.recent[:k])
            )
            st.learner.learn(recent, int(det.learn_steps), int(det.chunk))


class _StreamState:
    """One stream's own part: its buffer (probation), scale, prediction, likelihood state."""

    __slots__ = (
        "buffer",
        "mean",
        "sd",
        "mu",
        "var",
        "lik",
        "lo",
        "hi",
        "season",
        "svar",
        "slik",
        "seen",
        "alarm",
        "use_net",
        "log",
        "level",
        "llik",
        "lmean",
        "lsd",
        "loglevel",
        "loglik",
        "means",
        "variances",
        "learner",
        "own",
        "recent",
        "echo",
    )

    def __init__(self, detector: AnomalyDetector) -> None:
        self.buffer: list[float] | None = []
        self.mean, self.sd = 0.0, 1.0
        self.mu, self.var = 0.0, 0.0  # the prediction for the next value (var 0: none yet)
        self.lik = likelihood.new_state(detector.short_window, detector.long_window)
        self.lo, self.hi = math.inf, -math.inf  # the range of the values so far (after probation)
        self.season: np.ndarray | None = None  # the last period of values (a ring), if periodic
        self.svar = 1.0  # the variance of the seasonal difference
        self.slik = self.lik[:0]  # the seasonal difference's likelihood state
        self.seen = 0  # values stepped
        self.alarm: Alarm | None = None  # the rest period after an alarm (after probation)
        self.use_net = True  # whether the network's surprise counts (see `_season_of`)
        self.log = False  # whether the network reads log(1 + value) (see `log_fits_better`)
        self.level: np.ndarray | None = None  # the recent level's window (see `level`)
        self.llik = self.lik[:0]  # the recent level's likelihood state
        self.lmean, self.lsd = 0.0, 1.0  # the scale of the values as they came (for the level)
        self.loglevel: np.ndarray | None = None  # the recent level on the log scale (level_log)
        self.loglik = self.lik[:0]  # its likelihood state
        self.means: np.ndarray | None = None  # the members' own predictions (surprise="members")
        self.variances: np.ndarray | None = None
        self.learner: online.Learner | None = None  # its own network (learn_every), if any
        self.own: StreamPool | None = None  # the pool of that network, this stream alone
        self.recent: np.ndarray | None = None  # its last `probation` values (a ring)
        self.echo: np.ndarray | None = None  # the window that tells an outlier's echo (echo)
