"""Losses, each returning its value and its gradient with respect to the model output.

Pure NumPy; float32 and float64. The gradient has the dtype of the input (``logits`` or
``pred``); the loss is a Python float accumulated in float64.

Weights. A position ``n`` is counted with weight ``w_n``: the ``mask`` value there (1 if no
mask is given), times 0 where the target equals ``ignore_index``. With ``reduction="mean"`` the
loss is divided by ``W = sum_n w_n``; with ``"sum"`` it is not. When ``W == 0`` nothing is
counted and the loss is 0 with a zero gradient (rather than 0/0).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError, ShapeError

__all__ = ["log_softmax", "softmax", "cross_entropy", "mse"]

_REDUCTIONS = ("mean", "sum")


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log_softmax(z)_c = z_c - m - log(sum_k exp(z_k - m))`` with ``m = max_k z_k``.

    Subtracting the max makes every exponent <= 0, so nothing overflows.
    """
    z = _logits("log_softmax", logits, axis)
    shifted = z - np.max(z, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """``softmax(z)_c = exp(z_c - m) / sum_k exp(z_k - m)`` with ``m = max_k z_k``."""
    z = _logits("softmax", logits, axis)
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _logits(name: str, logits: object, axis: object) -> np.ndarray:
    """``logits`` as a numeric array with a non-empty ``axis``, or a one-line error."""
    try:
        z = np.asarray(logits)
    except (ValueError, TypeError):
        raise InputError(
            f"{name}: expected logits as a rectangular array, got a ragged {type(logits).__name__}"
        ) from None
    if z.dtype.kind not in "fiu":
        raise InputError(f"{name}: expected numeric logits, got dtype {z.dtype}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise InputError(f"{name}: expected an integer axis, got {type(axis).__name__}")
    if not -z.ndim <= axis < z.ndim:
        raise ShapeError(f"{name}: axis {axis} is out of range for logits of shape {z.shape}")
    if z.shape[axis] == 0:
        raise ShapeError(f"{name}: expected at least one class along axis {axis}, got {z.shape}")
    return z


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise InputError(f"{name}: expected reduction 'mean' or 'sum', got {reduction!r}")


def _check_float(name: str, arg: str, x: np.ndarray) -> None:
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"{name}: expected {arg} of a floating dtype, got {x.dtype}")


def _check_mask(name: str, mask: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if mask.shape != shape:
        raise ShapeError(f"{name}: expected mask of shape {shape} ({what}), got {mask.shape}")


def cross_entropy(
    logits: np.ndarray,
    targets: np.ndarray,
    mask: np.ndarray | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy over the last axis, and its gradient.

    ``logits`` has shape ``(..., C)``, ``targets`` integer class indices of shape ``(...)``,
    ``mask`` (optional) 0/1, bool or real weights of shape ``(...)``. For position ``n`` with
    target ``y_n``, weight ``w_n`` (see the module docstring) and ``p = softmax(z_n)``::

        loss = sum_n w_n * (-log_softmax(z_n)[y_n]) / D      D = sum_n w_n  ("mean")
                                                             D = 1          ("sum")
        dloss/dz_n = w_n * (p - onehot(y_n)) / D

    Equals ``torch.nn.functional.cross_entropy`` with the same ``ignore_index`` and reduction.
    Returns ``(loss, dlogits)``; ``dlogits`` has the shape and dtype of ``logits``.
    """
    name = "cross_entropy"
    z = np.asarray(logits)
    y = np.asarray(targets)
    _check_float(name, "logits", z)
    _check_reduction(name, reduction)
    if z.ndim < 1 or z.shape[:-1] != y.shape:
        raise ShapeError(
            f"{name}: expected targets of shape {z.shape[:-1]} (logits shape without the class "
            f"axis), got {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{name}: expected integer targets, got dtype {y.dtype}")
    num_classes = z.shape[-1]

    # Weight of each position: the mask, and 0 where the target is ignored.
    w = np.ones(y.shape, dtype=z.dtype)
    if mask is not None:
        m = np.asarray(mask)
        _check_mask(name, m, y.shape, "the targets' shape")
        w = w * m.astype(z.dtype)
    kept = np.ones(y.shape, dtype=bool) if ignore_index is None else y != ignore_index
    w = np.where(kept, w, 0).astype(z.dtype)

    bad = kept & ((y < 0) | (y >= num_classes))
    if np.any(bad):
        first = y[bad].flat[0]
        raise InputError(f"{name}: expected targets in [0, {num_classes}), got {first}")

    total_weight = float(np.sum(w, dtype=np.float64))
    if total_weight == 0.0:
        return 0.0, np.zeros_like(z)
    denom = total_weight if reduction == "mean" else 1.0

    safe_y = np.where(kept, y, 0)[..., None]  # ignored targets may be out of range: index 0
    logp = log_softmax(z)  # (..., C)
    nll = -np.take_along_axis(logp, safe_y, axis=-1)[..., 0]  # (...)
    loss = float(np.sum(w * nll, dtype=np.float64)) / denom

    # d(-log p_y)/dz = p - onehot(y), scaled by each position's weight
    grad = np.exp(logp)
    np.put_along_axis(grad, safe_y, np.take_along_axis(grad, safe_y, axis=-1) - 1, axis=-1)
    grad *= (w / z.dtype.type(denom))[..., None]
    return loss, grad


def mse(
    pred: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray | None = None,
    reduction: str = "mean",
) -> tuple[float, np.ndarray]:
    """Mean squared error, and its gradient.

    ``pred`` and ``target`` have the same shape. ``mask`` (optional) holds 0/1, bool or real
    weights of shape ``pred.shape[:k]`` for some ``k``, e.g. ``(T, B)`` for predictions of shape
    ``(T, B, F)``; it applies to every element under it. With element weights ``w_i``::

        loss = sum_i w_i * (pred_i - target_i)^2 / D      D = sum_i w_i  ("mean")
                                                          D = 1          ("sum")
        dloss/dpred_i = 2 * w_i * (pred_i - target_i) / D

    Without a mask this equals ``torch.nn.functional.mse_loss``. Returns ``(loss, dpred)``;
    ``dpred`` has the shape and dtype of ``pred``.
    """
    name = "mse"
    p = np.asarray(pred)
    _check_float(name, "pred", p)
    _check_reduction(name, reduction)
    t = np.asarray(target)
    if t.shape != p.shape:
        raise ShapeError(f"{name}: expected target of shape {p.shape} (as pred), got {t.shape}")
    t = t.astype(p.dtype, copy=False)

    if mask is None:
        w = np.ones(p.shape, dtype=p.dtype)
    else:
        m = np.asarray(mask)
        _check_mask(name, m, p.shape[: m.ndim], "a leading part of pred's shape")
        # expand the mask over pred's trailing axes
        w = np.broadcast_to(m.reshape(m.shape + (1,) * (p.ndim - m.ndim)), p.shape)
        w = w.astype(p.dtype)

    total_weight = float(np.sum(w, dtype=np.float64))
    if total_weight == 0.0:
        return 0.0, np.zeros_like(p)
    denom = total_weight if reduction == "mean" else 1.0

    diff = p - t
    loss = float(np.sum(w * diff * diff, dtype=np.float64)) / denom
    grad = (2 * w * diff) / p.dtype.type(denom)  # d(diff^2)/dpred = 2 diff
    return loss, grad.astype(p.dtype, copy=False)
