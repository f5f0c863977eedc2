"""The one training loop: every task trains through `Trainer`.

A task supplies an `Objective`: one training step (forward and backward of a batch, leaving
gradients in the model), an evaluation on held-out data, and whatever state it carries from
one batch to the next (the hidden state of truncated BPTT). The `Trainer` does the rest:
AdamW with global-norm clipping and a warm-up plus cosine schedule over the budget (steps or
minutes), evaluation at intervals, the best checkpoint kept, a ``.last`` checkpoint to resume
from exactly, progress (a live bar on a terminal, a plain line every ``progress_every`` seconds
otherwise), a divergence guard from the first steps and on every evaluation, a stop after the
current step on SIGINT or SIGTERM, and a loss-curve PNG.

Files, for ``out = runs/lm.safetensors``: ``runs/lm.safetensors`` (best by validation loss),
``runs/lm.last.safetensors`` (latest state, with optimizer and carried state, for ``resume``),
``runs/lm.loss.png`` (training and validation loss by step).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import CheckpointError, InputError, TrainingDiverged  # raised by the guard below
from .files import save_figure
from .io.checkpoint import Checkpoint, load_checkpoint, save
from .layers.module import Module
from .optim import AdamW, clip_grad_norm
from .schedules import CosineLR
from .signals import StopSignal


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
    epochs: float | None = None  # budget in passes over the data (`Objective.steps_per_epoch`)
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.0
    clip: float = 1.0
    eval_every: int = 250
    unit: str = "token"  # what the throughput counts: "char" or "token"
    patience: int | None = None  # stop after this many evaluations without a better one
    guard_validation: bool = True  # a validation loss far above the first loss: diverged

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None and self.epochs is None:
            raise InputError("TrainConfig: expected a budget: steps, minutes or epochs")
        if self.epochs is not None and not self.epochs > 0:
            raise InputError(f"TrainConfig: epochs must be positive, got {self.epochs}")
        if self.patience is not None and self.patience <= 0:
            raise InputError(f"TrainConfig: patience must be positive, got {self.patience}")
        if self.steps is not None and self.steps <= 0:
            raise InputError(f"TrainConfig: steps must be positive, got {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise InputError(f"TrainConfig: minutes must be positive, got {self.minutes}")
        if self.warmup_steps < 0:
            raise InputError(f"TrainConfig: warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.eval_every <= 0:
            raise InputError(f"TrainConfig: eval_every must be positive, got {self.eval_every}")


@dataclass
class TrainResult:
    steps: int
    minutes: float
    tokens_per_s: float
    val_loss: float  # at the end of training
    best_val_loss: float
    stopped: str  # "budget", "early" (no better validation loss for `patience`) or "interrupted"
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


EXPLODED = 1.5  # a window of recent losses this many times the first loss: diverged
SPIKE = 3.0  # one loss this many times the first: diverged at once
WINDOW = 5  # training losses in the window


class Trainer:
    """Runs an `Objective` to its budget; see the module docstring for what it writes.

    ``progress``: report progress on stderr, as a live bar when it is a terminal and as a
    plain line every ``progress_every`` seconds when it is not (a log file, a pipe).
    ``quiet``: no evaluation lines either; ``plot=False``: no loss-curve PNG.
    """

    def __init__(
        self,
        objective: Objective,
        cfg: TrainConfig,
        out: str | Path,
        metadata: dict[str, Any] | None = None,
        progress: bool = True,
        on_step: Any = None,
        progress_every: float = 30.0,
        quiet: bool = False,
        plot: bool = True,
    ) -> None:
        self.quiet, self.write_plot = quiet, plot
        self.objective, self.out = objective, Path(out)
        self.cfg = cfg = with_epochs(cfg, objective)
        self.metadata = metadata or {}
        self.progress, self.on_step = progress, on_step
        self.progress_every = progress_every
        self.model = objective.model
        self.opt = AdamW(self.model, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.schedule = learning_rates(cfg)
        self.decay_start: float | None = None  # seconds elapsed when the warm-up ended
        self.step = 0
        self.elapsed = 0.0  # seconds of this run and the runs it resumes
        self.train_seconds = 0.0  # of which spent in training steps
        self.tokens = 0
        self.best_val = math.inf
        self.since_best = 0  # evaluations since the best one (for `TrainConfig.patience`)
        self.history: dict[str, list] = {"train": [], "val": []}  # [loss], [[step, loss]]
        self._stop = StopSignal()  # asked for by SIGINT, SIGTERM or `request_stop`
        if not self.out.parent.is_dir():
            self.out.parent.mkdir(parents=True, exist_ok=True)

    def request_stop(self) -> None:
        """Stop after the current step, evaluate, and save the state to resume from."""
        self._stop.request()

    @property
    def first_loss(self) -> float | None:
        """The training loss of the first step: the untrained model's, what the guard compares
        with."""
        return self.history["train"][0] if self.history["train"] else None

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

    def position(self) -> str:
        """Where the run stands: ``step 20 of 40 (lr now 1.2e-03, cosine to 1e-04)``."""
        taken = self.step + 1
        if taken < self.cfg.warmup_steps:
            lr, phase = self.schedule(taken, 0.0), f"warming up to {self.cfg.lr:.2g}"
        else:
            start = self.elapsed if self.decay_start is None else self.decay_start
            progress = decay_progress(self.cfg, taken, self.elapsed, start)
            lr, phase = self.schedule(taken, progress), f"cosine to {self.cfg.min_lr:.2g}"
        budget = []
        if self.cfg.steps is not None:
            budget.append(f"step {self.step} of {self.cfg.steps}")
        if self.cfg.minutes is not None:
            budget.append(f"{self.elapsed / 60:.1f} of {self.cfg.minutes:g} minutes")
        return f"{', '.join(budget)} (lr now {lr:.2g}, {phase})"

    # -- checkpoints ------------------------------------------------------------------------
    def _train_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "train_seconds": self.train_seconds,
            "tokens": self.tokens,
            "best_val": None if math.isinf(self.best_val) else self.best_val,
            "since_best": self.since_best,
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

    def resume(
        self, ckpt: Checkpoint | None = None, carry: bool = True, keep_best: bool = True
    ) -> str:
        """Continue from ``<out>.last.safetensors`` (or ``ckpt``, read from it) exactly where
        it stopped; ``carry=False`` starts the next batch from a zero state instead of the
        saved one, ``keep_best=False`` forgets the best validation loss (the next evaluation
        writes the best checkpoint). Returns `position`."""
        path = last_path(self.out)
        if ckpt is None:
            ckpt = read_last(path)
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
        carried = {k[6:]: v for k, v in ckpt.arrays.items() if k.startswith("carry/")}
        self.objective.load_carry(carried if carry else {})
        for key, gen in self.model.generators().items():
            gen.bit_generator.state = state["generators"][key]
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.train_seconds, self.tokens = state["train_seconds"], state["tokens"]
        self.best_val = (
            math.inf if state["best_val"] is None or not keep_best else state["best_val"]
        )
        self.history = state["history"]
        self.since_best = state.get("since_best", 0) if keep_best else 0
        self.decay_start = state.get("decay_start")  # older checkpoints: steps of equal time
        if self.decay_start is None and self.step >= self.cfg.warmup_steps:
            self.decay_start = self.elapsed * self.cfg.warmup_steps / self.step
        return self.position()

    # -- the loop ---------------------------------------------------------------------------
    def _evaluate(self, log: Any) -> float:
        val = float(self.objective.evaluate())
        self._guard_validation(val)  # before anything is saved: diverged weights never are
        self.history["val"].append([self.step, val])
        if val < self.best_val:
            self.best_val, self.since_best = val, 0
            self._save_best()
        else:
            self.since_best += 1
        self._save_last()
        recent = self.history["train"][-50:]
        speed = self.tokens / max(self.train_seconds, 1e-9)
        note = getattr(self.objective, "eval_note", "")  # e.g. "accuracy 0.912"
        log(
            f"step {self.step:6d}  train {np.mean(recent):.4f}  val {val:.4f} "
            f"({val / math.log(2):.3f} bits/{self.cfg.unit})  {speed:,.0f} {self.cfg.unit}s/s"
            + (f"  {note}" if note else "")
        )
        return val

    def _train_one_step(self) -> float:
        taken = self.step + 1  # counting this step: the first has no lr of 0
        self.opt.lr = self.schedule(taken, self._decay_progress(taken))
        t0 = time.perf_counter()
        self.model.zero_grad()
        loss, n = self.objective.train_step(self.step)
        norm = clip_grad_norm(self.model, self.cfg.clip)
        self._guard(loss, norm)
        self.opt.step()
        self.train_seconds += time.perf_counter() - t0
        self.tokens += n
        self.step += 1
        self.history["train"].append(float(loss))
        return float(loss)

    def run(self) -> TrainResult:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(stderr=True)  # evaluation lines always; progress if asked

        def say(message: str) -> None:
            if not self.quiet:
                console.print(message, markup=False, highlight=False, soft_wrap=True)

        live = self.progress and console.is_terminal
        bar = Progress(
            TextColumn("train"),
            BarColumn(),
            TextColumn("{task.fields[msg]}"),
            TimeRemainingColumn(),
            console=console,
            disable=not live,
        )
        task = bar.add_task("train", total=1.0, msg="")
        last_val = self.history["val"][-1][1] if self.history["val"] else math.nan
        stopped = "budget"
        run_start = time.perf_counter() - self.elapsed
        next_line = time.perf_counter() + self.progress_every  # plain progress lines
        self._stop.clear()
        # SIGINT, SIGTERM: finish the step, evaluate, save; a second one aborts (`Stopped`)
        with self._stop.installed(), self._stop.armed():
            with bar:
                while self._fraction() < 1.0 and not self._stop.requested:
                    loss = self._train_one_step()
                    self.elapsed = time.perf_counter() - run_start
                    if self.step % self.cfg.eval_every == 0:
                        last_val = self._evaluate(say)
                        self.elapsed = time.perf_counter() - run_start
                        if self.cfg.patience is not None and self.since_best >= self.cfg.patience:
                            stopped = "early"
                            say(
                                f"early stop at step {self.step}: no better validation loss "
                                f"in {self.since_best} evaluations"
                            )
                            break
                    speed = self.tokens / max(self.train_seconds, 1e-9)
                    bar.update(
                        task,
                        completed=min(self._fraction(), 1.0),
                        msg=f"step {self.step}  loss {loss:.3f}  val {last_val:.3f}  "
                        f"{speed:,.0f} {self.cfg.unit}s/s",
                    )
                    if self.progress and not live and time.perf_counter() >= next_line:
                        say(self.progress_line())
                        next_line = time.perf_counter() + self.progress_every
                    if self.on_step is not None:
                        self.on_step(self)  # a hook: progress reports, tests, early stops
                if self._stop.requested:
                    stopped = "interrupted"
                    say(
                        f"interrupted at step {self.step} ({self._stop.name}): "
                        "saving to resume later"
                    )
                if stopped == "interrupted" or not (
                    self.history["val"] and self.history["val"][-1][0] == self.step
                ):
                    last_val = self._evaluate(say)
            self.elapsed = time.perf_counter() - run_start
            self._save_last()
        if self.write_plot:
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

    def progress_line(self) -> str:
        """``step 120/400 (30%)  loss 2.314  1,234 chars/s  eta 3m10s``: what a log gets
        every ``progress_every`` seconds when there is no terminal for a live bar."""
        fraction = min(self._fraction(), 1.0)
        if self.cfg.steps is not None:
            where = f"step {self.step}/{self.cfg.steps} ({fraction:.0%})"
        else:
            where = f"step {self.step} ({fraction:.0%} of {self.cfg.minutes:g} min)"
        loss = np.mean(self.history["train"][-50:])
        speed = self.tokens / max(self.train_seconds, 1e-9)
        eta = self.elapsed * (1 - fraction) / fraction if fraction > 0 else math.nan
        return f"{where}  loss {loss:.3f}  {speed:,.0f} {self.cfg.unit}s/s  eta {_duration(eta)}"

    # -- the divergence guard -----------------------------------------------------------------
    def _guard(self, loss: float, norm: float) -> None:
        """Stop before a bad update reaches the weights; the checkpoints on disk stay good.

        From the second step on: a loss above ``SPIKE`` times the first, or a mean of the last
        ``WINDOW`` losses above ``EXPLODED`` times the first (one noisy batch is not enough).
        """
        first = self.first_loss
        recent = [*self.history["train"][-(WINDOW - 1) :], loss]
        bad = None
        if not math.isfinite(loss):
            bad = f"the loss is {loss}"
        elif not math.isfinite(norm):
            bad = f"the gradient norm is {norm}"
        elif first is not None and loss > SPIKE * first:
            bad = f"the loss jumped to {loss:.3g} (it started at {first:.3g})"
        elif first is not None and np.mean(recent) > EXPLODED * first:
            bad = (
                f"the loss exploded to a mean of {np.mean(recent):.3g} over the last "
                f"{len(recent)} steps (it started at {first:.3g})"
            )
        if bad:
            self._diverged(bad)

    def _guard_validation(self, val: float) -> None:
        """A validation loss that is not finite, or ``EXPLODED`` times the untrained model's
        training loss, is a diverged model: never kept as the best, nor saved to resume."""
        first = self.first_loss
        if not math.isfinite(val):
            self._diverged(f"the validation loss is {val}")
        if self.cfg.guard_validation and first is not None and val > EXPLODED * first:
            self._diverged(
                f"the validation loss {val:.3g} is far above the untrained model's loss "
                f"{first:.3g} (or the validation text is unlike the training text)"
            )

    def _diverged(self, why: str) -> None:
        kept = (
            f"the best checkpoint {str(self.out)!r} is intact"
            if self.out.exists()
            else "no checkpoint was written"
        )
        raise TrainingDiverged(
            f"training diverged at step {self.step}: {why}; {kept}. "
            "Try a lower --lr or a smaller --clip"
        )

    def plot(self) -> Path | None:
        """Training loss (smoothed) and validation loss by step, next to the checkpoint; the
        PNG names rnnkit as its software, so a later run may replace it."""
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
        try:
            save_figure(fig, path)
        finally:
            plt.close(fig)
        return path


def with_epochs(cfg: TrainConfig, objective: Any) -> TrainConfig:
    """``cfg`` with an ``epochs`` budget turned into steps (the fewer, with ``steps`` too), from
    the objective's ``steps_per_epoch``."""
    if cfg.epochs is None:
        return cfg
    per_epoch = getattr(objective, "steps_per_epoch", None)
    if not isinstance(per_epoch, int) or per_epoch <= 0:
        raise InputError(
            f"Trainer: an epochs budget needs an objective with steps_per_epoch, "
            f"got {type(objective).__name__}"
        )
    steps = max(1, math.ceil(cfg.epochs * per_epoch))
    return replace(cfg, steps=steps if cfg.steps is None else min(steps, cfg.steps))


def read_last(path: Path) -> Checkpoint:
    """The ``.last`` checkpoint to resume from; one-line errors when it is missing, damaged or
    not one (a best checkpoint holds no optimizer state)."""
    if not path.is_file():
        raise CheckpointError(
            f"resume: no checkpoint {str(path)!r} to resume from; expected the .last file "
            "of an earlier run with the same --out"
        )
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"resume: {exc}") from None
    state = ckpt.metadata.get("train")
    if not isinstance(state, dict) or "generators" not in state or "optimizer" not in ckpt.metadata:
        raise CheckpointError(
            f"resume: {str(path)!r} holds no training state; expected the .last checkpoint "
            "that a training run writes"
        )
    return ckpt


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _scalars(opt_state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in opt_state.items() if k != "buffers"}


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
