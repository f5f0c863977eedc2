"""The one way an estimator trains its network: through the `Trainer`, from its own parameters.

`run_fit` builds the run's `TrainConfig` from the estimator's budget (``epochs``, ``steps``,
``minutes``; none given: the estimator's default epochs), learning rate (cosine to a 30th of it
after a linear warm-up), weight decay, clipping, patience and the moving average of the weights
(``ema``, where the estimator has one); validates once per epoch; keeps
the best weights (loaded back into ``model_`` at the end); continues a saved run when given
one (after `rnnkit.estimators.resume` checked it). It sets what every fitted estimator reports:
``history_``, ``n_steps_``, ``stopped_``, ``best_val_loss_``, ``train_minutes_`` and
``throughput_`` (units per second of step time, the first `WARMUP_STEPS` steps left out).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..io.checkpoint import Checkpoint
from ..models.ensemble import Ensemble
from ..training import TrainConfig, Trainer, TrainResult, last_path, log_to_stderr
from .resume import check_resume

WARMUP_STEPS = 20  # left out of ``throughput_``: compiling, first allocations


def join_members(est: Any, fitted: list[Any]) -> None:
    """``est`` becomes the ensemble of ``fitted`` (its members, fitted one per seed): their
    networks in one `Ensemble` (in eval mode), the first member's ``history_``, the steps and
    minutes summed, their reasons for stopping joined, their mean ``throughput_``."""
    est.model_ = Ensemble(*(m.model_ for m in fitted))
    est.model_.eval()
    est.history_ = fitted[0].history_
    est.n_steps_ = sum(m.n_steps_ for m in fitted)
    est.stopped_ = "; ".join(dict.fromkeys(m.stopped_ for m in fitted))
    est.train_minutes_ = sum(m.train_minutes_ for m in fitted)
    est.throughput_ = float(np.mean([m.throughput_ for m in fitted]))


def steady_throughput(marks: list[tuple[int, float]], overall: float) -> float:
    """Units per second of training steps after the first `WARMUP_STEPS` (after the first
    half, in a run of fewer than twice as many steps; ``overall`` in a run of one step)."""
    skip = min(WARMUP_STEPS, len(marks) // 2)
    if skip == 0:
        return overall
    (n0, t0), (n1, t1) = marks[skip - 1], marks[-1]
    return (n1 - n0) / max(t1 - t0, 1e-9)


def run_fit(
    est: Any,
    objective: Any,
    *,
    unit: str,
    default_epochs: float,
    out: str | Path | None,
    metadata: dict[str, Any] | None = None,
    warmup: int = 50,
    saved: Checkpoint | None = None,
    data: dict[str, Any] | None = None,
    force: bool = False,
    describe: str | None = None,
) -> TrainResult:
    """Train ``est.model_`` on ``objective`` as the module says; ``out``: keep the best
    checkpoint there (with ``.last`` and ``.loss.png`` beside it), else in a temporary folder.
    ``metadata`` is added to the checkpoint's (the estimator's own comes first), and ``data``
    (the fingerprints of the training and validation data) under ``"data"``. A ``saved`` run is
    continued after `check_resume` compared it with this fit (``force``: despite changed
    settings or data). ``describe``: a line about the data, logged (``est.verbose``) after
    that check, so that a refused resume ends in its one-line error alone."""
    keep_best = True
    if saved is not None:
        keep_best = check_resume(
            last_path(Path(out or "")),
            saved.metadata,
            est.get_params(),
            est._learned(),
            data or {},
            force,
        )
    if data is not None:
        metadata = {"data": data, **(metadata or {})}
    if describe and est.verbose:
        log_to_stderr(describe)
    budget = (est.epochs, est.steps, est.minutes)
    cfg = TrainConfig(
        steps=est.steps,
        minutes=est.minutes,
        epochs=default_epochs if budget == (None, None, None) else est.epochs,
        lr=est.lr,
        min_lr=est.lr / 30,
        warmup_steps=min(warmup, objective.steps_per_epoch),
        weight_decay=getattr(est, "weight_decay", 0.0),
        clip=est.clip,
        eval_every=objective.steps_per_epoch,
        unit=unit,
        patience=est.patience,
        guard_validation=False,  # a rising validation loss is overfitting: patience's job
        ema=getattr(est, "ema", 0.0),
    )
    with tempfile.TemporaryDirectory(prefix="rnnkit-fit-") as tmp:
        path = Path(out) if out is not None else Path(tmp) / "model.safetensors"
        marks: list[tuple[int, float]] = []  # (units, training seconds) after each step
        trainer = Trainer(
            objective,
            cfg,
            path,
            {**est._metadata(), **(metadata or {})},
            progress=est.verbose,
            on_step=lambda t: marks.append((t.tokens, t.train_seconds)),
            quiet=not est.verbose,
            plot=out is not None,
        )
        if saved is not None:
            position = trainer.resume(saved, keep_best=keep_best)
            if est.verbose:
                log_to_stderr(f"resuming {last_path(path)} at {position}")
        result = trainer.run()
        trainer.load_best()  # into est.model_, on every rank of a data-parallel run
    est.model_.eval()
    est.history_ = result.history
    est.n_steps_ = result.steps
    est.stopped_ = result.stopped
    est.best_val_loss_ = result.best_val_loss
    est.train_minutes_ = result.minutes
    est.throughput_ = steady_throughput(marks, result.tokens_per_s)
    return result
