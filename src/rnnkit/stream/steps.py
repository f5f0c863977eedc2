"""Step plans: one step of one stream (or of a batch of streams) through a unidirectional
recurrent stack, fast.

The streaming hot path. A `Stream` of a single stream calls ``plan.step(x, state)`` instead of
the general forward: per layer, one fused kernel call (the cell's ``kernels.step``,
`rnnkit.kernels.step`) does both matrix-vector products and the gate arithmetic, from the
weights as they are stored (float, int8 or bfloat16); large layers split their products between
the cores (`rnnkit.engine.plan.split_stream_layer`). A model shows its stack and how inputs reach
it through its `StreamHook` (`Module.stream_hook`); a bare `Recurrent` is its own stack.

The plan holds references to the model's own arrays, so it follows in-place updates (optimizer
steps, `load_state_dict`). It trusts its caller for shapes and returns None when it cannot take
an input (wrong shape, NaN), so that the general path reports the error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.plan import Plan, plan_stream, split_stream_layer, weight_format
from ..kernels.step import split_step
from ..layers.module import StreamHook
from ..layers.recurrent import Recurrent


def _stored(w: Any) -> tuple[np.ndarray, np.ndarray]:
    """The array a kernel reads for a weight, and its row scales (int8 only)."""
    q = getattr(w, "q", None)
    if q is None:
        return np.ascontiguousarray(w), np.empty(0, np.float32)
    return q, getattr(w, "scale", np.empty(0, np.float32))


def _through(encode: Any, run: Any, decode: Any, x: Any, state: Any) -> Any:
    """``run`` on ``x`` brought in by the model's ``encode`` and its output taken out by
    ``decode`` (`StreamHook`); None where either side cannot take it."""
    if encode is not None:
        x = encode(x)
        if x is None:
            return None
    done = run(x, state)
    if done is None or decode is None:
        return done
    return decode(done[0]), done[1]


def hook_of(model: Any) -> StreamHook | None:
    """The model's `StreamHook`, a bare unidirectional `Recurrent`'s own, or None."""
    if hasattr(model, "stream_hook"):
        return model.stream_hook()
    if isinstance(model, Recurrent):
        return StreamHook(model)
    return None


def build_plan(model: Any, paced: bool = False) -> StepPlan | None:
    """The step plan of ``model``, or None when it has none (then `Stream` takes the general
    path, one step through the sequence forward); ``paced``: no layer split between the cores
    (`split_stream_layer`)."""
    hook = hook_of(model)
    if hook is None or not isinstance(hook.core, Recurrent) or hook.core.bidirectional:
        return None
    return StepPlan(hook, paced)


class StepPlan:
    """Steps of a model's unidirectional `Recurrent` stack on fused kernels."""

    def __init__(self, hook: StreamHook, paced: bool = False) -> None:
        layer: Recurrent = hook.core
        self.paced = paced
        self.layer, self.hook = layer, hook
        self.cell = layer.cell
        # the layer's dtype: quantized weights are widened as they are read, in float64 for a
        # float64 model, which keeps its state and outputs in float64 like the general path
        self.dtype = np.dtype(layer.dtype)
        H, G = layer.hidden_size, layer.cell.gates
        zeros = np.zeros(G * H, self.dtype)
        self.weights = []
        self.split: list[bool] = []  # per layer: products on both cores
        formats = []
        for sfx in layer._suffixes():
            p = layer.params
            formats.append(weight_format(p[f"weight_hh_{sfx}"], self.dtype))
            W_ih, s_ih = _stored(p[f"weight_ih_{sfx}"])
            W_hh, s_hh = _stored(p[f"weight_hh_{sfx}"])
            b_ih, b_hh = p.get(f"bias_ih_{sfx}", zeros), p.get(f"bias_hh_{sfx}", zeros)
            self.weights.append((W_ih, s_ih, W_hh, s_hh, b_ih, b_hh))
            self.split.append(split_stream_layer(W_ih, W_hh, paced))
        self.formats = formats
        self.xw = np.empty((2, G * H), self.dtype)  # scratch: the two products
        self.lstm = layer.cell.has_cell_state
        self.depth = len(self.weights)
        # one fresh array per step holds every layer's new state (`kernels.step`)
        self.new_shape = ((2 if self.lstm else 1) * self.depth, 1, H)
        self.x_shape = (layer.input_size,)
        self.kernel = layer.cell.kernels.step  # one layer's step, one call
        self.code = layer.cell.kernels.code  # the cell, for `split_step`
        # batches of streams (`step_many`): plain float weights only; quantized ones go through
        # the general path, which widens them once per call
        self.batchable = all(f == "float" for f in formats)
        if hook.encode is None and hook.decode is None:  # a bare stack: no wrapper per step
            self.step, self.step_many = self._step, self._step_many  # type: ignore[method-assign]

    def plan(self, batch: int | None = None) -> Plan:
        """The planner's account of a step of one stream (``batch`` None) or of ``batch``."""
        return plan_stream(self.split, self.formats, batch, self.paced)

    def step(self, x: Any, state: Any | None) -> tuple[np.ndarray, Any] | None:
        """``(y, new_state)`` for one input of one stream and a batch-1 state (None: zeros), or
        None."""
        return _through(self.hook.encode, self._step, self.hook.decode, x, state)

    def _step(self, x: Any, state: Any | None) -> tuple[np.ndarray, Any] | None:
        if type(x) is not np.ndarray or x.dtype != self.dtype:
            try:
                x = np.asarray(x, dtype=self.dtype)
            except (TypeError, ValueError):
                return None
        if x.shape != self.x_shape:
            return None
        carry: Any = self.layer.initial_state(1) if state is None else state
        lstm = self.lstm
        if (carry[0] if lstm else carry).shape[1] != 1:
            return None  # a batch of streams: the general path (or `step_many`)
        new = np.empty(self.new_shape, self.dtype)  # fresh: states handed out stay put
        y = np.empty(self.new_shape[2], self.dtype)  # its own array: holds nothing else
        xw, L, kernel = self.xw, self.depth, self.kernel
        h, c = carry if lstm else (carry, carry)  # (c: read by the LSTM only)
        for k, (W_ih, s_ih, W_hh, s_hh, b_ih, b_hh) in enumerate(self.weights):
            if self.split[k]:
                args = (x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, h, c, new, y, k, xw, self.code)
                ok = split_step(*args)
            else:
                ok = kernel(x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, h, c, new, y, k, xw)
            if not ok:
                return None
        if lstm:
            return y, (new[:L], new[L:])
        return y, new

    def step_many(self, x: Any, state: Any | None) -> tuple[np.ndarray, Any] | None:
        """``(y (B, ...), new_state)`` for one step of B streams, or None."""
        return _through(self.hook.encode_many, self._step_many, self.hook.decode, x, state)

    def _step_many(self, x: Any, state: Any | None) -> tuple[np.ndarray, Any] | None:
        if not self.batchable:
            return None
        try:
            x = np.asarray(x, dtype=self.dtype)
        except (TypeError, ValueError):
            return None
        if x.ndim != 2 or x.shape[1] != self.x_shape[0] or not np.isfinite(x).all():
            return None
        B = x.shape[0]
        carry: Any = self.layer.initial_state(B) if state is None else state
        lstm = self.lstm
        h_old: np.ndarray = carry[0] if lstm else carry
        if h_old.shape != (len(self.weights), B, self.layer.hidden_size):
            return None
        h_new = np.empty_like(h_old)
        c_old = carry[1] if lstm else None
        c_new = np.empty_like(h_old) if lstm else None
        dt, H, GH = self.dtype, self.layer.hidden_size, self.xw.shape[1]
        hh, acts = np.empty((B, GH), dt), np.empty((B, GH), dt)
        y, m = np.empty((B, H), dt), np.ones(B, dt)
        extra = np.empty((B, H), dt) if self.cell.kernels.keeps_extra else None
        rows, inp = self.cell.kernels.rows, x
        for k, (W_ih, _, W_hh, _, b_ih, b_hh) in enumerate(self.weights):
            xi = inp @ W_ih.T  # (B, G*H)
            xi += b_ih
            np.matmul(h_old[k], W_hh.T, out=hh)
            c_prev = c_old[k] if c_old is not None else None
            c = c_new[k] if c_new is not None else None
            # the batch loop's own gate kernel (the cell's ``rows``), one step long
            rows(xi, hh, b_hh, h_old[k], c_prev, m, h_new[k], c, y, acts, extra)
            inp = h_new[k]
        # y holds the top layer's output (every stream runs: m is 1), in a fresh array
        return y, ((h_new, c_new) if lstm else h_new)
