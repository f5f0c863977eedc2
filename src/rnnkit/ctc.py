r"""Connectionist temporal classification (Graves et al., 2006): the loss, its gradient, decoders.

All in log space. For one sequence with log-probabilities ``lp`` of shape ``(T_b, C)`` (rows of
``log_softmax`` outputs), target ``l = (l_1, ..., l_S)`` and blank ``_``, the extended target
``l'`` puts a blank around every label: ``l' = (_, l_1, _, l_2, ..., _, l_S, _)``, length
``2S + 1``. A path may skip a blank between two different labels. With ``lse`` = log-sum-exp
and terms with ``s`` out of range taken as ``-inf``::

    alpha_0(0) = lp_0(_)      alpha_0(1) = lp_0(l_1)      alpha_0(s) = -inf for s >= 2
    alpha_t(s) = lp_t(l'_s) + lse(alpha_{t-1}(s), alpha_{t-1}(s-1),
                                  alpha_{t-1}(s-2) if l'_s != _ and l'_s != l'_{s-2})
    beta_{T-1}(2S) = lp_{T-1}(_)      beta_{T-1}(2S-1) = lp_{T-1}(l_S)      others -inf
    beta_t(s)  = lp_t(l'_s) + lse(beta_{t+1}(s), beta_{t+1}(s+1),
                                  beta_{t+1}(s+2) if l'_s != _ and l'_s != l'_{s+2})
    log P(l | x) = lse(alpha_{T-1}(2S), alpha_{T-1}(2S-1))       loss_b = -log P(l | x)

Both ``alpha_t(s)`` and ``beta_t(s)`` include ``lp_t(l'_s)``, so the posterior of class ``c``
at step ``t`` (the share of all alignments that emit ``c`` there) is::

    gamma_t(c) = exp(lse_{s : l'_s = c}(alpha_t(s) + beta_t(s)) - lp_t(c) + loss_b)

and ``d loss_b / d lp_t(c) = -gamma_t(c)``. As PyTorch's ``CTCLoss``, the gradient returned
for ``log_probs`` is ``exp(lp_t(c)) - gamma_t(c)``: the gradient with respect to the logits
``z`` when ``lp = log_softmax(z)`` (it sums to zero over ``c``, so backpropagating it through
``log_softmax`` gives it back unchanged). Steps ``t >= T_b`` get 0. Subtract ``exp(log_probs)``
for the derivative with respect to ``log_probs`` taken as free variables.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .errors import InputError, ShapeError

__all__ = ["ctc_loss", "ctc_greedy_decode", "ctc_beam_decode"]

NEG_INF = -np.inf


@njit(inline="always")
def _lse2(a, b):
    """``log(exp(a) + exp(b))`` without overflow; ``-inf`` if both are."""
    m = max(a, b)
    if m == NEG_INF:
        return NEG_INF
    return m + np.log(np.exp(a - m) + np.exp(b - m))


@njit(inline="always")
def _lse3(a, b, c):
    """``log(exp(a) + exp(b) + exp(c))``: one logarithm for the three terms of a recursion."""
    m = max(a, b, c)
    if m == NEG_INF:
        return NEG_INF
    return m + np.log(np.exp(a - m) + np.exp(b - m) + np.exp(c - m))


@njit(cache=True, error_model="numpy")
def _ctc_forward_backward(lp, targets, input_lengths, target_lengths, blank):
    """Per-sequence ``loss_b`` (B,) and ``exp(lp) - gamma`` (T, B, C), float64, as above."""
    T, B, C = lp.shape
    nll = np.empty(B)
    grad = np.zeros((T, B, C))
    L_max = 2 * targets.shape[1] + 1
    alpha = np.empty((T, L_max))
    beta = np.empty((T, L_max))
    ext = np.empty(L_max, dtype=np.int64)  # l', the extended target
    acc = np.empty(C)  # lse over s of alpha + beta, per class
    for b in range(B):
        T_b, S = input_lengths[b], target_lengths[b]
        L = 2 * S + 1
        for s in range(L):
            ext[s] = blank if s % 2 == 0 else targets[b, s // 2]

        # forward: alpha
        alpha[0, :L] = NEG_INF
        alpha[0, 0] = lp[0, b, blank]
        if L > 1:
            alpha[0, 1] = lp[0, b, ext[1]]
        for t in range(1, T_b):
            for s in range(L):
                stay = alpha[t - 1, s]
                move = alpha[t - 1, s - 1] if s >= 1 else NEG_INF
                skip = NEG_INF  # over the blank between two different labels
                if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                    skip = alpha[t - 1, s - 2]
                alpha[t, s] = _lse3(stay, move, skip) + lp[t, b, ext[s]]
        log_p = alpha[T_b - 1, L - 1]
        if L > 1:
            log_p = _lse2(log_p, alpha[T_b - 1, L - 2])
        nll[b] = -log_p

        # backward: beta
        last = T_b - 1
        beta[last, :L] = NEG_INF
        beta[last, L - 1] = lp[last, b, blank]
        if L > 1:
            beta[last, L - 2] = lp[last, b, ext[L - 2]]
        for t in range(last - 1, -1, -1):
            for s in range(L):
                stay = beta[t + 1, s]
                move = beta[t + 1, s + 1] if s + 1 < L else NEG_INF
                skip = NEG_INF
                if s + 2 < L and ext[s] != blank and ext[s] != ext[s + 2]:
                    skip = beta[t + 1, s + 2]
                beta[t, s] = _lse3(stay, move, skip) + lp[t, b, ext[s]]

        # gradient: exp(lp) - gamma, where gamma collects alpha * beta / y per class
        for t in range(T_b):
            acc[:] = NEG_INF
            for s in range(L):
                acc[ext[s]] = _lse2(acc[ext[s]], alpha[t, s] + beta[t, s])
            for c in range(C):
                y = lp[t, b, c]
                gamma = 0.0  # a class no alignment emits here (0 unless the loss is infinite)
                if acc[c] != NEG_INF or log_p == NEG_INF:
                    gamma = np.exp(acc[c] - y - log_p)
                grad[t, b, c] = np.exp(y) - gamma
    return nll, grad


def ctc_loss(
    log_probs: np.ndarray,
    targets: np.ndarray,
    input_lengths: np.ndarray,
    target_lengths: np.ndarray,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> tuple[float | np.ndarray, np.ndarray]:
    """CTC loss of ``log_probs`` (T, B, C) (``log_softmax`` outputs, time-major) and its gradient.

    ``targets`` is ``(B, S)`` padded (row ``b`` holds its labels in the first
    ``target_lengths[b]`` places) or 1-D, the targets concatenated, as PyTorch accepts.
    ``input_lengths`` and ``target_lengths`` are ``(B,)``; steps at or past ``input_lengths[b]``
    are padding and contribute nothing. The recursions are in the module docstring.

    ``reduction``: ``"none"`` gives the losses ``(B,)``; ``"sum"`` their sum; ``"mean"`` the
    mean over the batch of ``loss_b / max(S_b, 1)``, as ``torch.nn.functional.ctc_loss``. An
    impossible alignment (e.g. a repeated label with no step for the blank between) has an
    infinite loss and, as PyTorch, a NaN gradient at that sequence's steps; ``zero_infinity``
    makes both 0. Returns ``(loss, dlog_probs)``, ``dlog_probs`` of the shape and dtype of
    ``log_probs``, equal to PyTorch's gradient of its ``log_probs`` input: see the module
    docstring (``exp(lp) - gamma``).
    """
    name = "ctc_loss"
    lp = np.asarray(log_probs)
    if lp.ndim != 3 or not np.issubdtype(lp.dtype, np.floating):
        raise ShapeError(
            f"{name}: expected log_probs (T, B, C) of floats, got {lp.shape} {lp.dtype}"
        )
    T, B, C = lp.shape
    if reduction not in ("none", "sum", "mean"):
        raise InputError(f"{name}: expected reduction 'none', 'sum' or 'mean', got {reduction!r}")
    if not 0 <= blank < C:
        raise InputError(f"{name}: expected blank in [0, {C}), got {blank}")
    il = _lengths(name, "input_lengths", input_lengths, B)
    tl = _lengths(name, "target_lengths", target_lengths, B)
    if np.any((il < 1) | (il > T)):
        raise InputError(f"{name}: expected input_lengths in [1, {T}], got {il.tolist()}")
    too_long = np.flatnonzero(tl > il)
    if too_long.size:
        b = too_long[0]
        raise InputError(
            f"{name}: expected target_lengths <= input_lengths, got target {tl[b]} > input "
            f"{il[b]} for sequence {b}"
        )
    padded = _padded_targets(name, targets, tl, C, blank)

    nll, grad = _ctc_forward_backward(lp.astype(np.float64), padded, il, tl, blank)
    if zero_infinity:
        infinite = np.isinf(nll)
        nll[infinite] = 0.0
        grad[:, infinite] = 0.0

    if reduction == "none":
        return nll, grad.astype(lp.dtype)
    scale = np.ones(B) if reduction == "sum" else 1.0 / (B * np.maximum(tl, 1))
    loss = float(np.sum(nll * scale))
    grad *= scale[None, :, None]  # each sequence's gradient by its weight in the loss
    return loss, grad.astype(lp.dtype)


def _lengths(name: str, arg: str, lengths: object, batch: int) -> np.ndarray:
    n = np.asarray(lengths)
    if n.shape != (batch,) or not np.issubdtype(n.dtype, np.integer):
        raise ShapeError(f"{name}: expected {arg} of {batch} integers, got {n.shape} {n.dtype}")
    return n.astype(np.int64)


def _padded_targets(
    name: str, targets: object, tl: np.ndarray, num_classes: int, blank: int
) -> np.ndarray:
    """Targets as ``(B, max(S_max, 1))`` int64, padded with ``blank``, checked."""
    y = np.asarray(targets)
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{name}: expected integer targets, got dtype {y.dtype}")
    B, s_max = tl.shape[0], int(tl.max(initial=0))
    padded = np.full((B, max(s_max, 1)), blank, dtype=np.int64)
    if y.ndim == 1:  # concatenated
        if y.shape[0] != tl.sum():
            raise ShapeError(
                f"{name}: expected concatenated targets of length sum(target_lengths) = "
                f"{tl.sum()}, got {y.shape[0]}"
            )
        starts = np.concatenate([[0], np.cumsum(tl)])
        for b in range(B):
            padded[b, : tl[b]] = y[starts[b] : starts[b + 1]]
    elif y.ndim == 2 and y.shape[0] == B and y.shape[1] >= s_max:
        for b in range(B):
            padded[b, : tl[b]] = y[b, : tl[b]]
    else:
        raise ShapeError(
            f"{name}: expected targets ({B}, S >= {s_max}) padded or 1-D concatenated, "
            f"got {y.shape}"
        )
    used = np.arange(padded.shape[1])[None, :] < tl[:, None]
    bad = used & ((padded < 0) | (padded >= num_classes) | (padded == blank))
    if np.any(bad):
        raise InputError(
            f"{name}: expected target labels in [0, {num_classes}) other than the blank "
            f"{blank}, got {padded[bad][0]}"
        )
    return padded


def _check_decode(name: str, log_probs: object, input_lengths: object | None) -> tuple:
    lp = np.asarray(log_probs)
    if lp.ndim != 3:
        raise ShapeError(f"{name}: expected log_probs of shape (T, B, C), got {lp.shape}")
    T, B, _ = lp.shape
    il = (
        np.full(B, T)
        if input_lengths is None
        else _lengths(name, "input_lengths", input_lengths, B)
    )
    if np.any((il < 0) | (il > T)):
        raise InputError(f"{name}: expected input_lengths in [0, {T}], got {il.tolist()}")
    return lp, il


def ctc_greedy_decode(
    log_probs: np.ndarray, input_lengths: np.ndarray | None = None, blank: int = 0
) -> list[list[int]]:
    """Best path: the likeliest class at each step, repeats merged, then blanks removed.

    ``log_probs`` (T, B, C), ``input_lengths`` (B,) (default: all T). One label list per sequence.
    """
    lp, il = _check_decode("ctc_greedy_decode", log_probs, input_lengths)
    best = np.argmax(lp, axis=-1)  # (T, B)
    out = []
    for b in range(lp.shape[1]):
        path = best[: il[b], b]
        keep = np.ones(path.shape, dtype=bool)
        keep[1:] = path[1:] != path[:-1]  # merge repeats
        out.append([int(c) for c in path[keep] if c != blank])
    return out


def ctc_beam_decode(
    log_probs: np.ndarray,
    input_lengths: np.ndarray | None = None,
    blank: int = 0,
    beam: int = 8,
) -> list[list[int]]:
    """Prefix beam search (Hannun et al., 2014), without a language model.

    Each prefix keeps two log-probabilities: of the paths ending in a blank (``p_b``) and of
    those ending in its last label (``p_nb``). At step ``t`` with ``y = lp_t``::

        blank:            p_b'(l)    += (p_b(l) + p_nb(l)) * y(_)
        repeat last c:    p_nb'(l)   += p_nb(l) * y(c)             (merged into the same prefix)
        new label c:      p_nb'(l+c) += (p_b(l) if c == last(l) else p_b(l) + p_nb(l)) * y(c)

    then the ``beam`` best prefixes by ``p_b + p_nb`` go on. One label list per sequence.
    """
    name = "ctc_beam_decode"
    lp, il = _check_decode(name, log_probs, input_lengths)
    if beam < 1:
        raise InputError(f"{name}: expected beam >= 1, got {beam}")
    out = []
    for b in range(lp.shape[1]):
        beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
        for t in range(il[b]):
            y = lp[t, b].astype(np.float64)
            nxt: dict[tuple[int, ...], list[float]] = {}
            for prefix, (p_b, p_nb) in beams.items():
                total = np.logaddexp(p_b, p_nb)
                _add(nxt, prefix, 0, total + y[blank])
                last = prefix[-1] if prefix else None
                for c in range(lp.shape[2]):
                    if c == blank:
                        continue
                    if c == last:
                        _add(nxt, prefix, 1, p_nb + y[c])
                        _add(nxt, prefix + (c,), 1, p_b + y[c])
                    else:
                        _add(nxt, prefix + (c,), 1, total + y[c])
            ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(kv[1][0], kv[1][1]))
            beams = {prefix: (p[0], p[1]) for prefix, p in ranked[:beam]}
        best = max(beams.items(), key=lambda kv: np.logaddexp(kv[1][0], kv[1][1]))[0]
        out.append(list(best))
    return out


def _add(
    beams: dict[tuple[int, ...], list[float]], prefix: tuple[int, ...], i: int, value: float
) -> None:
    """``beams[prefix][i] = logaddexp(beams[prefix][i], value)`` (0: ends in blank, 1: not)."""
    entry = beams.setdefault(prefix, [NEG_INF, NEG_INF])
    entry[i] = float(np.logaddexp(entry[i], value))
