"""`Recurrent`: stacked, optionally bidirectional recurrent layers over one cell type.

Composition: a layer is one or two *directions*, each the sequence loop of one cell over time
(`rnnkit.engine.sequence`, on the path the planner chooses once per call:
`rnnkit.engine.plan`); a stack feeds each layer's outputs (directions concatenated, dropout
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
from ..engine.plan import Plan, plan_sequence
from ..engine.sequence import Weights, sequence_backward, sequence_forward
from ..errors import InputError
from .checks import (
    as_float_array,
    batch_size,
    check_finite,
    check_lengths,
    check_shape,
    flag,
    positive_int,
    probability,
    resolve_dtype,
    seed_value,
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
        if not isinstance(mode, str) or mode not in CELLS:
            raise InputError(f"{name}: unknown mode {mode!r}; expected one of {sorted(CELLS)}")
        self.cell: CellSpec = CELLS[mode]
        self.input_size = positive_int(name, "input_size", input_size)
        self.hidden_size = positive_int(name, "hidden_size", hidden_size)
        self.num_layers = positive_int(name, "num_layers", num_layers)
        self.bias = flag(name, "bias", bias)
        self.batch_first = flag(name, "batch_first", batch_first)
        self.dropout = probability(name, "dropout", dropout)
        self.bidirectional = flag(name, "bidirectional", bidirectional)
        self.dtype = resolve_dtype(name, dtype)
        self.num_directions = 2 if self.bidirectional else 1
        seeds = np.random.SeedSequence(seed_value(name, seed)).spawn(2)
        self.rng = np.random.default_rng(seeds[1])
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
        batch = batch_size(type(self).__name__, batch)
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        h = np.zeros(shape, dtype=self.dtype)
        return (h, h.copy()) if self.is_lstm else h

    def _state_parts(self, state: Any, batch: int, unbatched: bool, what: str) -> list[np.ndarray]:
        """Validate a state (or its gradient) as the user gave it; return (L*D, B, H) parts.

        ``None`` gives zeros. Unbatched calls take ``(L*D, H)`` parts; LSTMs take a pair.
        """
        name = type(self).__name__
        LD = self.num_layers * self.num_directions
        if state is None:
            shape = (LD, batch, self.hidden_size)
            return [np.zeros(shape, self.dtype) for _ in range(self.cell.carry_size)]
        if self.is_lstm and (not isinstance(state, (tuple, list)) or len(state) != 2):
            pair = "(h_0, c_0)" if what == "state" else "(dh_n, dc_n)"
            given = type(state).__name__
            if isinstance(state, (tuple, list)):
                given += f" of length {len(state)}"
            raise InputError(f"{name}: expected {what} as a tuple {pair}, got {given}")
        parts = state if self.is_lstm else (state,)
        labels = ("h_0", "c_0") if what == "state" else ("dh_n", "dc_n")
        out = []
        for label, part in zip(labels, parts, strict=False):  # c only for LSTM
            arr = as_float_array(name, label, part, self.dtype)
            if unbatched:
                check_shape(name, label, arr, (LD, self.hidden_size), ("L*D", "H"))
                arr = arr[:, None, :]
            else:
                check_shape(name, label, arr, (LD, batch, self.hidden_size), ("L*D", "B", "H"))
            check_finite(name, label, arr)
            out.append(arr)
        return out

    # -- the forward ------------------------------------------------------------------------
    def _prepare(self, x: Any, state: Any, lengths: Any):
        """Validate inputs; return time-major x (T, B, F), carries, lengths, unbatched flag."""
        name = type(self).__name__
        x = as_float_array(name, "input", x, self.dtype)
        unbatched = x.ndim == 2
        if unbatched:
            check_shape(name, "input", x, (None, self.input_size), ("T", "F"))
        else:
            labels = ("B", "T", "F") if self.batch_first else ("T", "B", "F")
            check_shape(name, "input", x, (None, None, self.input_size), labels)
        check_finite(name, "input", x)  # indices in the user's layout
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        T, B, _ = x.shape
        if T == 0 or B == 0:
            raise InputError(f"{name}: input has no steps or no sequences, shape {tuple(x.shape)}")
        parts = self._state_parts(state, B, unbatched, "state")
        carries = [tuple(p[k] for p in parts) for k in range(parts[0].shape[0])]
        lens = None if lengths is None else check_lengths(name, lengths, B, T)
        if lens is not None and np.all(lens == T):
            lens = None  # every sequence is full length: no masking needed
        return x, carries, lens, unbatched

    def plan(self, x: np.ndarray, train: bool) -> Plan:
        """The path every direction of every layer takes over time-major ``x`` (T, B, F)."""
        return plan_sequence(self.cell, x, self.params["weight_hh_l0"], train)

    def _run(self, x, carries, lens, train: bool):
        """The stack's forward in time-major layout; returns y, final carries, backward data."""
        T, B, _ = x.shape
        mask = None if lens is None else (np.arange(T)[:, None] < lens[None, :])[:, :, None]
        mask = None if mask is None else mask.astype(self.dtype)  # (T, B, 1), 1 while running
        # the time index that reverses each sequence: for the backward direction only
        rev = reverse_index(lens, T, B) if self.num_directions == 2 else None
        plan = self.plan(x, train)
        back = rev if rev is not None else np.empty((0, 0), np.intp)  # (used with two directions)
        finals: list = []
        tape: list[tuple[list[Any], np.ndarray | None]] = []  # per layer
        inp = x
        for layer in range(self.num_layers):
            outs, caches = [], []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                w = self._weights(self._suffixes()[k], self.params)
                xin = inp if d == 0 else gather_time(inp, back)
                y, carry, cache = sequence_forward(plan, self.cell, xin, carries[k], w, mask, train)
                outs.append(y if d == 0 else gather_time(y, back))
                finals.append(carry)
                caches.append(cache)
            out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)  # (T, B, D*H)
            drop = self._dropout_mask(out.shape, layer, train)
            if drop is not None:
                out = out * drop
            tape.append((caches, drop))
            inp = out
        return inp, finals, (tape, rev)

    def _dropout_mask(self, shape: tuple, layer: int, train: bool) -> np.ndarray | None:
        """The dropout mask on ``layer``'s output (scaled by 1/keep), or None: none drops."""
        if not train or self.dropout == 0 or layer == self.num_layers - 1:
            return None
        keep = 1.0 - self.dropout
        assert self.rng is not None
        return (self.rng.random(shape) < keep).astype(self.dtype) / keep

    def _output(self, y: np.ndarray, finals: list, unbatched: bool):
        if len(finals) == 1:  # copies, as np.stack does, at a fraction of its microseconds
            state_parts = [part[None].copy() for part in finals[0]]
        else:
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

    def stream_forward(self, x: np.ndarray, state: Any = None):
        """Time-major ``(T, B, F)`` in and out whatever ``batch_first`` says (for `Stream`)."""
        if not self.batch_first:
            return self(x, state)
        y, state = self(np.swapaxes(x, 0, 1), state)
        return np.swapaxes(y, 0, 1), state

    def forward_train(self, x, state=None, lengths=None):
        """Training forward: ``y, state, backward``; then ``dx, dstate = backward(dy, dstate)``.

        Dropout between layers is applied here (and only here). Parameter gradients accumulate
        in ``self.grads``; ``self.grad_norms`` is filled by the backward.
        """
        x, carries, lens, unbatched = self._prepare(x, state, lengths)
        y, finals, (tape, rev) = self._run(x, carries, lens, train=True)
        out = self._output(y, finals, unbatched)
        shape_y = out[0].shape  # as the user sees y

        def backward(dy, dstate=None):
            return self._backward(dy, dstate, tape, rev, shape_y, unbatched)

        return out[0], out[1], backward

    # -- the backward -----------------------------------------------------------------------
    def _backward(self, dy, dstate, tape, rev, shape_y, unbatched):
        name = type(self).__name__
        dy = as_float_array(name, "dy", dy, self.dtype)
        check_shape(name, "dy", dy, shape_y, ("?",) * len(shape_y))  # the shape of y
        if unbatched:
            dy = dy[:, None, :]
        elif self.batch_first:
            dy = dy.transpose(1, 0, 2)
        T, B, _ = dy.shape
        parts = self._state_parts(dstate, B, unbatched, "dstate")
        dy, dcarry0, norms = self._backward_layers(dy, parts, tape, rev)
        self.grad_norms = norms
        dparts = [np.stack([c[i] for c in dcarry0]) for i in range(self.cell.carry_size)]
        if unbatched:
            dy = dy[:, 0]
            dparts = [p[:, 0] for p in dparts]
        elif self.batch_first:
            dy = np.ascontiguousarray(dy.transpose(1, 0, 2))
        return dy, (tuple(dparts) if self.is_lstm else dparts[0])

    def _backward_layers(self, dy, parts, tape, rev):
        """BPTT layer after layer, top down."""
        T = dy.shape[0]
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
                dyd = dy[:, :, d * H : (d + 1) * H]
                if d == 1:
                    dyd = gather_time(dyd, rev)
                dcarry = tuple(p[k] for p in parts)
                w = self._weights(sfx[k], self.params)
                g = self._weights(sfx[k], self.grads)
                dxd, dcarry0[k], sq = sequence_backward(self.cell, dyd, dcarry, caches[d], w, g)
                if d == 1:  # back from the reverse pass's own order to input time
                    dxd, sq = gather_time(dxd, rev), gather_time(sq, rev)
                norms[k] = np.sqrt(sq.sum(axis=1))
                dx = dxd if dx is None else dx + dxd
            dy = dx
        return dy, dcarry0, norms
