"""Language-model pretraining of a classifier's embedding and recurrent layer on its own texts.

Dai and Le (2015, "Semi-supervised sequence learning") showed that an LSTM first trained to
predict the next word of the training texts, then fine-tuned as a classifier, generalises much
better than one trained from random weights. `pretrain` does that before `fit`'s classifier
training, with the same `Trainer` (budget in epochs, validation, divergence guard):

- the forward direction at step t predicts token t+1; a bidirectional layer's backward
  direction at step t predicts token t-1 (as ELMo's two language models do); padded steps and
  the ends of each sequence contribute nothing (masked cross-entropy);
- to keep the softmax cheap the language model predicts only the `OUTPUT_WORDS` most frequent
  tokens (a word vocabulary is ordered by frequency), every rarer token as one "other" class;
- the output layers are thrown away afterwards; the embedding and recurrent layer, which are
  the classifier's own modules, keep what they learned.

    logits_f[t] = W_f h_fwd[t] + b_f    loss_f = CE(logits_f[t], x[t+1]),  t = 0 .. L-2
    logits_b[t] = W_b h_bwd[t] + b_b    loss_b = CE(logits_b[t], x[t-1]),  t = 1 .. L-1
    loss = (loss_f + loss_b) / 2        (loss_f alone for a unidirectional layer)
"""

from __future__ import annotations

import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.batches import bucket_batches, pad
from ..layers import Embedding, Linear
from ..layers.module import Module
from ..layers.recurrent import Recurrent
from ..losses import cross_entropy
from ..signals import Stopped
from ..training import TrainConfig, Trainer

OUTPUT_WORDS = 2000  # the language model's output classes: the most frequent tokens, then "other"
EVAL_BATCH = 256


@dataclass(frozen=True)
class PretrainNetConfig:
    hidden_size: int
    directions: int
    outputs: int
    dtype: str = "float32"


class PretrainNet(Module):
    """An embedding and recurrent layer (shared with the classifier) with one output layer per
    direction; ``(logits_f, logits_b), backward = forward_train(ids, lengths)``."""

    config_class = PretrainNetConfig
    embedding: Embedding  # set by `around`
    recurrent: Recurrent

    def __init__(
        self, hidden_size: int, directions: int, outputs: int, dtype: str = "float32"
    ) -> None:
        super().__init__()
        self.hidden_size, self.directions, self.outputs = hidden_size, directions, outputs
        self.dtype = dtype
        self.heads = [Linear(hidden_size, outputs, seed=d, dtype=dtype) for d in range(directions)]
        self.children = {f"head{d}": head for d, head in enumerate(self.heads)}

    @classmethod
    def around(cls, embedding: Embedding, recurrent: Recurrent, outputs: int) -> PretrainNet:
        directions = 2 if recurrent.bidirectional else 1
        net = cls(recurrent.hidden_size, directions, outputs, np.dtype(recurrent.dtype).name)
        net.embedding, net.recurrent = embedding, recurrent
        net.children = {"embedding": embedding, "recurrent": recurrent, **net.children}
        return net

    @property
    def config(self) -> PretrainNetConfig:
        return PretrainNetConfig(self.hidden_size, self.directions, self.outputs, self.dtype)

    def forward_train(self, ids: np.ndarray, lengths: np.ndarray) -> tuple[list, Any]:
        e, back_embedding = self.embedding.forward_train(ids)
        y, _, back_recurrent = self.recurrent.forward_train(e, lengths=lengths)
        H = self.hidden_size
        outs = [
            head.forward_train(y[..., d * H : (d + 1) * H]) for d, head in enumerate(self.heads)
        ]

        def backward(dlogits: list[np.ndarray]) -> None:
            dy = np.concatenate([back(g) for (_, back), g in zip(outs, dlogits, strict=True)], -1)
            back_embedding(back_recurrent(dy)[0])

        return [logits for logits, _ in outs], backward


def lm_targets(x: np.ndarray, lengths: np.ndarray, outputs: int) -> list[tuple]:
    """For ``x`` ``(T, B)`` padded ids: the forward (next token) and backward (previous token)
    targets, capped at the "other" class ``outputs - 1``, and their masks."""
    T = x.shape[0]
    capped = np.minimum(x, outputs - 1)
    steps = np.arange(T)[:, None]
    forward = np.zeros_like(capped)
    forward[:-1] = capped[1:]
    backward = np.zeros_like(capped)
    backward[1:] = capped[:-1]
    return [
        (forward, (steps < lengths[None, :] - 1).astype(np.float32)),
        (backward, ((steps >= 1) & (steps < lengths[None, :])).astype(np.float32)),
    ]


class PretrainObjective:
    """Language-model steps over bucketed batches (seeded by epoch, as the classifier's)."""

    def __init__(
        self,
        model: PretrainNet,
        train: list[np.ndarray],
        valid: list[np.ndarray],
        batch_size: int,
        seed: int,
    ) -> None:
        self.model, self.train, self.valid = model, train, valid
        self.batch_size, self.seed = batch_size, seed
        self.lengths = np.array([len(s) for s in train])
        self.steps_per_epoch = -(-len(train) // batch_size)
        self._epoch: tuple[int, list[np.ndarray]] = (-1, [])
        self.eval_note = ""

    def _loss(self, seqs: list[np.ndarray], index: np.ndarray) -> tuple[float, list, Any, int]:
        x, lengths = pad(seqs, index)
        logits, backward = self.model.forward_train(x, lengths)
        targets = lm_targets(x, lengths, self.model.outputs)
        losses, grads = [], []
        for z, (y, mask) in zip(logits, targets, strict=False):
            loss, dz = cross_entropy(z, y, mask=mask)
            losses.append(loss)
            grads.append(dz / len(logits))
        return float(np.mean(losses)), grads, backward, len(index)

    def train_step(self, step: int) -> tuple[float, int]:
        epoch, k = divmod(step, self.steps_per_epoch)
        if self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, 7, epoch])
            self._epoch = (epoch, bucket_batches(self.lengths, self.batch_size, rng))
        self.model.train()
        loss, grads, backward, n = self._loss(self.train, self._epoch[1][k])
        backward(grads)
        return loss, n

    def evaluate(self) -> float:
        self.model.eval()
        total = 0.0
        batches = bucket_batches([len(s) for s in self.valid], EVAL_BATCH)
        for index in batches:
            total += self._loss(self.valid, index)[0] * len(index)
        self.model.zero_grad()  # forward_train was used for the loss: nothing to keep
        self.model.train()
        return total / max(1, sum(len(i) for i in batches))

    def carry_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def load_carry(self, arrays: dict[str, np.ndarray]) -> None:
        pass


def pretrain(
    embedding: Embedding,
    recurrent: Recurrent,
    train: list[np.ndarray],
    valid: list[np.ndarray],
    epochs: float,
    batch_size: int,
    lr: float,
    seed: int,
    verbose: bool,
) -> float:
    """Train ``embedding`` and ``recurrent`` in place as the language model the module
    describes, for ``epochs`` passes over ``train``; returns the final validation loss. A
    stop asked for meanwhile (SIGINT, SIGTERM) raises `Stopped`: no classifier was trained yet,
    so there is nothing to save or resume."""
    outputs = min(embedding.num_embeddings, OUTPUT_WORDS + 1)
    net = PretrainNet.around(embedding, recurrent, outputs)
    objective = PretrainObjective(net, train, valid, batch_size, seed)
    cfg = TrainConfig(
        epochs=epochs,
        lr=lr,
        min_lr=lr / 30,
        warmup_steps=min(50, objective.steps_per_epoch),
        clip=1.0,
        eval_every=objective.steps_per_epoch,
        unit="example",
        guard_validation=False,
    )
    with tempfile.TemporaryDirectory(prefix="rnnkit-pretrain-") as tmp:
        trainer = Trainer(
            objective,
            cfg,
            Path(tmp) / "lm.safetensors",
            {},
            progress=verbose,
            quiet=not verbose,
            plot=False,
        )
        result = trainer.run()  # the final weights, not the best: fine-tuning follows
    if result.stopped == "interrupted":  # nothing to resume from yet: stop the whole fit
        raise Stopped(trainer._stop.signum or signal.SIGINT)
    return result.val_loss
