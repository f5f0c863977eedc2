"""What a training run shows: the live progress bar on a terminal, the plain progress line a
log gets instead, the line of each evaluation, and the loss-curve PNG next to the checkpoint.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..files import save_figure
from .checkpoints import plot_path
from .config import TrainConfig
from .distributed import is_writer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


def progress_bar(console: Console, live: bool) -> tuple[Progress, TaskID]:
    """A rich progress bar on ``console`` (disabled unless ``live``) and its one task, whose
    ``msg`` field is the step, the losses and the speed."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("train"),
        BarColumn(),
        TextColumn("{task.fields[msg]}"),
        TimeRemainingColumn(),
        console=console,
        disable=not live,
    )
    task = bar.add_task("train", total=1.0, msg="")
    return bar, task


def evaluation_line(
    cfg: TrainConfig, step: int, train_losses: list[float], val: float, speed: float, note: str
) -> str:
    """``step    250  train 1.9321  val 1.8765 (2.707 bits/char)  12,345 chars/s``, the mean
    of the last 50 training losses, and the objective's ``note`` if any."""
    recent = train_losses[-50:]
    return (
        f"step {step:6d}  train {np.mean(recent):.4f}  val {val:.4f} "
        f"({val / math.log(2):.3f} bits/{cfg.unit})  {speed:,.0f} {cfg.unit}s/s"
        + (f"  {note}" if note else "")
    )


def progress_line(
    cfg: TrainConfig,
    step: int,
    fraction: float,
    train_losses: list[float],
    speed: float,
    elapsed: float,
) -> str:
    """``step 120/400 (30%)  loss 2.314  1,234 chars/s  eta 3m10s``, with ``fraction`` of the
    budget used after ``elapsed`` seconds."""
    if cfg.steps is not None:
        where = f"step {step}/{cfg.steps} ({fraction:.0%})"
    else:
        where = f"step {step} ({fraction:.0%} of {cfg.minutes:g} min)"
    loss = np.mean(train_losses[-50:])
    eta = elapsed * (1 - fraction) / fraction if fraction > 0 else math.nan
    return f"{where}  loss {loss:.3f}  {speed:,.0f} {cfg.unit}s/s  eta {_duration(eta)}"


def plot_losses(history: dict[str, list], unit: str, out: Path) -> Path | None:
    """Training loss (smoothed) and validation loss by step, at `plot_path` of ``out``; the
    PNG names rnnkit as its software, so a later run may replace it. None without losses."""
    if not history["train"]:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = np.asarray(history["train"])
    k = max(1, min(50, len(train) // 20))
    smooth = np.convolve(train, np.ones(k) / k, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.arange(k, len(train) + 1), smooth, label=f"train (mean of {k} steps)")
    if history["val"]:
        steps, vals = zip(*history["val"], strict=True)
        ax.plot(steps, vals, "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel(f"loss (nats per {unit})")
    ax.set_title(out.name)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = plot_path(out)
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return path


def log_to_stderr(message: str) -> None:
    """A line on stderr; in a data-parallel run, from rank 0 only."""
    if is_writer():
        print(message, file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
