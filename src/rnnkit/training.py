"""The one training loop: every task trains through `Trainer`.

A task supplies an `Objective`: one training step (forward and backward of a batch, leaving
gradients in the model), an evaluation on held-out data, and whatever state it carries from
one batch to the next (the hidden state of truncated BPTT). The `Trainer` does the rest:
AdamW with global-norm clipping and a warm-up plus cosine schedule over the budget (steps or
minutes), evaluation at intervals, the best checkpoint kept, a ``.last`` checkpoint to resume
from exactly, a live progress bar, a divergence guard, and a loss-curve PNG.

Files, for ``out = runs/lm.safetensors``: ``runs/lm.safetensors`` (best by validation loss),
``runs/lm.last.safetensors`` (latest state, with optimizer and carried state, for ``resume``),
``runs/lm.loss.png`` (training and validation loss by step).
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import CheckpointError, InputError, TrainingDiverged  # raised by the guard below
from .io.checkpoint import load_checkpoint, save
from .layers.module import Module
from .optim import AdamW, clip_grad_norm
from .schedules import CosineLR


class Objective(Protocol):
    @property
    def model(self) -> Module:
        """The model being trained."""
        ...

    def train_step(self, step: int) -> tuple[float, int]:
        """Forward and backward of training batch ``step``: mean loss per token, token count."""
        ...

    def evaluate(self) -> float:
        """Mean loss per token on the held-out data."""
        ...

    def carry_arrays(self) -> dict[str, np.ndarray]:
        """State carried between steps, to save for an exact resume."""
        ...

    def load_carry(self, arrays: dict[str, np.ndarray]) -> None: ...


@dataclass(frozen=True)
class TrainConfig:
    steps: int | None = None  # budget in optimizer steps
    minutes: float | None = None  # budget in wall-clock minutes (evaluation included)
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.0
    clip: float = 1.0
    eval_every: int = 250
    unit: str = "token"  # what the throughput counts: "char" or "token"

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            raise InputError("TrainConfig: expected a budget: steps or minutes")
        if self.steps is not None and self.steps <= 0:
            raise InputError(f"TrainConfig: steps must be positive, got {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise InputError(f"TrainConfig: minutes must be positive, got {self.minutes}")


@dataclass
class TrainResult:
    steps: int
    minutes: float
    tokens_per_s: float
    val_loss: float  # at the end of training
    best_val_loss: float
    stopped: str  # "budget" or "interrupted"
    history: dict[str, list] = field(default_factory=dict)


def last_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".safetensors") + ".last.safetensors")


def plot_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".safetensors") + ".loss.png")


def learning_rates(cfg: TrainConfig) -> CosineLR:
    """The schedule of every run: linear warm-up over ``warmup_steps``, then cosine from ``lr``
    to ``min_lr`` over the rest of the budget (its progress: `decay_progress`)."""
    return CosineLR(cfg.lr, None, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps)


def decay_progress(cfg: TrainConfig, step: int, elapsed: float, decay_start: float) -> float:
    """The share of the budget after the warm-up used after ``step`` steps, in steps or in
    time, whichever is more; ``decay_start`` is the seconds elapsed when the warm-up ended."""
    parts = []
    if cfg.steps is not None:
        parts.append((step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1))
    if cfg.minutes is not None:
        parts.append((elapsed - decay_start) / max(60.0 * cfg.minutes - decay_start, 1e-9))
    return max(parts)


class Trainer:
    """Runs an `Objective` to its budget; see the module docstring for what it writes."""

    def __init__(
        self,
        objective: Objective,
        cfg: TrainConfig,
        out: str | Path,
        metadata: dict[str, Any] | None = None,
        progress: bool = True,
        on_step: Any = None,
    ) -> None:
        self.objective, self.cfg, self.out = objective, cfg, Path(out)
        self.metadata = metadata or {}
        self.progress, self.on_step = progress, on_step
        self.model = objective.model
        self.opt = AdamW(self.model, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.schedule = learning_rates(cfg)
        self.decay_start: float | None = None  # seconds elapsed when the warm-up ended
        self.step = 0
        self.elapsed = 0.0  # seconds of this run and the runs it resumes
        self.train_seconds = 0.0  # of which spent in training steps
        self.tokens = 0
        self.best_val = math.inf
        self.history: dict[str, list] = {"train": [], "val": []}  # [loss], [[step, loss]]
        self._stop_requested = False  # set by Ctrl-C or `request_stop`; checked between steps
        if not self.out.parent.is_dir():
            self.out.parent.mkdir(parents=True, exist_ok=True)

    def request_stop(self) -> None:
        """Stop after the current step, evaluate, and save the state to resume from."""
        self._stop_requested = True

    # -- budget -----------------------------------------------------------------------------
    def _fraction(self) -> float:
        parts = []
        if self.cfg.steps is not None:
            parts.append(self.step / self.cfg.steps)
        if self.cfg.minutes is not None:
            parts.append(self.elapsed / (60.0 * self.cfg.minutes))
        return max(parts)

    def _decay_progress(self, taken: int) -> float:
        if taken < self.cfg.warmup_steps:
            return 0.0
        if self.decay_start is None:
            self.decay_start = self.elapsed
        return decay_progress(self.cfg, taken, self.elapsed, self.decay_start)

    # -- checkpoints ------------------------------------------------------------------------
    def _train_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "train_seconds": self.train_seconds,
            "tokens": self.tokens,
            "best_val": None if math.isinf(self.best_val) else self.best_val,
            "decay_start": self.decay_start,
            "history": self.history,
            "config": asdict(self.cfg),
            "generators": {k: g.bit_generator.state for k, g in self.model.generators().items()},
        }

    def _save_last(self) -> None:
        opt_state = self.opt.state_dict()
        arrays = {f"opt/{k}": v for k, v in opt_state["buffers"].items()}
        arrays.update({f"carry/{k}": v for k, v in self.objective.carry_arrays().items()})
        meta = dict(self.metadata, train=self._train_state(), optimizer=_scalars(opt_state))
        save(self.model, last_path(self.out), metadata=meta, arrays=arrays)

    def _save_best(self) -> None:
        meta = dict(self.metadata, train={"step": self.step, "val_loss": self.best_val})
        save(self.model, self.out, metadata=meta)

    def resume(self) -> None:
        """Continue from ``<out>.last.safetensors`` exactly where it stopped."""
        path = last_path(self.out)
        if not path.is_file():
            raise CheckpointError(f"resume: no checkpoint {str(path)!r} to resume from")
        ckpt = load_checkpoint(path)
        if ckpt.model.config != self.model.config:
            raise CheckpointError(
                f"resume: {str(path)!r} holds a model with config {ckpt.model.config}, "
                f"this run asks for {self.model.config}"
            )
        state = ckpt.metadata["train"]
        self.model.load_state_dict(ckpt.model.state_dict())
        opt_state = dict(ckpt.metadata["optimizer"])
        opt_state["buffers"] = {k[4:]: v for k, v in ckpt.arrays.items() if k.startswith("opt/")}
        self.opt.load_state_dict(opt_state)
        self.objective.load_carry(
            {k[6:]: v for k, v in ckpt.arrays.items() if k.startswith("carry/")}
        )
        for key, gen in self.model.generators().items():
            gen.bit_generator.state = state["generators"][key]
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.train_seconds, self.tokens = state["train_seconds"], state["tokens"]
        self.best_val = math.inf if state["best_val"] is None else state["best_val"]
        self.history = state["history"]
        self.decay_start = state.get("decay_start")  # older checkpoints: steps of equal time
        if self.decay_start is None and self.step >= self.cfg.warmup_steps:
            self.decay_start = self.elapsed * self.cfg.warmup_steps / self.step

    # -- the loop ---------------------------------------------------------------------------
    def _evaluate(self, log) -> float:
        val = float(self.objective.evaluate())
        self.history["val"].append([self.step, val])
        if val < self.best_val:
            self.best_val = val
            self._save_best()
        self._save_last()
        recent = self.history["train"][-50:]
        speed = self.tokens / max(self.train_seconds, 1e-9)
        log(
            f"step {self.step:6d}  train {np.mean(recent):.4f}  val {val:.4f} "
            f"({val / math.log(2):.3f} bits/{self.cfg.unit})  {speed:,.0f} {self.cfg.unit}s/s"
        )
        return val

    def run(self) -> TrainResult:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(stderr=True)  # evaluation lines always; the live bar only if asked
        bar = Progress(
            TextColumn("train"),
            BarColumn(),
            TextColumn("{task.fields[msg]}"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.progress,
        )
        task = bar.add_task("train", total=1.0, msg="")
        last_val = self.history["val"][-1][1] if self.history["val"] else math.nan
        first_loss = self.history["train"][0] if self.history["train"] else None
        stopped = "budget"
        run_start = time.perf_counter() - self.elapsed
        self._stop_requested = False
        previous_handler = _install_sigint(self)
        with bar:
            try:
                while self._fraction() < 1.0 and not self._stop_requested:
                    taken = self.step + 1  # counting this step: the first has no lr of 0
                    self.opt.lr = self.schedule(taken, self._decay_progress(taken))
                    t0 = time.perf_counter()
                    self.model.zero_grad()
                    loss, n = self.objective.train_step(self.step)
                    norm = clip_grad_norm(self.model, self.cfg.clip)
                    if first_loss is None:
                        first_loss = loss
                    self._guard(loss, norm, first_loss)
                    self.opt.step()
                    self.train_seconds += time.perf_counter() - t0
                    self.tokens += n
                    self.step += 1
                    self.history["train"].append(float(loss))
                    self.elapsed = time.perf_counter() - run_start
                    if self.step % self.cfg.eval_every == 0:
                        last_val = self._evaluate(bar.console.print)
                        self.elapsed = time.perf_counter() - run_start
                    speed = self.tokens / max(self.train_seconds, 1e-9)
                    bar.update(
                        task,
                        completed=min(self._fraction(), 1.0),
                        msg=f"step {self.step}  loss {loss:.3f}  val {last_val:.3f}  "
                        f"{speed:,.0f} {self.cfg.unit}s/s",
                    )
                    if self.on_step is not None:
                        self.on_step(self)  # a hook: progress reports, tests, early stops
            except KeyboardInterrupt:
                self._stop_requested = True
            finally:
                _restore_sigint(previous_handler)
            if self._stop_requested:
                stopped = "interrupted"
                bar.console.print(f"interrupted at step {self.step}: saving to resume later")
            if stopped == "interrupted" or not (
                self.history["val"] and self.history["val"][-1][0] == self.step
            ):
                last_val = self._evaluate(bar.console.print)
        self.elapsed = time.perf_counter() - run_start
        self._save_last()
        self.plot()
        return TrainResult(
            steps=self.step,
            minutes=self.elapsed / 60.0,
            tokens_per_s=self.tokens / max(self.train_seconds, 1e-9),
            val_loss=last_val,
            best_val_loss=self.best_val,
            stopped=stopped,
            history=self.history,
        )

    def _guard(self, loss: float, norm: float, first_loss: float) -> None:
        """Stop before a bad update reaches the weights; the checkpoints on disk stay good."""
        bad = None
        if not math.isfinite(loss):
            bad = f"the loss is {loss}"
        elif not math.isfinite(norm):
            bad = f"the gradient norm is {norm}"
        elif self.step > self.cfg.warmup_steps and loss > 1.5 * first_loss:
            bad = f"the loss exploded to {loss:.3g} (it started at {first_loss:.3g})"
        if bad:
            kept = (
                f"the best checkpoint {str(self.out)!r} is intact"
                if self.out.exists()
                else ("no checkpoint was written yet")
            )
            raise TrainingDiverged(
                f"training diverged at step {self.step}: {bad}; {kept}. "
                "Try a lower --lr or a smaller --clip"
            )

    def plot(self) -> Path | None:
        """Training loss (smoothed) and validation loss by step, next to the checkpoint."""
        if not self.history["train"]:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        train = np.asarray(self.history["train"])
        k = max(1, min(50, len(train) // 20))
        smooth = np.convolve(train, np.ones(k) / k, mode="valid")
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(np.arange(k, len(train) + 1), smooth, label=f"train (mean of {k} steps)")
        if self.history["val"]:
            steps, vals = zip(*self.history["val"], strict=True)
            ax.plot(steps, vals, "o-", label="validation")
        ax.set_xlabel("step")
        ax.set_ylabel(f"loss (nats per {self.cfg.unit})")
        ax.set_title(self.out.name)
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = plot_path(self.out)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def _install_sigint(trainer: Trainer) -> Any:
    """Ctrl-C finishes the current step, then stops and saves (a second Ctrl-C aborts)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        if trainer._stop_requested:
            raise KeyboardInterrupt
        trainer._stop_requested = True

    return signal.signal(signal.SIGINT, handler)


def _restore_sigint(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


def _scalars(opt_state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in opt_state.items() if k != "buffers"}


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
