"""`SequenceRegressor`: a recurrent stack read at its last step by a linear head.

h_{1..T} = Recurrent(x_{1..T});    y = W h_T + b
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..layers import Module
from .stack import recurrent_with_head


@dataclass(frozen=True)
class RegressorConfig:
    cell: str  # lstm, gru, rnn
    input_size: int
    hidden_size: int
    output_size: int
    num_layers: int = 1
    dtype: str = "float32"


class SequenceRegressor(Module):
    """Many-to-one regression: a sequence ``(T, B, F)`` in, one vector ``(B, output_size)`` out."""

    config_class = RegressorConfig

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        num_layers: int = 1,
        seed: int | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.cell = cell
        self.rnn, self.head = recurrent_with_head(
            "SequenceRegressor", cell, input_size, hidden_size, output_size, num_layers, seed, dtype
        )
        self.children = {"rnn": self.rnn, "head": self.head}

    @property
    def config(self) -> RegressorConfig:
        return RegressorConfig(
            self.cell,
            self.rnn.input_size,
            self.rnn.hidden_size,
            self.head.out_features,
            self.rnn.num_layers,
            self.rnn.dtype.name,
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y, _ = self.rnn(x)
        return self.head(y[-1])

    @property
    def input_size(self) -> int:
        return self.rnn.input_size

    def initial_state(self, batch: int):
        return self.rnn.initial_state(batch)

    def stream_forward(self, x: np.ndarray, state=None):
        """The head's output at every step ``(T, B, out)`` from a carried state."""
        h, state = self.rnn.stream_forward(x, state)
        return self.head(h), state

    def forward_train(self, x: np.ndarray):
        y, _, rnn_backward = self.rnn.forward_train(x)  # (T, B, H)
        pred, head_backward = self.head.forward_train(y[-1])

        def backward(dpred: np.ndarray) -> np.ndarray:
            dy = np.zeros_like(y)
            dy[-1] = head_backward(dpred)  # only the last step feeds the head
            dx, _ = rnn_backward(dy)
            return dx

        return pred, backward
