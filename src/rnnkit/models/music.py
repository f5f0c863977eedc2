"""`PianoRollNet`: a recurrent model of polyphonic music, one piano-roll step at a time.

    h_t = Recurrent(v_1 .. v_t)                   v_t: the 88 keys at step t, 0/1  (T, B, K)
    d_t = Dropout(h_t)

and the distribution of the next step's keys ``v_{t+1}`` given ``d_t``, one of two outputs:

- ``"sigmoid"``: independent keys, ``p(v_{t+1,k} = 1) = sigmoid(W d_t + b)_k`` (the setting of
  Chung et al. 2014's table);
- ``"nade"``: the keys jointly, one after another (`rnnkit.models.nade.Nade`), its biases
  ``b_t = W_b d_t + b_b`` and ``c_t = W_c d_t + b_c`` given by the recurrent state (RNN-NADE).

In both, ``-log p(v_{t+1} | v_1..v_t)`` is the binary cross-entropy of per-key logits against
``v_{t+1}``: for the sigmoid output the logits do not depend on ``v_{t+1}``; for the NADE each
key's logit depends on the keys below it. `forward_train` takes the targets for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import GRU, LSTM, RNN, Dropout, Linear, Module
from .nade import Nade, sigmoid

RECURRENT = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
OUTPUTS = ("sigmoid", "nade")


@dataclass(frozen=True)
class PianoRollConfig:
    cell: str = "gru"
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0
    output: str = "sigmoid"
    nade_hidden: int = 64
    keys: int = 88
    dtype: str = "float32"


class PianoRollNet(Module):
    """``(T, B, K)`` piano-roll steps in; per-key logits of the next step out."""

    config_class = PianoRollConfig

    def __init__(
        self,
        cell: str = "gru",
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        output: str = "sigmoid",
        nade_hidden: int = 64,
        keys: int = 88,
        dtype: str = "float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if cell not in RECURRENT:
            raise InputError(f"PianoRollNet: cell must be one of {list(RECURRENT)}, got {cell!r}")
        if output not in OUTPUTS:
            raise InputError(f"PianoRollNet: output must be one of {OUTPUTS}, got {output!r}")
        seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(5)]
        self.cell, self.output, self.keys = cell, output, keys
        self.dropout, self.nade_hidden = dropout, nade_hidden
        self.rnn = RECURRENT[cell](
            keys,
            hidden_size,
            num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            seed=seeds[0],
            dtype=dtype,
        )
        self.drop = Dropout(dropout, seed=seeds[1])
        self.head = Linear(hidden_size, keys, seed=seeds[2], dtype=dtype)
        self.children = {"rnn": self.rnn, "drop": self.drop, "head": self.head}
        if output == "nade":
            self.cond = Linear(hidden_size, nade_hidden, seed=seeds[3], dtype=dtype)
            self.nade = Nade(keys, nade_hidden, seed=seeds[4], dtype=dtype)
            self.children |= {"cond": self.cond, "nade": self.nade}

    @property
    def config(self) -> PianoRollConfig:
        return PianoRollConfig(
            self.cell,
            self.rnn.hidden_size,
            self.rnn.num_layers,
            self.dropout,
            self.output,
            self.nade_hidden,
            self.keys,
            self.rnn.dtype.name,
        )

    # -- training and scoring --------------------------------------------------------------
    def forward_train(self, x: np.ndarray, targets: np.ndarray, lengths: Any = None):
        """Logits ``(T, B, K)`` of ``targets`` (the next steps of ``x``), and ``backward``."""
        h, _, rnn_backward = self.rnn.forward_train(x, lengths=lengths)  # (T, B, H)
        d, drop_backward = self.drop.forward_train(h)
        if self.output == "sigmoid":
            z, head_backward = self.head.forward_train(d)  # (T, B, K)

            def backward(dz: np.ndarray) -> None:
                rnn_backward(drop_backward(head_backward(dz)))

            return z, backward
        T, B, _ = x.shape
        b, b_backward = self.head.forward_train(d)  # (T, B, K)
        c, c_backward = self.cond.forward_train(d)  # (T, B, Hn)
        flat = targets.reshape(T * B, self.keys).astype(b.dtype)
        z, nade_backward = self.nade.forward_train(flat, b.reshape(T * B, -1), c.reshape(T * B, -1))

        def nade_chain(dz: np.ndarray) -> None:
            db, dc = nade_backward(dz.reshape(T * B, self.keys))
            dd = b_backward(db.reshape(T, B, -1)) + c_backward(dc.reshape(T, B, -1))
            rnn_backward(drop_backward(dd))

        return z.reshape(T, B, self.keys), nade_chain

    def logits(self, x: np.ndarray, targets: np.ndarray, lengths: Any = None) -> np.ndarray:
        """Inference (no dropout): the logits of ``targets`` given ``x``, ``(T, B, K)``."""
        h, _ = self.rnn(x, lengths=lengths)
        return self._logits(h, targets)

    def _logits(self, h: np.ndarray, targets: np.ndarray) -> np.ndarray:
        b = self.head(h)
        if self.output == "sigmoid":
            return b
        shape = b.shape
        c = self.cond(h).reshape(-1, self.nade_hidden)
        flat = targets.reshape(-1, self.keys).astype(b.dtype)
        return self.nade.logits(flat, b.reshape(-1, self.keys), c).reshape(shape)

    # -- generation ------------------------------------------------------------------------
    def initial_state(self, batch: int) -> Any:
        return self.rnn.initial_state(batch)

    def read(self, x: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]:
        """The top hidden state after each step of ``x`` (T, B, K), from a carried state."""
        return self.rnn.stream_forward(x.astype(self.rnn.dtype), state)

    def sample(self, h: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
        """The next step's keys ``(B, K)`` (uint8) given the hidden state ``h`` (B, H)."""
        b = self.head(h).astype(np.float64)
        if self.output == "nade":
            return self.nade.sample(b, self.cond(h).astype(np.float64), temperature, rng)
        if temperature == 0:
            return (b > 0).astype(np.uint8)
        return (rng.random(b.shape) < sigmoid(b / temperature)).astype(np.uint8)
