"""The sequence forward and the BPTT backward of one cell over one direction of time.

The input projection ``x W_ih^T + b_ih`` is one matrix product for all steps before the loop;
the loop does one ``h_prev W_hh^T`` product and the gate arithmetic per step. The backward keeps
the pre-activation gradients of every step and forms ``dW_ih``, ``dW_hh``, the biases and ``dx``
as a few large products after the loop; only ``dh_prev`` is a per-step product.

Variable lengths are a ``mask`` of shape ``(T, B, 1)``: where it is 0 the carry passes through
unchanged and the output is zero, so the final carry is the one at each sequence's last step.

Which loop runs is the planner's choice (`rnnkit.engine.plan`), made once per call and passed in:
the NumPy reference loop below (also for quantized weights), or the compiled loops of
`rnnkit.engine.fused`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cells.base import Carry, CellSpec, input_projection
from . import fused
from .plan import Plan


@dataclass
class Weights:
    """One direction of one layer: references to its parameters and their gradient buffers."""

    W_ih: np.ndarray  # (G*H, F)
    W_hh: np.ndarray  # (G*H, H)
    b_ih: np.ndarray | None  # (G*H,)
    b_hh: np.ndarray | None  # (G*H,)


@dataclass
class SequenceCache:
    """What the backward needs from the forward: opaque to everyone else."""

    x: np.ndarray  # (T, B, F)
    h_prev: np.ndarray | None  # (T, B, H): the hidden state entering each step
    steps: list[tuple]
    mask: np.ndarray | None


def sequence_forward(
    plan: Plan,
    cell: CellSpec,
    x: np.ndarray,
    carry: Carry,
    w: Weights,
    mask: np.ndarray | None = None,
    keep_cache: bool = True,
) -> tuple[np.ndarray, Carry, SequenceCache | fused.FusedCache | None]:
    """Run ``cell`` over ``x`` (T, B, F) from ``carry`` on the path ``plan`` names
    (`plan.plan_sequence`); return outputs (T, B, H), the final carry and the backward's cache."""
    if plan.path == "batch":
        return fused.forward(cell, x, carry, w, mask, keep_cache)
    if plan.path in ("single", "single-pair"):
        m = np.ones(x.shape[0], x.dtype) if mask is None else np.ascontiguousarray(mask[:, 0, 0])
        return fused.forward_single(cell, carry, w, m, x[:, 0], plan)
    W_hh: Any = w.W_hh
    if plan.widened:  # a quantized weight (`rnnkit.quantize`), widened once for all T products
        W_hh = W_hh.widened(x.dtype)
    return _reference_forward(cell, x, carry, w, W_hh, mask, keep_cache)


def _reference_forward(cell, x, carry, w, W_hh, mask, keep_cache):
    """The step loop on the cells' NumPy step functions (paths ``reference`` and
    ``quantized``), the recurrent products on ``W_hh``."""
    T, B, _ = x.shape
    H = w.W_hh.shape[1]
    xi = input_projection(x, w.W_ih, w.b_ih)  # (T, B, G*H)
    y = np.empty((T, B, H), dtype=x.dtype)
    h_prev = np.empty((T, B, H), dtype=x.dtype) if keep_cache else None
    steps: list[tuple] = []
    for t in range(T):
        if h_prev is not None:
            h_prev[t] = carry[0]
        new, step_cache = cell.step_forward(xi[t], carry, W_hh, w.b_hh)
        if keep_cache:
            steps.append(step_cache)
        if mask is None:
            y[t] = new[0]
            carry = new
        else:
            m = mask[t]  # (B, 1): 1 while the sequence runs, 0 after its end
            carry = tuple(np.where(m, n, c) for n, c in zip(new, carry, strict=True))
            y[t] = np.where(m, new[0], 0.0)
    cache = SequenceCache(x, h_prev, steps, mask) if keep_cache else None
    return y, carry, cache


def sequence_backward(
    cell: CellSpec,
    dy: np.ndarray,
    dcarry: Carry,
    cache: SequenceCache | fused.FusedCache,
    w: Weights,
    grads: Weights,
) -> tuple[np.ndarray, Carry, np.ndarray]:
    """BPTT through one direction.

    ``dy`` (T, B, H) is the gradient of the outputs, ``dcarry`` that of the final carry.
    Accumulates parameter gradients into the arrays of ``grads`` and returns ``dx`` (T, B, F),
    the gradient of the initial carry, and the squared norm of the gradient reaching each
    hidden state, per step and sequence (T, B).
    """
    if isinstance(cache, fused.FusedCache):
        return fused.backward(cell, dy, dcarry, cache, w, grads)
    x, mask = cache.x, cache.mask
    T, B, F = x.shape
    H = w.W_hh.shape[1]
    dxi = np.empty((T, B, cell.gates * H), dtype=x.dtype)  # (T, B, G*H)
    dhh = np.empty_like(dxi) if cell.separate_hidden_grad else dxi
    sq_norms = np.empty((T, B), dtype=np.float64)
    for t in range(T - 1, -1, -1):
        dh = dcarry[0] + dy[t]  # the output and the next step both read h_t
        if mask is None:
            step_in = (dh, *dcarry[1:])
        else:
            m = mask[t]
            step_in = tuple(m * d for d in (dh, *dcarry[1:]))
        sq_norms[t] = np.einsum("bh,bh->b", step_in[0], step_in[0])
        dxi[t], dhh_t, dprev = cell.step_backward(step_in, cache.steps[t], w.W_hh)
        if cell.separate_hidden_grad:
            dhh[t] = dhh_t
        if mask is None:
            dcarry = dprev
        else:
            # past a sequence's end the carry was copied through: so is its gradient
            dcarry = tuple(p + (1.0 - m) * d for p, d in zip(dprev, dcarry, strict=True))
    dxi2 = dxi.reshape(T * B, -1)
    dhh2 = dhh.reshape(T * B, -1)
    grads.W_ih += dxi2.T @ x.reshape(T * B, F)
    assert cache.h_prev is not None, "sequence_backward needs a forward run with keep_cache"
    grads.W_hh += dhh2.T @ cache.h_prev.reshape(T * B, H)
    if grads.b_ih is not None:
        grads.b_ih += dxi2.sum(axis=0)
    if grads.b_hh is not None:
        grads.b_hh += dhh2.sum(axis=0)
    dx = (dxi2 @ w.W_ih).reshape(T, B, F)
    return dx, dcarry, sq_norms
