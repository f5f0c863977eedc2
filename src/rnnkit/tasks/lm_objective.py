"""What the `Trainer` runs for a language model: `LMObjective`, truncated BPTT over parallel
streams of the text with the hidden state carried from chunk to chunk, and `evaluate_streams`,
the mean loss per token over held-out streams.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.text import TokenStreams
from ..losses import cross_entropy
from ..models.language import LanguageModel
from ..training.distributed import check_divides, shard


class LMObjective:
    """Truncated BPTT over ``batch`` parallel streams with the hidden state carried along.

    ``shard = (rank, world)``: in a data-parallel run, this process's streams of the batch
    (`rnnkit.training.distributed.shard`); the carried state is this rank's, and the whole
    batch's when saved (``carry_axis``: the streams' axis of the state)."""

    carry_axis = 1  # the state is (layers, B, H)

    def __init__(self, model: LanguageModel, train: TokenStreams, valid: TokenStreams) -> None:
        self.model, self.train, self.valid = model, train, valid
        self.state: Any = None
        self._shard: tuple[int, int] | None = None

    @property
    def shard(self) -> tuple[int, int] | None:
        return self._shard

    @shard.setter
    def shard(self, part: tuple[int, int] | None) -> None:
        if part is not None:
            check_divides(self.train.batch, part[1], "train lm: --batch")
        self._shard = part

    def train_step(self, step: int) -> tuple[float, int]:
        k = step % len(self.train)
        if k == 0:
            self.state = None  # a new pass over the data starts from a zero state
        x, y = self.train.chunk(k)
        rows = shard(self.train.batch, self._shard)
        x, y = x[:, rows], y[:, rows]
        logits, state, backward = self.model.forward_train(x, self.state)
        loss, dlogits = cross_entropy(logits, y)
        backward(dlogits)
        self.state = state  # carried into the next chunk, no gradient flows back into it
        return loss, int(y.size)

    def evaluate(self) -> float:
        return evaluate_streams(self.model, self.valid)

    def carry_arrays(self) -> dict[str, np.ndarray]:
        if self.state is None:
            return {}
        parts = self.state if isinstance(self.state, tuple) else (self.state,)
        return {f"state{i}": p for i, p in enumerate(parts)}

    def load_carry(self, arrays: dict[str, np.ndarray]) -> None:
        if not arrays:
            self.state = None
            return
        parts = tuple(arrays[f"state{i}"] for i in range(len(arrays)))
        if self._shard is not None and parts[0].shape[1] == self.train.batch:
            rows = shard(self.train.batch, self._shard)  # the whole batch's state, saved
            parts = tuple(p[:, rows] for p in parts)
        self.state = parts if len(parts) == 2 else parts[0]


def evaluate_streams(model: LanguageModel, streams: TokenStreams) -> float:
    """Mean loss in nats per token over every chunk, the state carried from chunk to chunk."""
    state, total, count = None, 0.0, 0
    for k in range(len(streams)):
        x, y = streams.chunk(k)
        logits, state = model(x, state)
        loss, _ = cross_entropy(logits, y, reduction="sum")
        total += loss
        count += y.size
    return total / count
