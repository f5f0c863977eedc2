"""The training objective of `Seq2Seq`: bucketed batches of pairs, teacher forcing, the
cross-entropy of the target tokens, validation by loss and BLEU.

A batch holds pairs of similar source and target lengths (`bucket_batches` on a key that sorts
by source length, then target length); the decoder reads ``<bos> y_1 .. y_{n-1}`` and predicts
``y_1 .. y_n <eos>``; only real target steps reach the output layer and the loss (the mean over
the batch's target tokens). Epoch ``e``'s batches come from a generator seeded by (seed, e).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.batches import bucket_batches, pad
from ..data.pairs import BOS
from ..models.seq2seq_decode import translate_ids
from ..training.distributed import shard

EVAL_BATCH = 128


def sacrebleu_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Corpus BLEU and chrF (sacreBLEU, its default settings) and their signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(list(hypotheses), [list(references)])
    c = chrf.corpus_score(list(hypotheses), [list(references)])
    return {
        "bleu": float(b.score),
        "chrf": float(c.score),
        "signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def token_cross_entropy(
    logits: np.ndarray, targets: np.ndarray, smoothing: float = 0.0
) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of ``logits (N, V)`` against ``targets (N,)`` and its
    gradient: `rnnkit.losses.cross_entropy` (tested equal) in fewer passes over the largest
    array of a step, computed in place in ``logits``' dtype. ``smoothing`` e > 0: label
    smoothing (Szegedy et al. 2016), the target is ``(1 - e) onehot(y) + e / V``, so the loss is
    ``(1 - e) (-log p_y) + e mean_v(-log p_v)`` (PyTorch's ``label_smoothing``)."""
    n, V = logits.shape
    rows = np.arange(n)
    z = logits - logits.max(axis=1, keepdims=True)  # stable: the largest logit is 0
    picked = z[rows, targets].astype(np.float64)
    spread = z.mean(axis=1, dtype=np.float64) if smoothing else 0.0  # mean_v z_v
    np.exp(z, out=z)
    total = z.sum(axis=1, dtype=np.float64)  # (N,)
    # -log p_v = log(total) - z_v
    loss = float(np.sum(np.log(total) - (1.0 - smoothing) * picked - smoothing * spread)) / n
    z *= (1.0 / (total * n)).astype(z.dtype)[:, None]  # softmax / N
    # d/dz = p - target: the target's share (1 - e) at y, e / V everywhere
    z[rows, targets] -= z.dtype.type((1.0 - smoothing) / n)
    if smoothing:
        z -= z.dtype.type(smoothing / (V * n))
    return loss, z


def shifted(tgt: np.ndarray) -> np.ndarray:
    """The decoder's inputs for targets ``tgt (T, B)``: ``<bos>`` then the targets but the last."""
    return np.concatenate([np.full((1, tgt.shape[1]), BOS, dtype=tgt.dtype), tgt[:-1]])


class TranslateObjective:
    """`rnnkit.training.Objective` for `Seq2Seq` (module docstring); after `evaluate`,
    ``eval_note`` shows the validation BLEU and `selection` (what the best checkpoint and
    patience go by, lower is better) is minus it (ties broken by the loss)."""

    def __init__(
        self, owner: Any, train: tuple[list, list], valid: tuple[list, list], references: list[str]
    ) -> None:
        self.owner = owner
        self.model = owner.model_
        self.train, self.valid, self.references = train, valid, references
        src_len = np.array([len(s) for s in train[0]])
        tgt_len = np.array([len(t) for t in train[1]])
        self.keys = src_len * 1000 + tgt_len
        self.batch_size, self.seed = owner.batch_size, owner.seed
        self.steps_per_epoch = -(-len(src_len) // self.batch_size)
        self._epoch: tuple[int, list[np.ndarray]] = (-1, [])
        self.eval_note = ""
        self.bleu = 0.0
        self.loss = 0.0
        self.shard: tuple[int, int] | None = None  # data-parallel: (rank, world), its pairs
        self.loss_weight = 0.0  # the last step's target tokens, what its loss is a mean over

    def _batches(self, epoch: int) -> list[np.ndarray]:
        if self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._epoch = (epoch, bucket_batches(self.keys, self.batch_size, rng))
        return self._epoch[1]

    def train_step(self, step: int) -> tuple[float, int]:
        epoch, k = divmod(step, self.steps_per_epoch)
        index = self._batches(epoch)[k]
        index = index[shard(len(index), self.shard)]
        self.loss_weight = 0.0
        if len(index) == 0:  # a rank with no pairs of a short last batch
            return 0.0, 0
        src, src_len = pad(self.train[0], index)
        tgt, tgt_len = pad(self.train[1], index)
        mask = np.arange(tgt.shape[0])[:, None] < tgt_len[None, :]
        self.model.teacher_forcing = self.owner.teacher_forcing_at(epoch)
        self.model.train()
        logits, backward = self.model.forward_train(src, src_len, shifted(tgt), mask)
        loss, grad = token_cross_entropy(logits, tgt[mask], self.owner.label_smoothing)
        backward(grad)
        self.loss_weight = float(mask.sum())
        return loss, len(index)

    def evaluate(self) -> float:
        """Teacher-forced loss per target token; greedy BLEU into ``eval_note``."""
        self.model.eval()
        src_all, tgt_all = self.valid
        total, count = 0.0, 0
        for index in bucket_batches([len(s) for s in src_all], EVAL_BATCH):
            src, src_len = pad(src_all, index)
            tgt, tgt_len = pad(tgt_all, index)
            mask = np.arange(tgt.shape[0])[:, None] < tgt_len[None, :]
            logits = self.model.teacher_forced(src, src_len, shifted(tgt))[mask]
            loss, _ = token_cross_entropy(logits, tgt[mask])
            total += loss * int(mask.sum())
            count += int(mask.sum())
        ids, _ = translate_ids(self.model, src_all, beam=1, max_ratio=self.owner.max_length_ratio)
        tok, vocab = self.owner.tokenizer_, self.owner.target_vocab_
        hyp = [tok.detokenize(vocab.decode(i)) for i in ids]
        self.bleu = sacrebleu_scores(hyp, self.references)["bleu"]
        self.eval_note = f"BLEU {self.bleu:.2f} (greedy)"
        self.model.train()
        self.loss = total / max(count, 1)
        return self.loss

    def selection(self) -> float:
        """Minus the validation BLEU; equal BLEU (0 for sentences under 4 words, say) goes
        by the validation loss, through a millionth of it."""
        return -self.bleu + 1e-6 * self.loss

    def carry_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def load_carry(self, arrays: dict[str, np.ndarray]) -> None:
        pass
