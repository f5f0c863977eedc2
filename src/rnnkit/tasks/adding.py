"""The adding problem (Hochreiter and Schmidhuber, 1997): a test of memory over a long span.

Each step carries a value ``u_t ~ U(0, 1)`` and a marker; exactly two steps are marked, one in
each half of the sequence, and the target is the sum of their two values. Guessing the mean
(1.0) scores a mean squared error of 1/6 ~ 0.167; a model must remember the first marked value
across the whole sequence to do better.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import option, positive_float, positive_int
from ..losses import mse
from ..models import SequenceRegressor
from ..optim import Adam, clip_grad_norm

BASELINE_MSE = 1.0 / 6.0  # variance of u1 + u2: what predicting the mean scores


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


def train_adding(cfg: AddingConfig, report: Callable[[int, float], None] | None = None):
    """Train on fresh batches; return the model and metrics on 1024 held-out sequences."""
    rng = np.random.default_rng(cfg.seed)
    model = SequenceRegressor(cfg.cell, 2, cfg.hidden, 1, seed=cfg.seed)
    opt = Adam(model, lr=cfg.lr)
    start = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        x, target = adding_batch(rng, cfg.length, cfg.batch)
        model.zero_grad()
        pred, backward = model.forward_train(x)
        loss, dpred = mse(pred, target)
        backward(dpred)
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
    }
    return model, metrics


def plot_curves(curves: dict[str, list[float]], path: str, length: int) -> str:
    """Training loss per step of each cell, smoothed over 20 steps, on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import save_figure

    fig, ax = plt.subplots(figsize=(7, 4))
    for cell, losses in curves.items():
        smooth = np.convolve(losses, np.ones(20) / 20, mode="valid")
        ax.plot(np.arange(20, len(losses) + 1), smooth, label=cell.upper())
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
