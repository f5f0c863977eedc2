"""The adding problem (Hochreiter and Schmidhuber, 1997): a test of memory over a long span.

Each step carries a value ``u_t ~ U(0, 1)`` and a marker; exactly two steps are marked, one in
each half of the sequence, and the target is the sum of their two values. Guessing the mean
(1.0) scores a mean squared error of 1/6 ~ 0.167; a model must remember the first marked value
across the whole sequence to do better.

The loss sits on the last step only, so the gradient reaching step ``t`` has travelled
``T-1-t`` steps back through the recurrence; `train_adding` records how much of it arrives
(``grad_norms`` of the recurrent layer), which shows the plain RNN's gradient vanishing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import option, positive_float, positive_int
from ..losses import mse
from ..models import SequenceRegressor
from ..optim import Adam, clip_grad_norm

BASELINE_MSE = 1.0 / 6.0  # variance of u1 + u2: what predicting the mean scores
GRAD_WINDOW = 50  # training steps averaged for the gradient profile, at the start and the end
GRAD_FLOOR = 1e-30  # relative gradient norms below this (or exactly zero) count as this


@dataclass(frozen=True)
class AddingConfig:
    """One run of the adding problem; each field is also an option of ``rnnkit demo``."""

    cell: str = option("lstm", help="recurrent cell", choices=("lstm", "gru", "rnn"))
    length: int = option(
        60, help="sequence length T; the model must remember across it", type=positive_int
    )
    hidden: int = option(32, help="hidden size", type=positive_int)
    batch: int = option(64, help="sequences per training step", type=positive_int)
    steps: int = option(1200, help="training steps", type=positive_int)
    lr: float = option(1e-2, help="learning rate of Adam", type=positive_float)
    clip: float = option(1.0, help="global gradient-norm clipping threshold", type=positive_float)
    seed: int = option(0, help="random seed")


def adding_batch(rng: np.random.Generator, length: int, batch: int):
    """Inputs ``(T, B, 2)`` (value, marker) and targets ``(B, 1)``."""
    x = np.zeros((length, batch, 2), dtype=np.float32)
    x[:, :, 0] = rng.random((length, batch))
    half = length // 2
    first = rng.integers(0, half, size=batch)
    second = rng.integers(half, length, size=batch)
    cols = np.arange(batch)
    x[first, cols, 1] = 1.0
    x[second, cols, 1] = 1.0
    target = (x[first, cols, 0] + x[second, cols, 0])[:, None]
    return x, target


def gradient_by_distance(norms: np.ndarray) -> np.ndarray:
    """Norms of dL/dh_t ``(T,)`` -> ``r`` ``(T,)`` indexed by the distance from the loss:
    ``r[d] = |dL/dh_{T-1-d}| / |dL/dh_{T-1}|``, floored at `GRAD_FLOOR`."""
    by_distance = np.asarray(norms, dtype=np.float64)[::-1]
    return np.maximum(by_distance / max(by_distance[0], GRAD_FLOOR), GRAD_FLOOR)


def train_adding(cfg: AddingConfig, report: Callable[[int, float], None] | None = None):
    """Train on fresh batches; return the model and metrics on 1024 held-out sequences.

    The metrics also hold the gradient profile by distance from the loss (`gradient_by_distance`),
    a geometric mean over the first and over the last `GRAD_WINDOW` training steps:
    ``grad_first`` and ``grad_last`` ``(T,)``, and ``grad_ratio = grad_last[T-1]``, the share of
    the gradient that reaches the first step at the end of training.
    """
    rng = np.random.default_rng(cfg.seed)
    model = SequenceRegressor(cfg.cell, 2, cfg.hidden, 1, seed=cfg.seed)
    opt = Adam(model, lr=cfg.lr)
    window = min(GRAD_WINDOW, cfg.steps)
    log_first = np.zeros(cfg.length)  # mean log relative norm, first `window` steps
    log_last = np.zeros(cfg.length)  # the same, last `window` steps
    start = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        x, target = adding_batch(rng, cfg.length, cfg.batch)
        model.zero_grad()
        pred, backward = model.forward_train(x)
        loss, dpred = mse(pred, target)
        backward(dpred)
        # before clipping, which scales every step alike: the profile is relative
        norms = model.rnn.grad_norms
        assert norms is not None  # filled by the backward just run
        log_rel = np.log(gradient_by_distance(norms[0]))  # (T,)
        if step <= window:
            log_first += log_rel / window
        if step > cfg.steps - window:
            log_last += log_rel / window
        clip_grad_norm(model, cfg.clip)
        opt.step()
        if report is not None:
            report(step, loss)
    minutes = (time.perf_counter() - start) / 60
    x, target = adding_batch(np.random.default_rng(cfg.seed + 10_000), cfg.length, 1024)
    test_mse = float(np.mean((model(x) - target) ** 2))
    metrics = {
        "test_mse": test_mse,
        "baseline_mse": BASELINE_MSE,
        "steps": cfg.steps,
        "minutes": minutes,
        "grad_first": np.exp(log_first),
        "grad_last": np.exp(log_last),
        "grad_ratio": float(np.exp(log_last[-1])),
    }
    return model, metrics


def plot_curves(curves: dict[str, list[float]], path: str, length: int) -> str:
    """Training loss per step of each cell, smoothed over 20 steps (or all, if fewer), on a log
    scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import save_figure

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (cell, losses) in enumerate(curves.items()):
        n = min(20, len(losses))
        smooth = np.convolve(losses, np.ones(n) / n, mode="valid")
        ax.plot(np.arange(n, len(losses) + 1), smooth, color=f"C{k}", label=cell.upper())
    ax.axhline(BASELINE_MSE, color="gray", linestyle="--", label="guessing the mean")
    ax.set_yscale("log")
    ax.set_xlabel("training step (64 sequences each)")
    ax.set_ylabel("mean squared error")
    ax.set_title(f"Adding problem, T = {length}: which cell remembers?")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, "--plot")
    plt.close(fig)
    return path


def gradient_plot_path(plot: str) -> str:
    """Where the gradient plot goes: next to the loss curves, ``runs/adding.png`` ->
    ``runs/adding.grad.png``."""
    return str(Path(plot).with_suffix(".grad.png"))


def plot_gradients(profiles: dict[str, dict], path: str, length: int) -> str:
    """The gradient reaching each step, relative to the last step, against the distance from
    the loss, for each cell (the metrics of `train_adding`): solid at the end of training,
    dashed at the start, on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import save_figure

    fig, ax = plt.subplots(figsize=(7, 4))
    distance = np.arange(length)
    for k, (cell, m) in enumerate(profiles.items()):
        ax.plot(distance, m["grad_last"], color=f"C{k}", label=f"{cell.upper()}, end")
        ax.plot(
            distance,
            m["grad_first"],
            color=f"C{k}",
            linestyle="--",
            linewidth=1,
            label=f"{cell.upper()}, start",
        )
    ax.set_yscale("log")
    ax.set_xlabel("distance from the loss, T - 1 - t (steps)")
    ax.set_ylabel("|dL/dh_t| / |dL/dh_(T-1)|")
    ax.set_title(
        f"Adding problem, T = {length}: how much gradient reaches step t\n"
        f"(geometric mean of the first and of the last {GRAD_WINDOW} training steps)"
    )
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    save_figure(fig, path, "--plot")
    plt.close(fig)
    return path
