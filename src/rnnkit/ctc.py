r"""Connectionist temporal classification (Graves et al., 2006): the loss and its gradient (the
decoders are in `rnnkit.ctc_decode`).

The definition, in log space. For one sequence with log-probabilities ``lp`` of shape
``(T_b, C)`` (rows of ``log_softmax`` outputs), target ``l = (l_1, ..., l_S)`` and blank ``_``,
the extended target ``l'`` puts a blank around every label:
``l' = (_, l_1, _, l_2, ..., _, l_S, _)``, length ``2S + 1``. A path may skip a blank between
two different labels. With ``lse`` = log-sum-exp and terms with ``s`` out of range taken as
``-inf``::

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

How it runs (`_scaled`, the fast path): the same recursions in probabilities, each step's row
rescaled to sum 1 and the scales' logarithms summed (Rabiner, 1989), over the states that lie on
some complete path only (``max(0, 2S + 1 - 2(T_b - t)) <= s <= min(2S, 2t + 1)``): a
multiply-add per cell instead of three exponentials and a logarithm, one exponential per class
and step, in float64 whatever the input. Its posteriors are normalised at each step, so they
are as exact as the log-space ones. Every step gives ``log P`` anew; if they disagree (a path
lost to underflow: alignments some 700 nats apart), or a row vanishes (an impossible
alignment), that sequence is done by the log-space recursions above as written
(`_log_space`, the reference; tests hold the two paths together). Sequences are shared out
among rnnkit's threads (`rnnkit.threads`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .errors import InputError, ShapeError
from .threads import in_parallel, thread_count

__all__ = ["ctc_loss"]

NEG_INF = -np.inf
MIN_WORK = 20_000  # cells per thread below which a second thread costs more than it saves


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


# The fast path: the same recursions in probabilities, each step's row rescaled to sum 1 (Rabiner's
# scaling), so that a step costs multiplications and additions instead of a log-sum-exp per cell.
# A row is kept in an array padded with O zeros either side, so that s - 2 ... s + 2 need no test.
O = 2
TINY = 1e-250  # a row or overlap sum below this: the scaled recursion may have lost precision
AGREE = 1e-9  # log P from every step must agree to this (relative to max(1, |log P|))


@njit(cache=True, nogil=True, error_model="numpy")
def _band(t, T_b, L):
    """The states ``s`` that lie on some complete path at step ``t``: ``[lo, hi]``."""
    return max(0, L - 2 * (T_b - t)), min(L - 1, 2 * t + 1)


@njit(cache=True, nogil=True, error_model="numpy")
def _scaled(lp, b, T_b, L, ext, skip, y, m, g, log_g, a_prev, a_cur, acc, grad, scale):
    """``log P(l | x)`` of sequence ``b`` by the scaled recursions, and its gradient rows of
    ``grad`` times ``scale``; NaN if the scaled numbers cannot be trusted (the caller then
    takes the log-space path). With ``y_t(c) = exp(lp_t(c) - m_t)``, ``m_t = max_c lp_t(c)``,
    and ``k_s`` 1 where a path may skip the blank before ``s`` (else 0)::

        p_t(s) = (a_{t-1}(s) + a_{t-1}(s-1) + k_s a_{t-1}(s-2)) / c_{t-1}    paths into s
        a_t(s) = y_t(l'_s) p_t(s)          c_t = sum_s a_t(s)      a_{-1} = (1, 0, ...), c_{-1} = 1
        g_t(s) = y_t(l'_s) (g_{t+1}(s) + g_{t+1}(s+1) + k_{s+2} g_{t+1}(s+2)) / d_{t+1}
        g_{T-1}(s) = y_{T-1}(l'_s) at the last two states      d_t = sum_s g_t(s)

    so ``a_t`` is ``alpha_t`` and ``g_t`` is ``beta_t`` up to a factor per step, and
    ``p_t(s) g_t(s) = alpha_t(s) beta_t(s) / y_t(l'_s)`` up to one factor common to all ``s``.
    Hence, with ``Z_t = sum_s p_t(s) g_t(s)``, at every step ``t``::

        gamma_t(c) = sum_{s : l'_s = c} p_t(s) g_t(s) / Z_t
        log P = log Z_t + sum_{u < t} (m_u + log c_u) + sum_{u >= t} m_u + sum_{u > t} log d_u

    ``log P`` must come out the same at every step: that is the check that no path was lost to
    underflow (a contribution below about 1e-308 of its row's sum). ``log_g[t]`` keeps
    ``sum_{u > t} (m_u + log d_u)``.
    """
    C = lp.shape[2]
    for t in range(T_b):  # emissions, relative to the step's likeliest class
        mt = np.float64(lp[t, b, 0])  # float64 arithmetic whatever the input's dtype
        for c in range(1, C):
            mt = max(mt, np.float64(lp[t, b, c]))
        if not (mt > NEG_INF and mt < np.inf):
            return np.nan
        m[t] = mt
        for c in range(C):
            y[t, c] = np.exp(np.float64(lp[t, b, c]) - mt)

    # backward: g, from the last step
    last = T_b - 1
    g[last, :] = 0.0
    for s in range(O + max(0, L - 2), O + L):
        g[last, s] = y[last, ext[s]]
    d_next = g[last, O + L - 1] + g[last, O + L - 2]
    log_g[last] = 0.0
    for t in range(last - 1, -1, -1):
        if not d_next >= TINY:
            return np.nan
        lo, hi = _band(t, T_b, L)
        if lo > hi:
            return np.nan  # no complete path: an infinite loss
        nxt, cur, yt, inv = g[t + 1], g[t], y[t], 1.0 / d_next
        d = 0.0
        for s in range(O + lo, O + hi + 1):
            v = yt[ext[s]] * (nxt[s] + nxt[s + 1] + skip[s + 2] * nxt[s + 2]) * inv
            cur[s] = v
            d += v
        cur[O + lo - 2] = cur[O + lo - 1] = cur[O + hi + 1] = cur[O + hi + 2] = 0.0
        log_g[t] = log_g[t + 1] + m[t + 1] + np.log(d_next)
        d_next = d

    # forward: a, and at each step the posteriors and the gradient
    a_prev[:] = 0.0
    a_prev[O] = 1.0
    c_prev, log_a = 1.0, 0.0
    lowest, highest, log_p = np.inf, NEG_INF, 0.0
    for t in range(T_b):
        lo, hi = _band(t, T_b, L)
        if lo > hi:
            return np.nan
        yt, gt, inv = y[t], g[t], 1.0 / c_prev
        acc[:] = 0.0  # per class: sum of p g over the states that emit it
        c_t = z = 0.0
        for s in range(O + lo, O + hi + 1):
            p = (a_prev[s] + a_prev[s - 1] + skip[s] * a_prev[s - 2]) * inv
            v = yt[ext[s]] * p
            a_cur[s] = v
            c_t += v
            w = p * gt[s]
            acc[ext[s]] += w
            z += w
        if not (c_t >= TINY and z >= TINY):
            return np.nan
        a_cur[O + lo - 2] = a_cur[O + lo - 1] = a_cur[O + hi + 1] = a_cur[O + hi + 2] = 0.0
        log_p = log_a + m[t] + log_g[t] + np.log(z)
        lowest, highest = min(lowest, log_p), max(highest, log_p)
        e, inv_z = np.exp(m[t]), 1.0 / z
        for c in range(C):  # exp(lp) - gamma, each sequence by its weight in the loss
            grad[t, b, c] = scale * (yt[c] * e - acc[c] * inv_z)
        log_a += m[t] + np.log(c_t)
        c_prev = c_t
        a_prev, a_cur = a_cur, a_prev
    if not highest - lowest <= AGREE * max(1.0, abs(log_p)):
        return np.nan
    return log_p


@njit(cache=True, nogil=True, error_model="numpy")
def _log_space(lp, b, T_b, L, ext, skip, grad, scale):
    """The recursions of the module docstring as written, in log space: ``log P(l | x)`` of
    sequence ``b``, and its gradient rows of ``grad`` times ``scale``. The reference, and the
    path for what the scaled one cannot hold (an infinite loss, log-probabilities hundreds
    apart along the alignments)."""
    C = lp.shape[2]
    alpha = np.empty((T_b, L))
    beta = np.empty((T_b, L))
    acc = np.empty(C)  # lse over s of alpha + beta, per class

    # forward: alpha
    alpha[0, :] = NEG_INF
    alpha[0, 0] = lp[0, b, ext[O]]
    if L > 1:
        alpha[0, 1] = lp[0, b, ext[O + 1]]
    for t in range(1, T_b):
        for s in range(L):
            stay = alpha[t - 1, s]
            move = alpha[t - 1, s - 1] if s >= 1 else NEG_INF
            jump = alpha[t - 1, s - 2] if skip[O + s] != 0.0 else NEG_INF
            alpha[t, s] = _lse3(stay, move, jump) + lp[t, b, ext[O + s]]
    log_p = alpha[T_b - 1, L - 1]
    if L > 1:
        log_p = _lse2(log_p, alpha[T_b - 1, L - 2])

    # backward: beta
    last = T_b - 1
    beta[last, :] = NEG_INF
    beta[last, L - 1] = lp[last, b, ext[O + L - 1]]
    if L > 1:
        beta[last, L - 2] = lp[last, b, ext[O + L - 2]]
    for t in range(last - 1, -1, -1):
        for s in range(L):
            stay = beta[t + 1, s]
            move = beta[t + 1, s + 1] if s + 1 < L else NEG_INF
            jump = beta[t + 1, s + 2] if s + 2 < L and skip[O + s + 2] != 0.0 else NEG_INF
            beta[t, s] = _lse3(stay, move, jump) + lp[t, b, ext[O + s]]

    # gradient: exp(lp) - gamma, where gamma collects alpha * beta / y per class
    for t in range(T_b):
        acc[:] = NEG_INF
        for s in range(L):
            acc[ext[O + s]] = _lse2(acc[ext[O + s]], alpha[t, s] + beta[t, s])
        for c in range(C):
            y = np.float64(lp[t, b, c])  # float64 arithmetic whatever the input's dtype
            gamma = 0.0  # a class no alignment emits here (0 unless the loss is infinite)
            if acc[c] != NEG_INF or log_p == NEG_INF:
                gamma = np.exp(acc[c] - y - log_p)
            grad[t, b, c] = scale * (np.exp(y) - gamma)
    return log_p


@njit(cache=True, nogil=True, error_model="numpy")
def _extended(targets, b, S, blank, ext, skip):
    """``l'`` of sequence ``b`` into ``ext`` and ``k`` into ``skip``, both padded by ``O``."""
    ext[:] = blank
    skip[:] = 0.0
    for i in range(S):
        s = 2 * i + 1
        ext[O + s] = targets[b, i]
        if i > 0 and targets[b, i] != targets[b, i - 1]:
            skip[O + s] = 1.0  # over the blank between two different labels


@njit(cache=True, nogil=True, error_model="numpy")
def _ctc_rows(
    lp, targets, input_lengths, target_lengths, blank, scale, b0, b1, log_space, nll, grad
):
    """Sequences ``b0 <= b < b1``: ``nll[b] = loss_b`` and ``grad[:, b] = scale_b (exp(lp) -
    gamma)`` (0 past ``T_b``); the scaled path unless it cannot be trusted, or ``log_space``."""
    T, _, C = lp.shape
    L_max = 2 * targets.shape[1] + 1
    ext = np.empty(L_max + 2 * O, dtype=np.int64)
    skip = np.empty(L_max + 2 * O)
    y = np.empty((T, C))
    m = np.empty(T)
    g = np.empty((T, L_max + 2 * O))
    log_g = np.empty(T)
    a_prev = np.empty(L_max + 2 * O)
    a_cur = np.empty(L_max + 2 * O)
    acc = np.empty(C)
    for b in range(b0, b1):
        T_b, S = input_lengths[b], target_lengths[b]
        L = 2 * S + 1
        _extended(targets, b, S, blank, ext, skip)
        log_p = np.nan
        if not log_space:
            log_p = _scaled(
                lp, b, T_b, L, ext, skip, y, m, g, log_g, a_prev, a_cur, acc, grad, scale[b]
            )
        if np.isnan(log_p):
            log_p = _log_space(lp, b, T_b, L, ext, skip, grad, scale[b])
        nll[b] = -log_p
        grad[T_b:, b, :] = 0.0


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

    scale = np.ones(B) if reduction != "mean" else 1.0 / (B * np.maximum(tl, 1))
    nll, grad = _forward_backward(lp, padded, il, tl, blank, scale)
    if zero_infinity:
        infinite = np.isinf(nll)
        nll[infinite] = 0.0
        grad[:, infinite] = 0.0
    if reduction == "none":
        return nll, grad
    return float(np.sum(nll * scale)), grad


def _forward_backward(
    lp: np.ndarray,
    targets: np.ndarray,
    il: np.ndarray,
    tl: np.ndarray,
    blank: int,
    scale: np.ndarray,
    log_space: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``(loss_b (B,) float64, scale_b (exp(lp) - gamma) in lp's dtype)``, the sequences cut
    into one contiguous run per thread, of about equal work, when there is enough to pay."""
    T, B, C = lp.shape
    data = lp if lp.dtype in (np.float32, np.float64) else lp.astype(np.float64)
    data = np.ascontiguousarray(data)
    nll = np.empty(B)
    grad = np.empty(data.shape, dtype=data.dtype)
    work = np.cumsum(il * (2 * tl + 1 + C))  # cells of the recursions and the gradient
    n = max(1, min(thread_count(), B, int(work[-1]) // MIN_WORK if B else 0))
    # thread p ends after the sequence whose work crosses p / n of the whole
    cuts = [0, *(int(np.searchsorted(work, work[-1] * p / n)) + 1 for p in range(1, n)), B]

    def rows(p: int) -> None:
        args = (data, targets, il, tl, blank, scale, cuts[p], cuts[p + 1], log_space)
        _ctc_rows(*args, nll, grad)

    in_parallel(rows, n)
    return nll, grad.astype(lp.dtype, copy=False)


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
