"""`NextValueModel`: a recurrent stack that reads a series one value at a time and predicts a
Gaussian for the next value.

    h_t = Recurrent(x_1..x_t)                 x_t: the (normalised) value at step t, (T, B, 1)
    [d_t, s_t] = W h_t + b                     the head: two numbers per step
    mean_{t+1} = x_t + d_t                     predicted as a change from the last value
    var_{t+1}  = exp(clip(s_t, LOGVAR_MIN, LOGVAR_MAX))

**Members** (``members = K > 1``): K such networks, each of ``hidden_size`` units and its own
seed, held as one stack of ``K * hidden_size`` units whose weights are block-diagonal (member k
reads only its own units; `mask_grads` keeps the blocks apart while training), and one head of
``2K`` outputs ``[d_1..d_K, s_1..s_K]``. Each member is trained on its own Gaussian NLL (a deep
ensemble, Lakshminarayanan et al. 2017); the prediction is the moment-matched mixture:

    mean = x + mean_k d_k,     var = mean_k var_k + mean_k (d_k - mean_j d_j)^2

One stack of 3 x 16 units steps and trains faster than three of 16 (one matrix product instead
of three), and the pool holds one network as before.

Its stream output is the head's ``2K`` numbers; `NextValueModel.gaussian` turns them (with the
input) into the mean and the variance. `forward_train` returns the Gaussian NLL's gradient path,
one mean and variance per member.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import Module
from ..layers.module import StreamHook
from .stack import recurrent_with_head

LOGVAR_MIN, LOGVAR_MAX = -9.0, 6.0  # a standard deviation between 0.011 and 20 (normalised)


@dataclass(frozen=True)
class NextValueConfig:
    cell: str
    hidden_size: int
    num_layers: int = 1
    dtype: str = "float64"
    input_size: int = 1
    members: int = 1


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
        members: int = 1,
    ) -> None:
        super().__init__()
        if not isinstance(members, (int, np.integer)) or members < 1:
            raise InputError(f"NextValueModel: members must be a positive integer, got {members!r}")
        self.cell = cell
        self.members = int(members)
        K = self.members
        # member 0 from ``seed`` itself (K = 1 is the single network), the others from its spawn
        spawned = np.random.SeedSequence(seed).spawn(K)
        seeds = [seed] + [int(ss.generate_state(1)[0]) for ss in spawned[1:]]
        parts = [
            recurrent_with_head(
                "NextValueModel", cell, input_size, hidden_size, 2, num_layers, s, dtype
            )
            for s in seeds
        ]
        if K == 1:
            self.rnn, self.head = parts[0]
        else:
            self.rnn, self.head = recurrent_with_head(
                "NextValueModel", cell, input_size, K * hidden_size, 2 * K, num_layers, seed, dtype
            )
            self._join(parts, hidden_size)
        self.children = {"rnn": self.rnn, "head": self.head}

    def _join(self, parts: list, hidden: int) -> None:
        """The members' weights into the blocks of the one stack and head (zeros elsewhere)."""
        K = self.members
        for key, value in self.rnn.params.items():
            value[...] = 0.0
            gates = value.shape[0] // (K * hidden)
            for k, (rnn, _) in enumerate(parts):
                own = rnn.params[key]
                for g in range(gates):
                    rows = slice(g * K * hidden + k * hidden, g * K * hidden + (k + 1) * hidden)
                    own_rows = own[g * hidden : (g + 1) * hidden]
                    if value.ndim == 1:
                        value[rows] = own_rows
                    elif key.startswith("weight_ih") and key.endswith("l0"):
                        value[rows] = own_rows  # every member reads the input
                    else:
                        value[rows, k * hidden : (k + 1) * hidden] = own_rows
        weight, bias = self.head.params["weight"], self.head.params["bias"]
        weight[...] = 0.0
        for k, (_, head) in enumerate(parts):
            cols = slice(k * hidden, (k + 1) * hidden)
            for j, row in enumerate((k, K + k)):  # d_k, s_k
                weight[row, cols] = head.params["weight"][j]
                bias[row] = head.params["bias"][j]

    def block_masks(self) -> dict[str, np.ndarray]:
        """1 inside the members' blocks, 0 across them, for each weight that mixes units."""
        K = self.members
        hidden = self.rnn.hidden_size // K
        own = np.kron(np.eye(K), np.ones((hidden, hidden)))  # (K h, K h): unit reads unit
        masks = {}
        for key, value in self.rnn.params.items():
            if value.ndim == 2 and not (key.startswith("weight_ih") and key.endswith("l0")):
                masks[key] = np.tile(own, (value.shape[0] // (K * hidden), 1))
        head = np.kron(np.eye(K), np.ones((1, hidden)))  # (K, K h)
        masks["head.weight"] = np.concatenate([head, head])
        return masks

    def mask_grads(self, masks: dict[str, np.ndarray]) -> None:
        """Zero the gradients across members (`block_masks`), so the blocks stay apart."""
        for key, mask in masks.items():
            if key == "head.weight":
                self.head.grads["weight"] *= mask
            else:
                self.rnn.grads[key] *= mask

    @property
    def config(self) -> NextValueConfig:
        return NextValueConfig(
            self.cell,
            self.rnn.hidden_size // self.members,
            self.rnn.num_layers,
            self.rnn.dtype.name,
            self.rnn.input_size,
            self.members,
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
        output ``(..., 2K)``: the members' mixture, moment-matched (the member itself if K = 1)."""
        K = out.shape[-1] // 2
        d = out[..., :K]
        var_k = np.exp(np.clip(out[..., K:], LOGVAR_MIN, LOGVAR_MAX))
        if K == 1:
            return x[..., 0] + d[..., 0], var_k[..., 0]
        step = d.mean(axis=-1)
        spread = ((d - step[..., None]) ** 2).mean(axis=-1)
        return x[..., 0] + step, var_k.mean(axis=-1) + spread

    # -- training ----------------------------------------------------------------------------
    def forward_train(self, x: np.ndarray):
        """``(mean, var), backward`` for inputs ``(T, B, 1)``: each member's ``(T, B, K)``;
        ``backward(dmean, dvar)``. Call `mask_grads` after it when K > 1."""
        K = self.members
        h, _, rnn_backward = self.rnn.forward_train(x)  # (T, B, K H)
        out, head_backward = self.head.forward_train(h)  # (T, B, 2K)
        mean = x[..., :1] + out[..., :K]  # (T, B, K)
        s = out[..., K:]
        var = np.exp(np.clip(s, LOGVAR_MIN, LOGVAR_MAX))
        inside = (s > LOGVAR_MIN) & (s < LOGVAR_MAX)  # the clip passes no gradient outside

        def backward(dmean: np.ndarray, dvar: np.ndarray) -> None:
            dout = np.empty_like(out)
            dout[..., :K] = dmean  # mean = x + d
            dout[..., K:] = dvar * var * inside  # var = exp(s): d var / d s = var
            rnn_backward(head_backward(dout))

        return (mean, var), backward
