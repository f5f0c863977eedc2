"""`NextValueModel`: a recurrent stack that reads a series one value at a time and predicts a
Gaussian for the next value.

    h_t = Recurrent(x_1..x_t)                 x_t: the (normalised) value at step t, (T, B, 1)
    [d_t, s_t] = W h_t + b                     the head: two numbers per step
    mean_{t+1} = x_t + d_t                     predicted as a change from the last value
    var_{t+1}  = exp(clip(s_t, LOGVAR_MIN, LOGVAR_MAX))

Its stream output is the head's two numbers; `NextValueModel.gaussian` turns them (with the
input) into the mean and the variance. `forward_train` returns the Gaussian NLL's gradient path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import GRU, LSTM, RNN, Linear, Module
from ..layers.module import StreamHook

RECURRENT = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
LOGVAR_MIN, LOGVAR_MAX = -9.0, 6.0  # a standard deviation between 0.011 and 20 (normalised)


@dataclass(frozen=True)
class NextValueConfig:
    cell: str
    hidden_size: int
    num_layers: int = 1
    dtype: str = "float64"
    input_size: int = 1


class NextValueModel(Module):
    """One value (and ``input_size - 1`` features, such as the time of day) in per step,
    ``(T, B, input_size)``; the head's ``(T, B, 2)`` out. The value is feature 0."""

    config_class = NextValueConfig

    def __init__(
        self,
        cell: str = "gru",
        hidden_size: int = 16,
        num_layers: int = 1,
        seed: int | None = None,
        dtype: str = "float64",
        input_size: int = 1,
    ) -> None:
        super().__init__()
        if cell not in RECURRENT:
            raise InputError(
                f"NextValueModel: unknown cell {cell!r}; expected one of {sorted(RECURRENT)}"
            )
        seeds = np.random.SeedSequence(seed).generate_state(2)
        self.cell = cell
        self.rnn = RECURRENT[cell](
            input_size, hidden_size, num_layers, seed=int(seeds[0]), dtype=dtype
        )
        self.head = Linear(hidden_size, 2, seed=int(seeds[1]), dtype=dtype)
        self.children = {"rnn": self.rnn, "head": self.head}

    @property
    def config(self) -> NextValueConfig:
        return NextValueConfig(
            self.cell,
            self.rnn.hidden_size,
            self.rnn.num_layers,
            self.rnn.dtype.name,
            self.rnn.input_size,
        )

    @property
    def input_size(self) -> int:
        return self.rnn.input_size

    # -- inference ---------------------------------------------------------------------------
    def initial_state(self, batch: int) -> Any:
        return self.rnn.initial_state(batch)

    def stream_forward(self, x: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]:
        """The head's output at every step ``(T, B, 2)`` from a carried state."""
        h, state = self.rnn.stream_forward(x, state)
        return self.head(h), state

    def stream_hook(self) -> StreamHook:
        """The fast stream step: the value straight into the stack, the head on its output."""
        head = self.head.params

        def decode(h: np.ndarray) -> np.ndarray:
            out = h @ head["weight"].T
            out += head["bias"]
            return out

        return StreamHook(self.rnn, decode=decode)

    @staticmethod
    def gaussian(x: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mean and variance of the next value from the input ``x (..., 1)`` and the head's
        output ``(..., 2)``."""
        mean = x[..., 0] + out[..., 0]
        var = np.exp(np.clip(out[..., 1], LOGVAR_MIN, LOGVAR_MAX))
        return mean, var

    # -- training ----------------------------------------------------------------------------
    def forward_train(self, x: np.ndarray):
        """``(mean, var), backward`` for inputs ``(T, B, 1)``; ``backward(dmean, dvar)``."""
        h, _, rnn_backward = self.rnn.forward_train(x)  # (T, B, H)
        out, head_backward = self.head.forward_train(h)  # (T, B, 2)
        mean, var = self.gaussian(x, out)
        s = out[..., 1]
        inside = (s > LOGVAR_MIN) & (s < LOGVAR_MAX)  # the clip passes no gradient outside

        def backward(dmean: np.ndarray, dvar: np.ndarray) -> None:
            dout = np.empty_like(out)
            dout[..., 0] = dmean  # mean = x + d
            dout[..., 1] = dvar * var * inside  # var = exp(s): d var / d s = var
            rnn_backward(head_backward(dout))

        return (mean, var), backward
