"""`RNNCell`, `LSTMCell`, `GRUCell`: one time step, PyTorch's arguments and state dict keys.

``h = cell(x, state=None)`` (LSTM: ``(h, c)``) with ``x`` of shape ``(B, F)`` or ``(F,)``.
Training: ``state, backward = cell.forward_train(x, state)``; ``dx, dstate = backward(dstate)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cells import CELLS, CellSpec
from ..engine.sequence import Weights
from ..errors import InputError
from .checks import (
    as_float_array,
    batch_size,
    check_finite,
    check_shape,
    flag,
    positive_int,
    resolve_dtype,
    seed_value,
)
from .module import Module


@dataclass(frozen=True)
class CellConfig:
    mode: str
    input_size: int
    hidden_size: int
    bias: bool = True
    dtype: str = "float32"


class _Cell(Module):
    """One step of one cell type; the subclasses fix the type."""

    config_class = CellConfig

    def __init__(self, mode, input_size, hidden_size, bias=True, seed=None, dtype="float32"):
        super().__init__()
        name = type(self).__name__
        self.cell: CellSpec = CELLS[mode]
        self.input_size = positive_int(name, "input_size", input_size)
        self.hidden_size = positive_int(name, "hidden_size", hidden_size)
        self.bias = flag(name, "bias", bias)
        self.dtype = resolve_dtype(name, dtype)
        rng = np.random.default_rng(seed_value(name, seed))
        G, H, bound = self.cell.gates, self.hidden_size, 1.0 / np.sqrt(self.hidden_size)
        shapes: dict[str, tuple[int, ...]] = {
            "weight_ih": (G * H, self.input_size),
            "weight_hh": (G * H, H),
        }
        if self.bias:
            shapes.update({"bias_ih": (G * H,), "bias_hh": (G * H,)})
        for key, shape in shapes.items():
            self._add_param(key, rng.uniform(-bound, bound, size=shape).astype(self.dtype))

    @property
    def config(self) -> CellConfig:
        return CellConfig(
            self.cell.name, self.input_size, self.hidden_size, self.bias, self.dtype.name
        )

    def initial_state(self, batch: int):
        batch = batch_size(type(self).__name__, batch)
        carry = self.cell.initial_carry(batch, self.hidden_size, self.dtype)
        return carry if self.cell.carry_size == 2 else carry[0]

    def _weights(self, table) -> Weights:
        return Weights(
            table["weight_ih"], table["weight_hh"], table.get("bias_ih"), table.get("bias_hh")
        )

    def _prepare(self, x, state):
        name = type(self).__name__
        x = as_float_array(name, "input", x, self.dtype)
        unbatched = x.ndim == 1
        if unbatched:
            check_shape(name, "input", x, (self.input_size,), ("F",))
        else:
            check_shape(name, "input", x, (None, self.input_size), ("B", "F"))
        check_finite(name, "input", x)  # indices in the user's layout
        if unbatched:
            x = x[None, :]
        B = x.shape[0]
        if state is None:
            carry = self.cell.initial_carry(B, self.hidden_size, self.dtype)
        else:
            parts = state if self.cell.carry_size == 2 else (state,)
            if self.cell.carry_size == 2 and (
                not isinstance(state, (tuple, list)) or len(state) != 2
            ):
                raise InputError(
                    f"{name}: expected state as a tuple (h, c), got {type(state).__name__}"
                )
            carry = []
            for label, part in zip(("h", "c"), parts, strict=False):
                arr = as_float_array(name, label, part, self.dtype)
                if unbatched:
                    check_shape(name, label, arr, (self.hidden_size,), ("H",))
                else:
                    check_shape(name, label, arr, (B, self.hidden_size), ("B", "H"))
                check_finite(name, label, arr)
                carry.append(arr[None, :] if unbatched else arr)
            carry = tuple(carry)
        return x, carry, unbatched

    def _pack(self, carry, unbatched):
        if unbatched:
            carry = tuple(c[0] for c in carry)
        return carry if self.cell.carry_size == 2 else carry[0]

    def _step(self, x, carry):
        w = self._weights(self.params)
        xi = x @ w.W_ih.T  # (B, G*H)
        if w.b_ih is not None:
            xi += w.b_ih
        return self.cell.step_forward(xi, carry, w.W_hh, w.b_hh)

    def __call__(self, x, state=None):
        x, carry, unbatched = self._prepare(x, state)
        new, _ = self._step(x, carry)
        return self._pack(new, unbatched)

    def forward_train(self, x, state=None):
        x, carry, unbatched = self._prepare(x, state)
        new, cache = self._step(x, carry)

        def backward(dstate):
            dparts = dstate if self.cell.carry_size == 2 else (dstate,)
            dcarry = tuple(np.asarray(d, dtype=self.dtype).reshape(x.shape[0], -1) for d in dparts)
            w, g = self._weights(self.params), self._weights(self.grads)
            dxi, dhh, dprev = self.cell.step_backward(dcarry, cache, w.W_hh)
            g.W_ih += dxi.T @ x
            g.W_hh += dhh.T @ carry[0]
            if g.b_ih is not None:
                g.b_ih += dxi.sum(axis=0)
                g.b_hh += dhh.sum(axis=0)
            dx = dxi @ w.W_ih
            return (dx[0] if unbatched else dx), self._pack(dprev, unbatched)

        return self._pack(new, unbatched), backward


class RNNCell(_Cell):
    def __init__(
        self, input_size, hidden_size, bias=True, nonlinearity="tanh", seed=None, dtype="float32"
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise InputError(
                f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearity
        super().__init__(
            "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU",
            input_size,
            hidden_size,
            bias,
            seed,
            dtype,
        )

    @classmethod
    def from_config(cls, config: CellConfig) -> RNNCell:
        nl = "relu" if config.mode == "RNN_RELU" else "tanh"
        return cls(config.input_size, config.hidden_size, config.bias, nl, dtype=config.dtype)


class LSTMCell(_Cell):
    def __init__(self, input_size, hidden_size, bias=True, seed=None, dtype="float32"):
        super().__init__("LSTM", input_size, hidden_size, bias, seed, dtype)

    @classmethod
    def from_config(cls, config: CellConfig) -> LSTMCell:
        return cls(config.input_size, config.hidden_size, config.bias, dtype=config.dtype)


class GRUCell(_Cell):
    def __init__(self, input_size, hidden_size, bias=True, seed=None, dtype="float32"):
        super().__init__("GRU", input_size, hidden_size, bias, seed, dtype)

    @classmethod
    def from_config(cls, config: CellConfig) -> GRUCell:
        return cls(config.input_size, config.hidden_size, config.bias, dtype=config.dtype)
