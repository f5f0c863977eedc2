"""`StepPlan`: one step of one stream through a unidirectional recurrent stack, fast.

The streaming hot path. A `Stream` of a single stream calls ``plan.step(x, state)`` instead of
the general forward: per layer, one fused kernel call (`rnnkit.kernels.step`) does both
matrix-vector products and the gate arithmetic, from the weights as they are stored (float,
int8 or bfloat16). The plan holds references to the model's own arrays, so it follows in-place
updates (optimizer steps, `load_state_dict`). It trusts its caller for shapes and returns None
when it cannot take an input (wrong shape, NaN), so that the general path reports the error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..cells import fused
from ..kernels import step as K
from .recurrent import Recurrent

# The two products of a layer's step are split between the cores (`kernels.step.split_step`)
# from this many multiply-adds per step (measured: 1.3x at an LSTM of 256, 1.8x at 512,
# 1.1-1.3x at 192; slower below 100 000: the parallel region costs about 1.5 us) ...
PARALLEL_MACS = 200_000
# ... or from this many bytes of weights: then each core keeps one of the two matrices in its
# own 512 KiB L2 cache instead of both streaming from L3 (float32 LSTM at 128, 512 KiB: 1.16-1.18x
# in alternating processes; GRU at 128, 384 KiB: 1.06x; LSTM at 96, 288 KiB: 0.99x)
PARALLEL_BYTES = 384 * 1024


def _stored(w: Any) -> tuple[np.ndarray, np.ndarray]:
    """The array a kernel reads for a weight, and its row scales (int8 only)."""
    q = getattr(w, "q", None)
    if q is None:
        return np.ascontiguousarray(w), np.empty(0, np.float32)
    return q, getattr(w, "scale", np.empty(0, np.float32))


def _split(W_ih: np.ndarray, W_hh: np.ndarray) -> bool:
    """Whether a layer's step shares its products between the cores (never for bfloat16)."""
    macs = W_ih.shape[0] * (W_ih.shape[1] + W_hh.shape[1])
    large = macs >= PARALLEL_MACS or W_ih.nbytes + W_hh.nbytes >= PARALLEL_BYTES
    return large and W_ih.dtype != np.uint16


class StepPlan:
    """Batch-1 steps of a `Recurrent` stack (not bidirectional) on fused kernels."""

    def __init__(self, layer: Recurrent) -> None:
        self.layer = layer
        self.mode = layer.cell.name
        # the layer's dtype: quantized weights are widened as they are read, in float64 for a
        # float64 model, which keeps its state and outputs in float64 like the general path
        self.dtype = np.dtype(layer.dtype)
        H, G = layer.hidden_size, layer.cell.gates
        zeros = np.zeros(G * H, self.dtype)
        self.weights = []
        self.split: list[bool] = []  # per layer: products on both cores
        for sfx in layer._suffixes():
            p = layer.params
            W_ih, s_ih = _stored(p[f"weight_ih_{sfx}"])
            W_hh, s_hh = _stored(p[f"weight_hh_{sfx}"])
            b_ih, b_hh = p.get(f"bias_ih_{sfx}", zeros), p.get(f"bias_hh_{sfx}", zeros)
            self.weights.append((W_ih, s_ih, W_hh, s_hh, b_ih, b_hh))
            self.split.append(_split(W_ih, W_hh))
        self.xw = np.empty((2, G * H), self.dtype)  # scratch: the two products
        parts = 2 if self.mode == "LSTM" else 1
        self.depth = len(self.weights)
        # one fresh array per step holds every layer's new state (`kernels.step`)
        self.new_shape = (parts * self.depth, 1, H)
        self.x_shape = (layer.input_size,)
        self.relu = self.mode == "RNN_RELU"
        self.code = K.CELL_CODES[self.mode]  # the cell, for `split_step`
        # batches of streams (`step_many`): plain float weights only; quantized ones go through
        # the general path, which widens them once per call
        self.batchable = all(
            type(w[0]) is np.ndarray and w[0].dtype == self.dtype for w in self.weights
        )

    @staticmethod
    def build(model: Any) -> StepPlan | TokenStepPlan | None:
        """A plan for ``model`` when it is a unidirectional `Recurrent` or a language model
        on one, else None."""
        if getattr(model, "takes_ids", False) and hasattr(model, "rnn"):
            inner = StepPlan.build(model.rnn)
            return TokenStepPlan(model, inner) if isinstance(inner, StepPlan) else None
        if not isinstance(model, Recurrent) or model.bidirectional:
            return None
        if model.cell.name not in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"):
            return None
        return StepPlan(model)

    def step(self, x: Any, state: Any | None) -> tuple[np.ndarray, Any] | None:
        """``(y, new_state)`` for one input ``(F,)`` and a batch-1 state (None: zeros), or None."""
        if type(x) is not np.ndarray or x.dtype != self.dtype:
            try:
                x = np.asarray(x, dtype=self.dtype)
            except (TypeError, ValueError):
                return None
        if x.shape != self.x_shape:
            return None
        carry: Any = self.layer.initial_state(1) if state is None else state
        mode = self.mode
        if (carry[0] if mode == "LSTM" else carry).shape[1] != 1:
            return None  # a batch of streams: the general path (or `step_many`)
        new = np.empty(self.new_shape, self.dtype)  # fresh: states handed out stay put
        y = np.empty(self.new_shape[2], self.dtype)  # its own array: holds nothing else
        xw, L = self.xw, self.depth
        for k, (W_ih, s_ih, W_hh, s_hh, b_ih, b_hh) in enumerate(self.weights):
            if self.split[k]:
                h, c = carry if mode == "LSTM" else (carry, carry)
                args = (x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, h, c, new, y, k, xw, self.code)
                if not K.split_step(*args):
                    return None
                continue
            if mode == "LSTM":
                h, c = carry
                ok = K.lstm_step(x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, h, c, new, y, k, xw)
            elif mode == "GRU":
                ok = K.gru_step(x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, carry, new, y, k, xw)
            else:
                ok = K.rnn_step(
                    x, W_ih, s_ih, W_hh, s_hh, b_ih, b_hh, carry, new, y, k, xw, self.relu
                )
            if not ok:
                return None
        if mode == "LSTM":
            return y, (new[:L], new[L:])
        return y, new

    def step_many(self, x: Any, state: Any | None) -> tuple[np.ndarray, Any] | None:
        """``(y (B, H), new_state)`` for one step of B streams, ``x`` (B, F), or None."""
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
        lstm = self.mode == "LSTM"
        h_old: np.ndarray = carry[0] if lstm else carry
        if h_old.shape != (len(self.weights), B, self.layer.hidden_size):
            return None
        h_new = np.empty_like(h_old)
        c_old = carry[1] if lstm else None
        c_new = np.empty_like(h_old) if lstm else None
        dt, H, GH = self.dtype, self.layer.hidden_size, self.xw.shape[1]
        hh, acts = np.empty((B, GH), dt), np.empty((B, GH), dt)
        y, m = np.empty((B, H), dt), np.ones(B, dt)
        extra = np.empty((B, H), dt) if self.mode in ("LSTM", "GRU") else None
        inp = x
        for k, (W_ih, _, W_hh, _, b_ih, b_hh) in enumerate(self.weights):
            xi = inp @ W_ih.T  # (B, G*H)
            xi += b_ih
            np.matmul(h_old[k], W_hh.T, out=hh)
            c_prev = c_old[k] if c_old is not None else None
            c = c_new[k] if c_new is not None else None
            # the sequence loop's own step kernel, one step long
            fused.step_forward(
                self.layer.cell, xi, hh, b_hh, h_old[k], c_prev, m, h_new[k], c, y, acts, extra
            )
            inp = h_new[k]
        # y holds the top layer's output (every stream runs: m is 1), in a fresh array
        return y, ((h_new, c_new) if lstm else h_new)


class TokenStepPlan:
    """Batch-1 steps of a language model: an embedding row, the stack's plan, the head."""

    def __init__(self, model: Any, inner: StepPlan) -> None:
        self.model, self.inner = model, inner
        self.vocab_size = model.embedding.num_embeddings

    def step(self, token: Any, state: Any | None) -> tuple[np.ndarray, Any] | None:
        """``(logits (V,), new_state)`` for one token id, or None."""
        if not isinstance(token, (int, np.integer)) or not 0 <= token < self.vocab_size:
            return None  # the general path reports what is wrong
        x = self.model.embedding.params["weight"][token]  # (E,)
        done = self.inner.step(x, state)
        if done is None:
            return None
        h, state = done
        head = self.model.head.params
        logits = (h[None] @ head["weight"].T)[0]  # (V,); works on quantized weights too
        if "bias" in head:
            logits += head["bias"]
        return logits, state

    def step_many(self, tokens: Any, state: Any | None) -> tuple[np.ndarray, Any] | None:
        """``(logits (B, V), new_state)`` for one token id per stream, or None."""
        t = np.asarray(tokens)
        if t.ndim != 1 or t.size == 0 or t.dtype.kind not in "iu":
            return None
        if t.min() < 0 or t.max() >= self.vocab_size:
            return None
        done = self.inner.step_many(self.model.embedding.params["weight"][t], state)
        if done is None:
            return None
        h, state = done
        head = self.model.head.params
        logits = h @ head["weight"].T
        if "bias" in head:
            logits += head["bias"]
        return logits, state
