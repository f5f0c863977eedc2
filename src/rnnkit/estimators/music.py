"""`MusicModel`: polyphonic music (piano rolls) modelled and generated one step at a time.

The network is a `PianoRollNet` (a recurrent stack, then independent sigmoids per key or a
NADE over the keys of a step). It reads steps ``1..T-1`` of each piece and is scored on steps
``2..T``: the metric of the published tables (Boulanger-Lewandowski et al. 2012, Chung et al.
2014) is the negative log-likelihood of each predicted step, in nats, summed over the 88 keys
and averaged over all predicted steps of a set (`nll`, `step_nll`).

Training goes through the one `Trainer`: whole pieces (full BPTT), padded batches of similar
lengths, AdamW with warm-up and cosine decay, validation every epoch, early stopping, the best
weights kept, resume. ``transpose=n`` moves each training piece by a random shift of up to
``n`` semitones each epoch (kept on the keyboard). ``weight_noise=s`` trains with Gaussian
weight noise (Graves 2011; Chung et al. 2014 used 0.075 on JSB Chorales): before each batch, every
weight matrix gets fresh noise of standard deviation ``s``, the gradient is taken at the noisy
weights and applied to the clean ones (biases are left alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.batches import bucket_batches, pad
from ..data.music import KEYS, as_roll, roll_from_steps, steps_from_roll
from ..errors import InputError
from ..layers.module import Module
from ..losses import bce_with_logits
from ..models.music import OUTPUTS, RECURRENT, PianoRollNet
from ..training import last_path, read_last
from ..training.distributed import shard
from .base import Estimator
from .fitting import run_fit
from .resume import fingerprint

DEFAULT_EPOCHS = 30  # the budget when none is given
SCORE_BATCH = 64


def step_nll(model: PianoRollNet, rolls: Sequence[np.ndarray]) -> tuple[float, int]:
    """The published metric's parts: the NLL in nats of steps ``2..T`` of every roll given the
    steps before it, summed over keys and steps, and the number of those steps."""
    model.eval()
    total, count = 0.0, 0
    inputs = [r[:-1] for r in rolls]
    targets = [r[1:] for r in rolls]
    for index in bucket_batches([len(r) for r in inputs], SCORE_BATCH):
        x, lengths = pad(inputs, index)
        y, _ = pad(targets, index)
        z = model.logits(x.astype(np.float32), y, lengths).astype(np.float64)
        mask = np.arange(len(x))[:, None] < lengths[None, :]  # (T, B)
        # -log p = softplus(z) - y z, for y in {0, 1}: the binary cross-entropy of each key
        bce = np.logaddexp(0.0, z) - y * z
        total += float(np.sum(bce * mask[:, :, None]))
        count += int(lengths.sum())
    return total, count


class MusicObjective:
    """One training step: a padded batch of whole pieces forward and backward; the loss is
    the NLL per predicted step (summed over keys). Batches of epoch ``e`` come from a
    generator seeded by (seed, e), so a resumed run sees the same batches."""

    def __init__(
        self,
        model: PianoRollNet,
        train: list[np.ndarray],
        valid: list[np.ndarray],
        batch_size: int,
        transpose: int,
        seed: int,
        weight_noise: float = 0.0,
    ) -> None:
        self.model, self.train, self.valid = model, train, valid
        self.batch_size, self.transpose, self.seed = batch_size, transpose, seed
        self.weight_noise = weight_noise
        self.lengths = np.array([len(r) - 1 for r in train])
        self.steps_per_epoch = -(-len(train) // batch_size)
        used = [np.flatnonzero(r.any(axis=0)) for r in train]
        self.room = [(-int(u[0]), KEYS - 1 - int(u[-1])) if u.size else (0, 0) for u in used]
        self._epoch: tuple[int, list[np.ndarray], np.ndarray] = (-1, [], np.zeros(0))
        self.eval_note = ""
        self.shard: tuple[int, int] | None = None  # data-parallel: (rank, world), its rows

    def _plan(self, epoch: int) -> tuple[list[np.ndarray], np.ndarray]:
        """The epoch's batches and each piece's transposition."""
        if self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            batches = bucket_batches(self.lengths, self.batch_size, rng)
            shifts = np.zeros(len(self.train), dtype=np.int64)
            if self.transpose:
                for i, (down, up) in enumerate(self.room):
                    lo, hi = max(down, -self.transpose), min(up, self.transpose)
                    shifts[i] = rng.integers(lo, hi + 1)
            self._epoch = (epoch, batches, shifts)
        return self._epoch[1], self._epoch[2]

    def train_step(self, step: int) -> tuple[float, int]:
        epoch, k = divmod(step, self.steps_per_epoch)
        batches, shifts = self._plan(epoch)
        index = batches[k]
        index = index[shard(len(index), self.shard)]
        if len(index) == 0:  # a rank with no rows of a short last batch
            return 0.0, 0
        rolls = [np.roll(self.train[i], int(shifts[i]), axis=1) for i in index]
        x, lengths = pad([r[:-1] for r in rolls], np.arange(len(rolls)))
        y, _ = pad([r[1:] for r in rolls], np.arange(len(rolls)))
        mask = (np.arange(len(x))[:, None] < lengths[None, :]).astype(np.float32)
        self.model.train()
        clean = self._add_noise(step)
        z, backward = self.model.forward_train(x.astype(np.float32), y, lengths)
        n = int(lengths.sum())
        loss, dz = bce_with_logits(z, y, mask=mask, reduction="sum")
        backward(dz / n)
        for w, c in clean:  # the gradient was taken at the noisy weights; the step is on these
            w[...] = c
        return float(loss) / n, n

    def noise(self, step: int) -> dict[str, np.ndarray]:
        """The weight noise of training step ``step``: one array per weight matrix (none with
        ``weight_noise=0``), from a generator seeded by (seed, step), so a resume sees the same."""
        if not self.weight_noise:
            return {}
        rng = np.random.default_rng([self.seed, 1, step])
        return {
            k: rng.normal(0.0, self.weight_noise, w.shape).astype(w.dtype)
            for k, w in self.model.named_parameters().items()
            if w.ndim >= 2
        }

    def _add_noise(self, step: int) -> list[tuple[np.ndarray, np.ndarray]]:
        params = self.model.named_parameters()
        clean = []
        for k, e in self.noise(step).items():
            clean.append((params[k], params[k].copy()))
            params[k] += e
        return clean

    def evaluate(self) -> float:
        total, count = step_nll(self.model, self.valid)
        self.model.train()
        return total / count

    def carry_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def load_carry(self, arrays: dict[str, np.ndarray]) -> None:
        pass


class MusicModel(Estimator):
    """Model and generate polyphonic music: ``MusicModel().fit(pieces).generate(64)``.

    A piece is a piano roll ``(T, 88)`` of 0/1 (key k is MIDI pitch 21 + k) or a list of steps,
    each a list of MIDI pitches (`rnnkit.data.music`). ``output``: "sigmoid" (independent keys)
    or "nade" (the keys of a step jointly). Learned: ``model_`` (the `PianoRollNet`),
    ``openings_`` (the first step of each training piece: where unprimed generation starts),
    ``history_``, ``n_steps_``, ``stopped_``, ``best_val_loss_`` (validation NLL per step) and
    ``throughput_`` (training time steps per second, the first steps left out).
    ``weight_noise``: the standard deviation of Gaussian noise added to every weight matrix for
    each training batch (0: none); ``ema``: validate and keep an exponential moving average of
    the weights with this decay per step (0: the weights themselves; `TrainConfig.ema`).

    The budget is ``epochs``, ``steps`` or ``minutes`` (none given: 30 epochs); without
    ``X_valid``, the last ``validation_fraction`` of the pieces is held out.
    """

    _estimator_type = "density_estimator"
    model_: PianoRollNet

    def __init__(
        self,
        cell: str = "gru",
        hidden_size: int = 128,
        num_layers: int = 1,
        output: str = "sigmoid",
        nade_hidden: int = 64,
        dropout: float = 0.3,
        transpose: int = 0,
        steps_per_quarter: int = 1,
        batch_size: int = 16,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        weight_noise: float = 0.0,
        ema: float = 0.0,
        clip: float = 1.0,
        epochs: float | None = None,
        steps: int | None = None,
        minutes: float | None = None,
        patience: int | None = 5,
        validation_fraction: float = 0.1,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.output = output
        self.nade_hidden = nade_hidden
        self.dropout = dropout
        self.transpose = transpose
        self.steps_per_quarter = steps_per_quarter
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.weight_noise = weight_noise
        self.ema = ema
        self.clip = clip
        self.epochs = epochs
        self.steps = steps
        self.minutes = minutes
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.verbose = verbose

    def _check_params(self) -> None:
        if self.cell not in RECURRENT:
            raise InputError(
                f"MusicModel: cell must be one of {list(RECURRENT)}, got {self.cell!r}"
            )
        if self.output not in OUTPUTS:
            raise InputError(f"MusicModel: output must be one of {OUTPUTS}, got {self.output!r}")
        if not isinstance(self.transpose, (int, np.integer)) or not 0 <= self.transpose < KEYS:
            raise InputError(
                f"MusicModel: transpose must be an integer in [0, {KEYS}), got {self.transpose!r}"
            )
        if not self.weight_noise >= 0 or not np.isfinite(self.weight_noise):
            raise InputError(
                f"MusicModel: weight_noise must be a number >= 0, got {self.weight_noise!r}"
            )
        if not 0 <= self.ema < 1:
            raise InputError(f"MusicModel: ema must be in [0, 1), got {self.ema!r}")
        if not 0 < self.validation_fraction < 1:
            raise InputError(
                "MusicModel: validation_fraction must be in (0, 1), "
                f"got {self.validation_fraction!r}"
            )

    def _network(self) -> PianoRollNet:
        return PianoRollNet(
            self.cell,
            self.hidden_size,
            self.num_layers,
            self.dropout,
            self.output,
            self.nade_hidden,
            seed=self.seed,
        )

    # -- fit -----------------------------------------------------------------------------------
    def fit(
        self,
        X: Sequence[Any],
        X_valid: Sequence[Any] | None = None,
        out: str | Path | None = None,
        metadata: dict[str, Any] | None = None,
        resume: bool = False,
        force: bool = False,
    ) -> MusicModel:
        """Learn the pieces ``X``; returns self. ``out``: keep the best checkpoint there (with
        ``.last`` and ``.loss.png`` beside it); ``resume``: continue the fit saved at ``out``."""
        self._check_params()
        if resume and out is None:
            raise InputError("MusicModel.fit: resume=True needs out, the saved run's path")
        saved = read_last(last_path(Path(out))) if resume and out is not None else None
        train = _rolls(X, "fit")
        if X_valid is None:
            held = max(1, round(self.validation_fraction * len(train)))
            if len(train) <= held:
                raise InputError(
                    f"MusicModel.fit: {len(train)} piece(s) leave none to train on after "
                    "holding out validation pieces; give X_valid or more pieces"
                )
            train, valid = train[:-held], train[-held:]
        else:
            valid = _rolls(X_valid, "fit (validation)")
        self.openings_ = [steps_from_roll(r[:1])[0] for r in train]
        self.model_ = self._network()
        objective = MusicObjective(
            self.model_,
            train,
            valid,
            self.batch_size,
            int(self.transpose),
            self.seed,
            float(self.weight_noise),
        )
        data = {
            "train": fingerprint(train, np.zeros(0)),
            "valid": fingerprint(valid, np.zeros(0)),
        }
        steps = sum(len(r) - 1 for r in train)
        describe = (
            f"data: {len(train):,} training pieces ({steps:,} predicted steps), "
            f"{len(valid):,} validation pieces; {self.model_.num_parameters():,} parameters"
        )
        run_fit(
            self,
            objective,
            describe=describe,
            unit="frame",
            default_epochs=DEFAULT_EPOCHS,
            out=out,
            metadata=metadata,
            saved=saved,
            data=data,
            force=force,
        )
        return self

    # -- scoring -------------------------------------------------------------------------------
    def nll(self, X: Sequence[Any]) -> float:
        """The published metric: NLL in nats per predicted step (steps 2..T of each piece given
        the steps before), summed over the 88 keys, averaged over all predicted steps of ``X``."""
        self._check_fitted("score")
        total, count = step_nll(self.model_, _rolls(X, "nll"))
        return total / count

    def score(self, X: Sequence[Any], y: Any = None) -> float:
        """Minus `nll` (higher is better, as scikit-learn expects)."""
        return -self.nll(X)

    # -- generation ----------------------------------------------------------------------------
    def generate(
        self,
        steps: int,
        prime: Any = None,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> np.ndarray:
        """A piano roll ``(P + steps, 88)``: the prime (a roll or list of steps; default: the
        opening step of a training piece, chosen by ``seed``) and ``steps`` new steps, each
        sampled from the model at ``temperature`` (0: each key's likelier value)."""
        self._check_fitted("generate")
        if not isinstance(steps, (int, np.integer)) or steps < 0:
            raise InputError(f"MusicModel.generate: steps must be an integer >= 0, got {steps!r}")
        if not temperature >= 0 or not np.isfinite(temperature):
            raise InputError(f"MusicModel.generate: temperature must be >= 0, got {temperature!r}")
        rng = np.random.default_rng(seed)
        if prime is None:
            start = roll_from_steps([self.openings_[rng.integers(len(self.openings_))]], "opening")
        else:
            start = as_roll(prime, "MusicModel.generate: prime")
            if len(start) == 0:
                raise InputError(
                    "MusicModel.generate: the prime has no steps; expected one or more"
                )
        self.model_.eval()
        h, state = self.model_.read(start[:, None, :])  # (P, 1, H)
        out = [start]
        for _ in range(int(steps)):
            v = self.model_.sample(h[-1], temperature, rng)  # (1, K)
            out.append(v)
            h, state = self.model_.read(v[None], state)
        return np.concatenate(out).astype(np.uint8)

    # -- checkpoints ---------------------------------------------------------------------------
    def _learned(self) -> dict[str, Any]:
        return {"openings": self.openings_}

    def _restore(self, learned: dict[str, Any], model: Module) -> None:
        if not isinstance(model, PianoRollNet):
            raise TypeError(f"expected a PianoRollNet, got {type(model).__name__}")
        openings = learned["openings"]
        roll_from_steps(openings, "openings")  # pitches on the keyboard
        if not openings:
            raise ValueError("no opening steps")
        self.openings_ = [list(map(int, o)) for o in openings]
        model.eval()
        self.model_ = model


def _rolls(X: Sequence[Any], what: str) -> list[np.ndarray]:
    if X is None or len(X) == 0:
        raise InputError(f"MusicModel.{what}: no pieces; expected a list of piano rolls")
    rolls = [as_roll(x, f"MusicModel.{what}: piece {i}") for i, x in enumerate(X)]
    short = [i for i, r in enumerate(rolls) if len(r) < 2]
    if short:
        raise InputError(
            f"MusicModel.{what}: piece {short[0]} has {len(rolls[short[0]])} step(s); expected "
            "at least 2 (the first is read, the rest predicted)"
        )
    return rolls
