"""`Recurrent`: stacked, optionally bidirectional recurrent layers over one cell type.

Composition: a layer is one or two *directions*, each the sequence loop of one cell over time
(`rnnkit.cells.sequence`); a stack feeds each layer's outputs (directions concatenated, dropout
in training) to the next. The public classes `RNN`, `LSTM` and `GRU` are thin fronts on this.

Parameters carry PyTorch's names, shapes and gate order (``weight_ih_l0``, ``bias_hh_l1_reverse``
...), so a PyTorch state dict loads as is.

After every backward, ``grad_norms`` holds the norm of the gradient reaching each hidden state:
an array of shape ``(num_layers * num_directions, T)``, rows ordered like ``h_n`` (layer 0
forward, layer 0 reverse, layer 1 forward, ...), column ``t`` the Frobenius norm over the batch
of dL/dh_t. It is how vanishing and exploding gradients are seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cells import CELLS, CellSpec
from ..cells.sequence import SequenceCache, Weights, sequence_backward, sequence_forward
from ..errors import InputError
from .checks import (
    as_float_array,
    check_finite,
    check_lengths,
    check_shape,
    positive_int,
    resolve_dtype,
)
from .module import Module


@dataclass(frozen=True)
class RecurrentConfig:
    """Everything that rebuilds a recurrent stack (its weights come from the state dict)."""

    mode: str  # RNN_TANH, RNN_RELU, LSTM, GRU
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    dtype: str = "float32"


def reverse_index(lengths: np.ndarray | None, T: int, B: int) -> np.ndarray:
    """Time index ``(T, B)`` that reverses each sequence within its own length.

    Steps past a sequence's length stay where they are, so the reversed sequence starts at its
    own last step, as PyTorch's packed sequences do. The map is its own inverse.
    """
    t = np.arange(T)[:, None]
    if lengths is None:
        return np.broadcast_to(T - 1 - t, (T, B))
    return np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)


def gather_time(a: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``out[t, b] = a[index[t, b], b]`` for ``a`` of shape (T, B, ...)."""
    return a[index, np.arange(a.shape[1])[None, :]]


class Recurrent(Module):
    """A stack of ``num_layers`` recurrent layers of one cell type, one or two directions each."""

    config_class = RecurrentConfig

    def __init__(
        self,
        mode: str,
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
        super().__init__()
        name = type(self).__name__
        if mode not in CELLS:
            raise InputError(f"{name}: unknown mode {mode!r}; expected one of {sorted(CELLS)}")
        if not 0.0 <= float(dropout) < 1.0:
            raise InputError(f"{name}: dropout must lie in [0, 1), got {dropout!r}")
        self.cell: CellSpec = CELLS[mode]
        self.input_size = positive_int(name, "input_size", input_size)
        self.hidden_size = positive_int(name, "hidden_size", hidden_size)
        self.num_layers = positive_int(name, "num_layers", num_layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.dtype = resolve_dtype(name, dtype)
        self.num_directions = 2 if self.bidirectional else 1
        seeds = np.random.SeedSequence(seed).spawn(2)
        self._dropout_rng = np.random.default_rng(seeds[1])
        self._init_params(np.random.default_rng(seeds[0]))
        self.grad_norms: np.ndarray | None = None

    # -- parameters -------------------------------------------------------------------------
    def _suffixes(self) -> list[str]:
        """Key suffix of each (layer, direction), in h_n order."""
        dirs = ["", "_reverse"][: self.num_directions]
        return [f"l{k}{d}" for k in range(self.num_layers) for d in dirs]

    def _init_params(self, rng: np.random.Generator) -> None:
        """PyTorch's initialisation: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))."""
        H, G = self.hidden_size, self.cell.gates
        bound = 1.0 / np.sqrt(H)
        for k, sfx in enumerate(self._suffixes()):
            layer = k // self.num_directions
            F = self.input_size if layer == 0 else H * self.num_directions
            shapes: dict[str, tuple[int, ...]] = {"weight_ih": (G * H, F), "weight_hh": (G * H, H)}
            if self.bias:
                shapes.update({"bias_ih": (G * H,), "bias_hh": (G * H,)})
            for key, shape in shapes.items():
                value = rng.uniform(-bound, bound, size=shape).astype(self.dtype)
                self._add_param(f"{key}_{sfx}", value)

    def _weights(self, sfx: str, table: dict[str, np.ndarray]) -> Weights:
        return Weights(
            table[f"weight_ih_{sfx}"],
            table[f"weight_hh_{sfx}"],
            table.get(f"bias_ih_{sfx}"),
            table.get(f"bias_hh_{sfx}"),
        )

    @classmethod
    def from_config(cls, config: Any) -> Recurrent:
        return cls(**vars(config))

    @property
    def config(self) -> RecurrentConfig:
        return RecurrentConfig(
            self.cell.name,
            self.input_size,
            self.hidden_size,
            self.num_layers,
            self.bias,
            self.batch_first,
            self.dropout,
            self.bidirectional,
            self.dtype.name,
        )

    # -- state ------------------------------------------------------------------------------
    @property
    def is_lstm(self) -> bool:
        return self.cell.carry_size == 2

    def initial_state(self, batch: int) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Zeros shaped like ``h_n`` (``(h_n, c_n)`` for an LSTM) for ``batch`` sequences."""
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        h = np.zeros(shape, dtype=self.dtype)
        return (h, h.copy()) if self.is_lstm else h

    def _state_parts(self, state: Any, batch: int) -> list[np.ndarray]:
        """Validate a user's state; return it as a list of (L*D, B, H) arrays (h, and c)."""
        name = type(self).__name__
        parts = state if self.is_lstm else (state,)
        if self.is_lstm and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise InputError(
                f"{name}: expected state as a tuple (h_0, c_0), got {type(state).__name__}"
            )
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        out = []
        for label, part in zip(("h_0", "c_0"), parts, strict=False):  # c_0 only for LSTM
            arr = as_float_array(name, label, part, self.dtype)
            check_shape(name, label, arr, shape, ("L*D", "B", "H"))
            out.append(arr)
        return out

    def _parts_or_zeros(self, state: Any, batch: int, unbatched: bool) -> list[np.ndarray]:
        """A state (or its gradient) as validated (L*D, B, H) parts; zeros when None."""
        if state is None:
            return [
                np.zeros(
                    (self.num_layers * self.num_directions, batch, self.hidden_size), self.dtype
                )
                for _ in range(self.cell.carry_size)
            ]
        if unbatched:  # (L*D, H) -> (L*D, 1, H)
            if self.is_lstm and isinstance(state, (tuple, list)):
                state = tuple(np.asarray(s)[:, None, :] for s in state)
            elif not self.is_lstm:
                state = np.asarray(state)[:, None, :]
        return self._state_parts(state, batch)

    # -- the forward ------------------------------------------------------------------------
    def _prepare(self, x: Any, state: Any, lengths: Any):
        """Validate inputs; return time-major x (T, B, F), carries, lengths, unbatched flag."""
        name = type(self).__name__
        x = as_float_array(name, "input", x, self.dtype)
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        labels = ("B", "T", str(self.input_size)) if self.batch_first else ("T", "B", "F")
        check_shape(name, "input", x, (None, None, self.input_size), labels)
        if self.batch_first and not unbatched:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        T, B, _ = x.shape
        if T == 0 or B == 0:
            raise InputError(f"{name}: input has no steps or no sequences, shape {tuple(x.shape)}")
        check_finite(name, "input", x)
        parts = self._parts_or_zeros(state, B, unbatched)
        carries = [tuple(p[k] for p in parts) for k in range(parts[0].shape[0])]
        lens = None if lengths is None else check_lengths(name, lengths, B, T)
        if lens is not None and np.all(lens == T):
            lens = None  # every sequence is full length: no masking needed
        return x, carries, lens, unbatched

    def _run(self, x, carries, lens, train: bool):
        """The stack's forward in time-major layout; returns y, final carries, backward data."""
        T, B, _ = x.shape
        mask = None if lens is None else (np.arange(T)[:, None] < lens[None, :])[:, :, None]
        rev = reverse_index(lens, T, B)
        finals: list = []
        tape: list[tuple[list[SequenceCache | None], np.ndarray | None]] = []  # per layer
        inp = x
        for layer in range(self.num_layers):
            outs, caches = [], []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                w = self._weights(self._suffixes()[k], self.params)
                xin = inp if d == 0 else gather_time(inp, rev)
                y, carry, cache = sequence_forward(self.cell, xin, carries[k], w, mask, train)
                outs.append(y if d == 0 else gather_time(y, rev))
                finals.append(carry)
                caches.append(cache)
            out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)  # (T, B, D*H)
            drop = None
            if train and self.dropout > 0 and layer < self.num_layers - 1:
                keep = 1.0 - self.dropout
                drop = (self._dropout_rng.random(out.shape) < keep).astype(self.dtype) / keep
                out = out * drop
            tape.append((caches, drop))
            inp = out
        return inp, finals, (tape, rev)

    def _output(self, y: np.ndarray, finals: list, unbatched: bool):
        state_parts = [np.stack([c[i] for c in finals]) for i in range(self.cell.carry_size)]
        if unbatched:
            y = y[:, 0]
            state_parts = [s[:, 0] for s in state_parts]
        elif self.batch_first:
            y = np.ascontiguousarray(y.transpose(1, 0, 2))
        state = tuple(state_parts) if self.is_lstm else state_parts[0]
        return y, state

    def __call__(self, x, state=None, lengths=None):
        """Inference: ``y, state = layer(x, state=None, lengths=None)``; no dropout."""
        x, carries, lens, unbatched = self._prepare(x, state, lengths)
        y, finals, _ = self._run(x, carries, lens, train=False)
        return self._output(y, finals, unbatched)

    def forward_train(self, x, state=None, lengths=None):
        """Training forward: ``y, state, backward``; then ``dx, dstate = backward(dy, dstate)``.

        Dropout between layers is applied here (and only here). Parameter gradients accumulate
        in ``self.grads``; ``self.grad_norms`` is filled by the backward.
        """
        x, carries, lens, unbatched = self._prepare(x, state, lengths)
        y, finals, (tape, rev) = self._run(x, carries, lens, train=True)
        shape_y = y.shape
        out = self._output(y, finals, unbatched)

        def backward(dy, dstate=None):
            return self._backward(dy, dstate, tape, rev, shape_y, unbatched)

        return out[0], out[1], backward

    # -- the backward -----------------------------------------------------------------------
    def _backward(self, dy, dstate, tape, rev, shape_y, unbatched):
        name = type(self).__name__
        dy = as_float_array(name, "dy", dy, self.dtype)
        if unbatched:
            dy = dy[:, None, :]
        elif self.batch_first:
            dy = dy.transpose(1, 0, 2)
        T, B, _ = shape_y
        check_shape(name, "dy", dy, shape_y, ("T", "B", "D*H"))
        parts = self._parts_or_zeros(dstate, B, unbatched)
        H, D = self.hidden_size, self.num_directions
        norms = np.zeros((self.num_layers * D, T))
        dcarry0: list = [None] * (self.num_layers * D)
        sfx = self._suffixes()
        for layer in range(self.num_layers - 1, -1, -1):
            caches, drop = tape[layer]
            if drop is not None:
                dy = dy * drop  # backprop through the dropout mask
            dx = None
            for d in range(D):
                k = layer * D + d
                cache = caches[d]
                dyd = dy[:, :, d * H : (d + 1) * H]
                if d == 1:
                    dyd = gather_time(dyd, rev)
                dcarry = tuple(p[k] for p in parts)
                w = self._weights(sfx[k], self.params)
                g = self._weights(sfx[k], self.grads)
                dxd, dcarry0[k], sq = sequence_backward(self.cell, dyd, dcarry, cache, w, g)
                if d == 1:  # back from the reverse pass's own order to input time
                    dxd, sq = gather_time(dxd, rev), gather_time(sq, rev)
                norms[k] = np.sqrt(sq.sum(axis=1))
                dx = dxd if dx is None else dx + dxd
            dy = dx
        self.grad_norms = norms
        dparts = [np.stack([c[i] for c in dcarry0]) for i in range(self.cell.carry_size)]
        if unbatched:
            dy = dy[:, 0]
            dparts = [p[:, 0] for p in dparts]
        elif self.batch_first:
            dy = np.ascontiguousarray(dy.transpose(1, 0, 2))
        return dy, (tuple(dparts) if self.is_lstm else dparts[0])
