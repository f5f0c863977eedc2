"""`RNN`, `LSTM`, `GRU`: PyTorch's constructor arguments and state dicts over `Recurrent`.

>>> import numpy as np, rnnkit
>>> lstm = rnnkit.LSTM(8, 16, num_layers=2, seed=0)
>>> y, (h_n, c_n) = lstm(np.zeros((5, 3, 8), dtype=np.float32))
>>> y.shape, h_n.shape
((5, 3, 16), (2, 3, 16))
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import InputError
from .recurrent import Recurrent, RecurrentConfig


class RNN(Recurrent):
    """Elman RNN, ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (or relu)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        seed: int | None = None,
        dtype: str = "float32",
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise InputError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(
            "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            seed,
            dtype,
        )

    @classmethod
    def from_config(cls, config: RecurrentConfig) -> RNN:
        return cls(
            config.input_size,
            config.hidden_size,
            config.num_layers,
            "relu" if config.mode == "RNN_RELU" else "tanh",
            config.bias,
            config.batch_first,
            config.dropout,
            config.bidirectional,
            dtype=config.dtype,
        )


class _GatedRecurrent(Recurrent):
    """A stack of one gated cell type, fixed by the subclass's ``MODE``."""

    MODE: ClassVar[str]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        seed: int | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__(
            self.MODE,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            seed,
            dtype,
        )

    @classmethod
    def from_config(cls, config: RecurrentConfig) -> _GatedRecurrent:
        return cls(
            config.input_size,
            config.hidden_size,
            config.num_layers,
            config.bias,
            config.batch_first,
            config.dropout,
            config.bidirectional,
            dtype=config.dtype,
        )


class LSTM(_GatedRecurrent):
    """Long short-term memory; state is ``(h, c)``; gate order i, f, g, o as in PyTorch."""

    MODE = "LSTM"


class GRU(_GatedRecurrent):
    """Gated recurrent unit, PyTorch's variant: gate order r, z, n; reset after ``W_hn h``."""

    MODE = "GRU"
