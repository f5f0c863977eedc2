"""What `SequenceClassifier` trains and predicts with: the training objective over bucketed
batches, batched probabilities, and the saved vocabulary of a run to
resume."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..data.batches import bucket_batches, pad
from ..data.text import Vocabulary
from ..errors import CheckpointError
from ..layers import Sequential
from ..losses import cross_entropy, softmax
from ..models.ensemble import Ensemble
from ..training.distributed import shard

PREDICT_BATCH = 256
MIXUP_STREAM = 13  # mixup's random stream, apart from the batches' and the masks'


def mixup_pairs(seed: int, step: int, alpha: float, n: int) -> tuple[float, np.ndarray]:
    """Mixup's draw for training step ``step`` (Zhang et al. 2018): a weight ``lam ~ Beta(alpha,
    alpha)`` and a permutation of the batch's ``n`` rows, from a generator seeded by ``(seed,
    MIXUP_STREAM, step)`` (so the PyTorch side of the evaluation draws the same)."""
    rng = np.random.default_rng([seed, MIXUP_STREAM, step])
    return float(rng.beta(alpha, alpha)), rng.permutation(n)


class ClassifyObjective:
    """One training step: a bucketed batch forward and backward, class-weighted
    cross-entropy. Batches of epoch ``e`` are drawn from a generator seeded by (seed, e),
    so a resumed run sees the same batches; nothing is carried between steps."""

    def __init__(
        self,
        model: Sequential,
        train: tuple[list[np.ndarray], np.ndarray],
        valid: tuple[list[np.ndarray], np.ndarray],
        batch_size: int,
        weights: np.ndarray | None,
        seed: int,
    ) -> None:
        self.model, self.train, self.valid = model, train, valid
        self.batch_size, self.weights, self.seed = batch_size, weights, seed
        self.lengths = np.array([len(s) for s in train[0]])
        self.steps_per_epoch = -(-len(self.lengths) // batch_size)
        self._epoch: tuple[int, list[np.ndarray]] = (-1, [])
        self.eval_note = ""
        self.shard: tuple[int, int] | None = None  # data-parallel: (rank, world), its rows
        self.loss_weight = 0.0  # what the last step's loss is a mean over (class weights)
        self.label_smoothing = 0.0  # the target's share spread over all classes
        self.mixup = 0.0  # Beta(a, a) of mixup's weight; 0: none
        # augmentation (`SequenceClassifier`): masks on each training batch, f(x, lengths,
        # step); the training inputs of each epoch, f(epoch), in place of train[0]
        self.mask: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None
        self.train_epoch: Callable[[int], list[np.ndarray]] | None = None
        self._inputs: tuple[int, list[np.ndarray]] = (-1, train[0])

    def _batches(self, epoch: int) -> list[np.ndarray]:
        if self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._epoch = (epoch, bucket_batches(self.lengths, self.batch_size, rng))
        return self._epoch[1]

    def _train_inputs(self, epoch: int) -> list[np.ndarray]:
        if self.train_epoch is None:
            return self.train[0]
        if self._inputs[0] != epoch:
            self._inputs = (epoch, self.train_epoch(epoch))
        return self._inputs[1]

    def train_step(self, step: int) -> tuple[float, int]:
        epoch, k = divmod(step, self.steps_per_epoch)
        index = self._batches(epoch)[k]
        index = index[shard(len(index), self.shard)]
        if len(index) == 0:  # a rank with no rows of a short last batch
            self.loss_weight = 0.0
            return 0.0, 0
        x, lengths = pad(self._train_inputs(epoch), index)
        if self.mask is not None:
            x = self.mask(x, lengths, step)
        y = self.train[1][index]
        lam, perm = 1.0, None
        if self.mixup:  # each row mixed with another's features; the loss mixed the same way
            lam, perm = mixup_pairs(self.seed, step, self.mixup, len(index))
            x = (lam * x + (1.0 - lam) * x[:, perm]).astype(x.dtype)
            lengths = np.maximum(lengths, lengths[perm])
        self.model.train()
        logits, backward = self.model.forward_train(x, lengths)
        mask = None if self.weights is None else self.weights[y]
        self.loss_weight = float(len(index) if mask is None else np.sum(mask))
        loss, dlogits = cross_entropy(logits, y, mask=mask, label_smoothing=self.label_smoothing)
        if perm is not None:
            mask2 = None if self.weights is None else self.weights[y[perm]]
            loss2, d2 = cross_entropy(
                logits, y[perm], mask=mask2, label_smoothing=self.label_smoothing
            )
            loss, dlogits = lam * loss + (1.0 - lam) * loss2, lam * dlogits + (1.0 - lam) * d2
        backward(dlogits.astype(logits.dtype))
        return loss, len(index)

    def evaluate(self) -> float:
        seqs, y = self.valid
        proba = predict_proba(self.model, seqs)
        self.model.train()
        nll = -np.log(np.maximum(proba[np.arange(len(y)), y], 1e-12))
        self.eval_note = f"accuracy {np.mean(proba.argmax(1) == y):.3f}"
        return float(np.mean(nll))

    def carry_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def load_carry(self, arrays: dict[str, np.ndarray]) -> None:
        pass


def saved_vocabulary(metadata: dict[str, Any]) -> Vocabulary:
    """The vocabulary of the fit saved with ``metadata`` (a ``.last`` checkpoint's)."""
    learned = metadata.get("learned")
    if not isinstance(learned, dict) or "vocab" not in learned:
        raise CheckpointError(
            "resume: the saved run holds no vocabulary; expected the .last checkpoint of a "
            "fit on text"
        )
    return Vocabulary(tuple(learned["vocab"]), str(learned["level"]))


def predict_proba(model: Sequential | Ensemble, seqs: list[np.ndarray]) -> np.ndarray:
    """Class probabilities ``(N, C)`` of a network, in batches sorted by length; of an
    `Ensemble`, the mean of its members' probabilities."""
    if isinstance(model, Ensemble):
        return np.mean([predict_proba(net, seqs) for net in model.members], axis=0)  # type: ignore[arg-type]
    model.eval()
    out: np.ndarray | None = None
    for index in bucket_batches([len(s) for s in seqs], PREDICT_BATCH):
        x, lengths = pad(seqs, index)
        p = softmax(np.asarray(model(x, lengths), dtype=np.float64))
        if out is None:
            out = np.zeros((len(seqs), p.shape[1]))
        out[index] = p
    assert out is not None
    return out
