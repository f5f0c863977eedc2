"""`Trainer`: the loop that runs an `Objective` to its budget.

Each step: the learning rate from the schedule, the objective's forward and backward, global-norm
clipping, the divergence guard (`guard`), AdamW, and with ``TrainConfig.ema`` a moving average
of the weights (Polyak averaging; its decay ``min(ema, (1 + t) / (10 + t))`` at step ``t``),
which is then what is evaluated and kept as the best. Every ``eval_every`` steps: an evaluation,
guarded too, the best checkpoint kept and the ``.last`` one written (`checkpoints`), an early
stop after ``patience`` evaluations without a better one (better: a lower validation loss, or
a lower ``objective.selection()`` where the objective has one, such as minus BLEU). Progress
on stderr (`report`); SIGINT or SIGTERM stops after the current step, evaluates and saves;
`resume` continues exactly.

Under ``torchrun`` (``WORLD_SIZE`` above 1) the run is data-parallel (`distributed`): each
process takes its shard of every batch, the gradients are all-reduced before the clipping, and
rank 0 alone evaluates and writes; the ranks decide alike on the stop, the schedule's clock and
early stopping from the numbers they share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, InputError
from ..io.checkpoint import Checkpoint, load_checkpoint
from ..optim import AdamW, clip_grad_norm
from ..signals import StopSignal
from .checkpoints import last_path, read_last, save_best, save_last
from .config import Objective, TrainConfig, TrainResult, decay_progress, learning_rates, with_epochs
from .distributed import Distributed
from .guard import diverged, step_trouble, validation_trouble
from .report import evaluation_line, plot_losses, progress_bar, progress_line


class Trainer:
    """Runs an `Objective` to its budget; `rnnkit.training.checkpoints` says what it writes.

    ``progress``: report progress on stderr, as a live bar when it is a terminal and as a
    plain line every ``progress_every`` seconds when it is not (a log file, a pipe).
    ``quiet``: no evaluation lines either; ``plot=False``: no loss-curve PNG.
    ``distributed``: the data-parallel run this process is a rank of; by default the one
    ``torchrun`` describes in the environment (`Distributed.from_environment`), if any.
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
        distributed: Distributed | None | str = "auto",
    ) -> None:
        if isinstance(distributed, str):  # "auto"
            distributed = Distributed.from_environment()
        self.dist: Distributed | None = distributed
        self.writer = self.dist is None or self.dist.rank == 0  # writes files, logs
        quiet, plot, progress = (
            quiet or not self.writer,
            plot and self.writer,
            progress and self.writer,
        )
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
        self.averaged: dict[str, np.ndarray] | None = (
            {k: v.copy() for k, v in self.model.named_parameters().items()} if cfg.ema else None
        )
        self._stop = StopSignal()  # asked for by SIGINT, SIGTERM or `request_stop`
        self._any_stop = False  # distributed: a stop asked for on some rank, after the step
        self._run_start = time.perf_counter()
        if self.writer and not self.out.parent.is_dir():
            self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.dist is not None:
            if not hasattr(objective, "shard"):
                raise InputError(
                    f"{type(objective).__name__} cannot train on several processes; expected "
                    "an objective with a shard attribute (rnnkit.training.distributed)"
                )
            objective.shard = self.dist.part  # type: ignore[attr-defined]
            self.dist.attach(self.model)

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
        carry = self.objective.carry_arrays()
        if self.dist is not None:  # the whole batch's carried state, on rank 0
            axis = getattr(self.objective, "carry_axis", 0)
            carry = self.dist.gather_rows(carry, axis, self.step)
        if self.writer:
            opt_state = self.opt.state_dict()
            save_last(
                self.model,
                self.out,
                self.metadata,
                self._train_state(),
                opt_state,
                carry,
                self.averaged,
            )

    def _save_best(self) -> None:
        if self.writer:
            save_best(self.model, self.out, self.metadata, self.step, self.best_val)

    def load_best(self) -> None:
        """The best checkpoint's weights (at ``out``) into the model; distributed, rank 0
        reads the file and every rank gets its weights."""
        if self.writer:
            self.model.load_state_dict(load_checkpoint(self.out).model.state_dict())
        if self.dist is not None:
            self.dist.broadcast_arrays(list(self.model.named_parameters().values()), self.step)

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
        if self.averaged is not None:  # a run saved without an average starts it here
            for k, v in self.averaged.items():
                v[...] = ckpt.arrays.get(f"ema/{k}", self.model.named_parameters()[k])
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
        if self.dist is not None:  # each rank its own dropout draws again
            self.dist.jump_generators(self.model)
        return self.position()

    # -- the loop ---------------------------------------------------------------------------
    @contextmanager
    def _averaged_weights(self) -> Iterator[None]:
        """The moving average of the weights in the model for the duration (if there is one)."""
        if self.averaged is None:
            yield
            return
        params = self.model.named_parameters()
        raw = {k: v.copy() for k, v in params.items()}
        for k, v in params.items():
            v[...] = self.averaged[k]
        try:
            yield
        finally:
            for k, v in params.items():
                v[...] = raw[k]

    def _update_average(self) -> None:
        if self.averaged is None:
            return
        decay = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        for k, v in self.model.named_parameters().items():
            a = self.averaged[k]
            a += (1 - decay) * (v - a)

    def _evaluate(self, log: Any) -> float:
        with self._averaged_weights():  # evaluated and kept as the best: the average
            val = self._evaluate_model()
        self._save_last()  # the weights trained on, the average beside them
        speed = self.tokens / max(self.train_seconds, 1e-9)
        note = getattr(self.objective, "eval_note", "")  # e.g. "accuracy 0.912"
        log(evaluation_line(self.cfg, self.step, self.history["train"], val, speed, note))
        return val

    def _evaluate_model(self) -> float:
        val = float(self.objective.evaluate()) if self.writer else math.nan
        select = getattr(self.objective, "selection", None)  # e.g. -BLEU; lower is better
        score = val if select is None or not self.writer else float(select())
        if self.dist is not None:  # rank 0's numbers and clock: every rank decides alike
            val, score, self.elapsed = self.dist.broadcast_values(
                [val, score, self._clock()], self.step
            )
        self._guard_validation(val)  # before anything is saved: diverged weights never are
        self.history["val"].append([self.step, val])
        if score < self.best_val:
            self.best_val, self.since_best = score, 0
            self._save_best()
        else:
            self.since_best += 1
        return val

    def _train_one_step(self) -> float:
        taken = self.step + 1  # counting this step: the first has no lr of 0
        self.opt.lr = self.schedule(taken, self._decay_progress(taken))
        t0 = time.perf_counter()
        self.model.zero_grad()
        loss, n = self.objective.train_step(self.step)
        if self.dist is not None:  # the whole global batch's gradients, loss and count
            weight = getattr(self.objective, "loss_weight", None)  # what the loss averages
            loss, n, self._any_stop, self.elapsed = self.dist.reduce_step(
                self.step, loss, n, self._stop.requested, self._clock(), weight
            )
        norm = clip_grad_norm(self.model, self.cfg.clip)
        self._guard(loss, norm)
        self.opt.step()
        self._update_average()
        self.train_seconds += time.perf_counter() - t0
        self.tokens += n
        self.step += 1
        self.history["train"].append(float(loss))
        return float(loss)

    def _clock(self) -> float:
        return time.perf_counter() - self._run_start

    def _tick(self) -> None:
        """The run's clock after a step or an evaluation; distributed, the ranks' shared one
        (set by the step's all-reduce and the evaluation's broadcast)."""
        if self.dist is None:
            self.elapsed = self._clock()

    def _stopping(self) -> bool:
        return self._stop.requested if self.dist is None else self._any_stop

    def run(self) -> TrainResult:
        from rich.console import Console

        console = Console(stderr=True)  # evaluation lines always; progress if asked

        def say(message: str) -> None:
            if not self.quiet:
                console.print(message, markup=False, highlight=False, soft_wrap=True)

        live = self.progress and console.is_terminal
        bar, task = progress_bar(console, live)
        last_val = self.history["val"][-1][1] if self.history["val"] else math.nan
        stopped = "budget"
        run_start = self._run_start = time.perf_counter() - self.elapsed
        self._any_stop = False
        next_line = time.perf_counter() + self.progress_every  # plain progress lines
        self._stop.clear()
        # SIGINT, SIGTERM: finish the step, evaluate, save; a second one aborts (`Stopped`)
        with self._stop.installed(), self._stop.armed():
            with bar:
                while self._fraction() < 1.0 and not self._stopping():
                    loss = self._train_one_step()
                    self._tick()
                    if self.step % self.cfg.eval_every == 0:
                        last_val = self._evaluate(say)
                        self._tick()
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
                if self._stopping():
                    stopped = "interrupted"
                    say(
                        f"interrupted at step {self.step} "
                        f"({self._stop.name or 'a signal to another rank'}): "
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
        speed = self.tokens / max(self.train_seconds, 1e-9)
        return progress_line(
            self.cfg, self.step, fraction, self.history["train"], speed, self.elapsed
        )

    # -- the divergence guard (`guard`) -------------------------------------------------------
    def _guard(self, loss: float, norm: float) -> None:
        """Stop before a bad update reaches the weights; the checkpoints on disk stay good."""
        why = step_trouble(loss, norm, self.history["train"])
        if why:
            diverged(why, self.step, self.out)

    def _guard_validation(self, val: float) -> None:
        """A diverged validation loss is never kept as the best, nor saved to resume."""
        why = validation_trouble(val, self.first_loss, self.cfg.guard_validation)
        if why:
            diverged(why, self.step, self.out)

    def plot(self) -> Path | None:
        """Training loss (smoothed) and validation loss by step, next to the checkpoint; the
        PNG names rnnkit as its software, so a later run may replace it."""
        return plot_losses(self.history, self.cfg.unit, self.out)
