"""Losses, each returning its value and its gradient with respect to the model output.

Pure NumPy; float32 and float64. The gradient has the dtype of the input (``logits`` or
``pred``); the loss is a Python float accumulated in float64.

Weights. A position ``n`` is counted with weight ``w_n``: the ``mask`` value there (1 if no
mask is given), times 0 where the target equals ``ignore_index``. With ``reduction="mean"`` the
loss is divided by ``W = sum_n w_n``; with ``"sum"`` it is not. When ``W == 0`` nothing is
counted and the loss is 0 with a zero gradient (rather than 0/0).

Masks of the element-wise losses (`mse`, `bce_with_logits`, `gaussian_nll`, `pinball`) cover a
leading part of the prediction's shape, e.g. ``(T, B)`` for ``(T, B, F)``, and weight every
element under them. A position with weight 0 contributes nothing whatever its values (NaN
targets there, as missing values, are allowed) and gets a zero gradient. CTC (`rnnkit.ctc`)
masks by lengths instead.
"""

from __future__ import annotations

import numpy as np

from .ctc import ctc_loss
from .ctc_decode import ctc_beam_decode, ctc_greedy_decode, ctc_lexicon_beam_decode
from .errors import InputError, ShapeError

__all__ = [
    "log_softmax",
    "softmax",
    "cross_entropy",
    "mse",
    "bce_with_logits",
    "gaussian_nll",
    "pinball",
    "ctc_loss",
    "ctc_greedy_decode",
    "ctc_beam_decode",
    "ctc_lexicon_beam_decode",
]

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
    label_smoothing: float = 0.0,
) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy over the last axis, and its gradient.

    ``logits`` has shape ``(..., C)``, ``targets`` integer class indices of shape ``(...)``,
    ``mask`` (optional) 0/1, bool or real weights of shape ``(...)``. For position ``n`` with
    target ``y_n``, weight ``w_n`` (see the module docstring) and ``p = softmax(z_n)``::

        loss = sum_n w_n * (-log_softmax(z_n)[y_n]) / D      D = sum_n w_n  ("mean")
                                                             D = 1          ("sum")
        dloss/dz_n = w_n * (p - onehot(y_n)) / D

    ``label_smoothing`` ``e`` in [0, 1) takes the target as ``q = (1 - e) onehot(y_n) + e / C``
    over the ``C`` classes instead of ``onehot(y_n)``: the loss of position ``n`` is
    ``-sum_c q_c log_softmax(z_n)[c]`` and its gradient ``w_n * (p - q) / D``.

    Equals ``torch.nn.functional.cross_entropy`` with the same ``ignore_index``, reduction and
    label smoothing (without a mask).
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
    if not 0.0 <= label_smoothing < 1.0:
        raise InputError(f"{name}: expected label_smoothing in [0, 1), got {label_smoothing!r}")

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
    e = label_smoothing
    if e:  # -sum_c q_c log p_c = (1 - e) nll + e * mean_c(-log p_c)
        nll = (1 - e) * nll - e * np.mean(logp, axis=-1)
    loss = float(np.sum(w * nll, dtype=np.float64)) / denom

    # d(-sum_c q_c log p_c)/dz = p - q, q = (1 - e) onehot(y) + e / C; scaled by each weight
    grad = np.exp(logp)
    hit = np.take_along_axis(grad, safe_y, axis=-1) - (1 - e)
    np.put_along_axis(grad, safe_y, hit, axis=-1)
    if e:
        grad -= z.dtype.type(e / num_classes)
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


def _element_weights(
    name: str, mask: object, shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    """The mask (shape ``shape[:k]``) broadcast over the trailing axes of ``shape``, or ones."""
    if mask is None:
        return np.ones(shape, dtype=dtype)
    m = np.asarray(mask)
    _check_mask(name, m, shape[: m.ndim], "a leading part of the prediction's shape")
    if m.dtype.kind not in "biuf" or np.any(np.isnan(m)) or np.any(m < 0):
        raise InputError(f"{name}: expected a mask of finite weights >= 0, got {m.dtype} values")
    return np.broadcast_to(m.reshape(m.shape + (1,) * (len(shape) - m.ndim)), shape).astype(dtype)


def _check_no_nan(name: str, arg: str, x: np.ndarray, counted: np.ndarray) -> None:
    """NaN is allowed only where nothing is counted (missing targets under a zero mask)."""
    if np.any(np.isnan(x) & counted):
        raise InputError(f"{name}: expected {arg} without NaN where the mask counts, got NaN")


def _reduce(w: np.ndarray, per_element: np.ndarray, reduction: str) -> tuple[float, float]:
    """``(loss, D)``: ``sum w * l / D``; masked elements count 0 whatever ``l`` holds there."""
    total_weight = float(np.sum(w, dtype=np.float64))
    if total_weight == 0.0:
        return 0.0, 1.0
    denom = total_weight if reduction == "mean" else 1.0
    counted = np.where(w != 0, w * per_element, 0)
    return float(np.sum(counted, dtype=np.float64)) / denom, denom


def bce_with_logits(
    logits: np.ndarray,
    targets: np.ndarray,
    mask: np.ndarray | None = None,
    pos_weight: np.ndarray | None = None,
    reduction: str = "mean",
) -> tuple[float, np.ndarray]:
    """Binary cross-entropy of ``sigmoid(logits)`` (independent labels, e.g. per step), and grad.

    ``logits`` and ``targets`` (in [0, 1]) have the same shape, e.g. ``(T, B, L)`` for ``L``
    labels per step; ``mask`` weights a leading part of it (``(T, B)``: padded steps 0);
    ``pos_weight`` ``q`` (broadcast to the logits, e.g. ``(L,)``) weights the positive term.
    With ``sp(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))`` (never overflows),
    ``-log sigmoid(z) = sp(-z)`` and ``-log(1 - sigmoid(z)) = sp(z)``::

        l_i = q_i * y_i * sp(-z_i) + (1 - y_i) * sp(z_i)
        loss = sum_i w_i * l_i / D                  D = sum_i w_i ("mean"), 1 ("sum")
        dloss/dz_i = w_i * ((1 - y_i) * sigmoid(z_i) - q_i * y_i * sigmoid(-z_i)) / D

    Equals ``torch.nn.BCEWithLogitsLoss(pos_weight=q)`` without a mask. Returns
    ``(loss, dlogits)``, ``dlogits`` of the shape and dtype of ``logits``.
    """
    name = "bce_with_logits"
    z = np.asarray(logits)
    _check_float(name, "logits", z)
    _check_reduction(name, reduction)
    y = np.asarray(targets)
    if y.shape != z.shape:
        raise ShapeError(f"{name}: expected targets of shape {z.shape} (as logits), got {y.shape}")
    y = y.astype(z.dtype)
    w = _element_weights(name, mask, z.shape, z.dtype)
    _check_no_nan(name, "targets", y, w != 0)
    q = np.ones((), dtype=z.dtype)
    if pos_weight is not None:
        q = np.asarray(pos_weight, dtype=z.dtype)
        try:
            fits = np.broadcast_shapes(q.shape, z.shape) == z.shape
        except ValueError:
            fits = False
        if not fits:
            raise ShapeError(
                f"{name}: expected pos_weight broadcastable to {z.shape}, got {q.shape}"
            )
        if np.any(np.isnan(q)):
            raise InputError(f"{name}: expected pos_weight without NaN, got NaN")

    def softplus(x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    loss, denom = _reduce(w, q * y * softplus(-z) + (1 - y) * softplus(z), reduction)
    sig = 0.5 * (1 + np.tanh(0.5 * z))  # sigmoid without overflow; sigmoid(-z) = 1 - sig
    dz = (1 - y) * sig - q * y * (1 - sig)  # d sp(z)/dz = sigmoid(z)
    grad = np.where(w != 0, w * dz, 0) / z.dtype.type(denom)
    return loss, grad.astype(z.dtype, copy=False)


def gaussian_nll(
    mean: np.ndarray,
    var: np.ndarray,
    targets: np.ndarray,
    mask: np.ndarray | None = None,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> tuple[float, np.ndarray, np.ndarray]:
    """Gaussian negative log-likelihood of ``targets`` under ``N(mean, var)``, and its gradients.

    ``mean`` and ``targets`` have the same shape; ``var`` (>= 0) that shape, or it without the
    last axis, or with size-1 axes (one variance shared along them), as PyTorch accepts; ``mask``
    weights a leading part of ``mean``'s shape. With ``v = max(var, eps)`` and ``d = mean - y``::

        l_i = 0.5 * (log v_i + d_i^2 / v_i)  [+ 0.5 * log(2 pi) if full]
        loss = sum_i w_i * l_i / D                  D = sum_i w_i ("mean"), 1 ("sum")
        dloss/dmean_i = w_i * d_i / v_i / D
        dloss/dvar_i  = w_i * 0.5 * (1 / v_i - d_i^2 / v_i^2) / D  (summed where var is shared)

    The clamp passes the gradient through unchanged, as ``torch.nn.GaussianNLLLoss`` (which
    clamps a copy under ``no_grad``), which this equals without a mask. Returns
    ``(loss, dmean, dvar)`` in the shapes and dtypes of ``mean`` and ``var``.
    """
    name = "gaussian_nll"
    mu = np.asarray(mean)
    _check_float(name, "mean", mu)
    _check_reduction(name, reduction)
    y = np.asarray(targets)
    if y.shape != mu.shape:
        raise ShapeError(f"{name}: expected targets of shape {mu.shape} (as mean), got {y.shape}")
    y = y.astype(mu.dtype)
    v_in = np.asarray(var)
    _check_float(name, "var", v_in)
    shared = v_in.shape == mu.shape[:-1] and v_in.shape != mu.shape
    v_b = v_in[..., None] if shared else v_in
    if v_b.ndim != mu.ndim or any(
        a not in (b, 1) for a, b in zip(v_b.shape, mu.shape, strict=True)
    ):
        raise ShapeError(
            f"{name}: expected var of shape {mu.shape}, {mu.shape[:-1]} or with size-1 axes, "
            f"got {v_in.shape}"
        )
    if not eps > 0:
        raise InputError(f"{name}: expected eps > 0, got {eps}")
    w = _element_weights(name, mask, mu.shape, mu.dtype)
    counted = w != 0
    _check_no_nan(name, "targets", y, counted)
    v = np.broadcast_to(v_b, mu.shape).astype(mu.dtype)
    if np.any((v < 0) & counted):
        raise InputError(f"{name}: expected var >= 0, got {float(v[(v < 0) & counted][0])}")

    v = np.maximum(v, mu.dtype.type(eps))  # the clamp: its gradient passes straight through
    v = np.where(counted, v, 1)  # padded positions: any var, nothing counted
    d = mu - y
    per_element = 0.5 * (np.log(v) + d * d / v)
    if full:
        per_element = per_element + 0.5 * np.log(2 * np.pi)
    loss, denom = _reduce(w, per_element, reduction)
    scale = np.where(counted, w, 0) / mu.dtype.type(denom)
    dmean = np.where(counted, scale * d / v, 0)  # d(d^2 / 2v)/dmean = d / v
    dv = np.where(counted, scale * 0.5 * (1 / v - d * d / (v * v)), 0)  # d(log v + d^2/v)/dv / 2
    # sum the gradient over the axes along which one variance is shared
    axes = tuple(i for i, (a, b) in enumerate(zip(v_b.shape, mu.shape, strict=True)) if a != b)
    dvar = np.sum(dv, axis=axes, keepdims=True).reshape(v_in.shape)
    return loss, dmean.astype(mu.dtype, copy=False), dvar.astype(v_in.dtype, copy=False)


def pinball(
    pred: np.ndarray,
    targets: np.ndarray,
    quantiles: np.ndarray,
    mask: np.ndarray | None = None,
    reduction: str = "mean",
) -> tuple[float, np.ndarray]:
    """Pinball (quantile) loss of predicted quantiles, and its (sub)gradient.

    ``pred`` has shape ``(..., Q)``: one prediction per quantile level ``tau`` of
    ``quantiles`` (Q,), each in (0, 1); ``targets`` shape ``(...)``; ``mask`` weights a leading
    part of ``(...)`` and every quantile under it. With ``u = y - pred_q``::

        l = max(tau * u, (tau - 1) * u)
        loss = sum w * l / D                        D = sum w over (..., Q) ("mean"), 1 ("sum")
        dloss/dpred_q = w * (-tau if u > 0 else 1 - tau) / D

    Minimising it in ``pred_q`` gives the ``tau``-quantile of ``y`` (at ``u == 0`` the
    subgradient ``1 - tau`` is taken). Returns ``(loss, dpred)`` of ``pred``'s shape and dtype.
    """
    name = "pinball"
    p = np.asarray(pred)
    _check_float(name, "pred", p)
    _check_reduction(name, reduction)
    tau = np.asarray(quantiles, dtype=np.float64)
    if p.ndim < 1 or tau.shape != p.shape[-1:]:
        raise ShapeError(
            f"{name}: expected quantiles of shape {p.shape[-1:]} (pred's last axis), "
            f"got {tau.shape}"
        )
    if not np.all((tau > 0) & (tau < 1)):
        raise InputError(f"{name}: expected quantiles in (0, 1), got {tau.tolist()}")
    y = np.asarray(targets)
    if y.shape != p.shape[:-1]:
        raise ShapeError(
            f"{name}: expected targets of shape {p.shape[:-1]} (pred without the quantile "
            f"axis), got {y.shape}"
        )
    if mask is not None and np.ndim(mask) > y.ndim:
        raise ShapeError(f"{name}: expected mask of shape {y.shape}, got {np.shape(mask)}")
    w = _element_weights(name, mask, p.shape, p.dtype)
    y = y.astype(p.dtype)[..., None]  # (..., 1) against (..., Q)
    _check_no_nan(name, "targets", np.broadcast_to(y, p.shape), w != 0)
    tau = tau.astype(p.dtype)

    u = y - p
    loss, denom = _reduce(w, np.maximum(tau * u, (tau - 1) * u), reduction)
    slope = np.where(u > 0, -tau, 1 - tau)  # dl/du is tau or tau - 1; du/dpred = -1
    grad = np.where(w != 0, w * slope, 0) / p.dtype.type(denom)
    return loss, grad.astype(p.dtype, copy=False)
