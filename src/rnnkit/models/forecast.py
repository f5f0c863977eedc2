"""`ForecastNet` and `ForecastEnsemble`: the network behind `rnnkit.Forecaster`.

A recurrent encoder reads the lookback window one patch (one seasonal cycle) per step; a head
maps its last state, beside the last values and the known future features, to the whole
horizon at once (direct multi-step)::

    h_{1..T} = Recurrent(x_{1..T})                 x_j: patch j's values and features  (T, B, F)
    u = [h_T, z]                                   z: last values, future features      (B, Hd + E)
    out = W_2 relu(W_1 u + b_1) + b_2 + W_s u      (B, horizon * K), K outputs per step

The skip ``W_s u`` is a linear forecast of the last values, which can be the seasonal naive
exactly; the MLP learns what the recurrent state adds. `ForecastEnsemble` holds several
members with their own seeds, each trained on its own batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import GRU, LSTM, RNN, Linear
from ..layers.module import Module

RECURRENT = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


@dataclass(frozen=True)
class ForecastNetConfig:
    input_size: int  # features per patch
    extra_size: int  # head inputs besides the recurrent state
    horizon: int
    outputs: int  # per horizon step: 1 (point), 2 (Gaussian mean, variance), Q (quantiles)
    hidden_size: int = 64
    head_size: int = 128
    num_layers: int = 1
    cell: str = "lstm"
    dtype: str = "float32"


class ForecastNet(Module):
    """``out = net(x, z)``: ``x`` ``(T, B, input_size)``, ``z`` ``(B, extra_size)`` ->
    ``(B, horizon, outputs)``."""

    config_class = ForecastNetConfig

    def __init__(
        self,
        input_size: int,
        extra_size: int,
        horizon: int,
        outputs: int,
        hidden_size: int = 64,
        head_size: int = 128,
        num_layers: int = 1,
        cell: str = "lstm",
        dtype: str = "float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if cell not in RECURRENT:
            raise InputError(f"ForecastNet: cell must be one of {list(RECURRENT)}, got {cell!r}")
        self._config = ForecastNetConfig(
            input_size,
            extra_size,
            horizon,
            outputs,
            hidden_size,
            head_size,
            num_layers,
            cell,
            dtype,
        )
        seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(4)]
        width = hidden_size + extra_size
        self.rnn = RECURRENT[cell](input_size, hidden_size, num_layers, seed=seeds[0], dtype=dtype)
        self.hidden = Linear(width, head_size, seed=seeds[1], dtype=dtype)
        self.out = Linear(head_size, horizon * outputs, seed=seeds[2], dtype=dtype)
        self.skip = Linear(width, horizon * outputs, bias=False, seed=seeds[3], dtype=dtype)
        self.skip.params["weight"][...] = 0  # starts as the MLP alone; learns the linear part
        self.children = {"rnn": self.rnn, "hidden": self.hidden, "out": self.out, "skip": self.skip}

    @property
    def config(self) -> ForecastNetConfig:
        return self._config

    @classmethod
    def from_config(cls, config: Any) -> ForecastNet:
        return cls(**vars(config))

    def _shape(self, out: np.ndarray) -> np.ndarray:
        return out.reshape(len(out), self._config.horizon, self._config.outputs)

    def __call__(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        h, _ = self.rnn(x)
        u = np.concatenate([h[-1], z], axis=1)  # (B, Hd + E)
        a = self.hidden(u)
        return self._shape(self.out(np.maximum(a, 0)) + self.skip(u))

    def forward_train(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, Any]:
        h, _, back_rnn = self.rnn.forward_train(x)  # (T, B, Hd)
        u = np.concatenate([h[-1], z], axis=1)
        a, back_hidden = self.hidden.forward_train(u)
        r = np.maximum(a, 0)
        o, back_out = self.out.forward_train(r)
        s, back_skip = self.skip.forward_train(u)

        def backward(dout: np.ndarray) -> None:
            d = dout.reshape(len(dout), -1).astype(o.dtype, copy=False)
            da = back_out(d) * (a > 0)  # through the ReLU
            du = back_hidden(da) + back_skip(d)  # u feeds both the MLP and the skip
            dh = np.zeros_like(h)
            dh[-1] = du[:, : self._config.hidden_size]  # only the last state reaches the head
            back_rnn(dh)

        return self._shape(o + s), backward


@dataclass(frozen=True)
class ForecastEnsembleConfig:
    members: int
    net: dict  # the members' shared `ForecastNetConfig`, as a dict


class ForecastEnsemble(Module):
    """Members ``"0"``, ``"1"``, ... of one `ForecastNetConfig`, each from its own seed."""

    config_class = ForecastEnsembleConfig

    def __init__(self, members: int, net: dict, seed: int | None = None) -> None:
        super().__init__()
        if members < 1:
            raise InputError(f"ForecastEnsemble: expected at least one member, got {members}")
        seeds = np.random.SeedSequence(seed).generate_state(members)
        self._net = dict(net)
        self.children = {
            str(k): ForecastNet(**self._net, seed=int(seeds[k])) for k in range(members)
        }

    @property
    def config(self) -> ForecastEnsembleConfig:
        return ForecastEnsembleConfig(len(self.children), dict(self._net))

    @classmethod
    def from_config(cls, config: Any) -> ForecastEnsemble:
        return cls(config.members, dict(config.net))

    def member(self, k: int) -> ForecastNet:
        net = self.children[str(k)]
        assert isinstance(net, ForecastNet)
        return net

    def __len__(self) -> int:
        return len(self.children)
