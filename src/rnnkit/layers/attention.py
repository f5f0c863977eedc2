"""`Attention` (Bahdanau additive, Luong dot and general) and `AttentionPool`, with masks.

For a query ``q (B, Q)`` and keys ``k (T, B, K)``, scores ``e (T, B)``:

    additive (Bahdanau):  e_tb = v . tanh(W_q q_b + W_k k_tb)      W_q (A, Q), W_k (A, K), v (A,)
    dot (Luong):          e_tb = q_b . k_tb                         (Q == K)
    general (Luong):      e_tb = q_b W k_tb = u_b . k_tb, u = q W   W (Q, K)

    a_tb = exp(e_tb) m_tb / sum_s exp(e_sb) m_sb     (softmax over valid steps; a = 0 if masked)
    c_b = sum_t a_tb k_tb                            (context, (B, K))

Backward, from ``dc`` (and optionally ``da``):

    da_tb += k_tb . dc_b          dk_tb = a_tb dc_b + (from the scores)
    de_tb = a_tb (da_tb - sum_s a_sb da_sb)          (softmax; 0 at masked steps)

Many queries at once (``forward_train_many``: queries ``(S, B, Q)``, one per decoder step, all
known before attention, as in Luong et al.'s attention after the decoder RNN): the same
equations for every query, as batched products ``(B, S, K) @ (B, K, T)``; contexts ``(S, B, K)``
and weights ``(S, T, B)``.

``AttentionPool`` pools a sequence with a learned query: ``e_t = v . tanh(W x_t + b)``,
``y = sum_t a_t x_t``; it keeps the last weights ``(T, B)`` in ``last_weights`` for heat maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError, ShapeError
from .checks import (
    as_float_array,
    check_finite,
    check_lengths,
    check_shape,
    positive_int,
    resolve_dtype,
    seed_value,
    show,
    time_mask,
)
from .module import Module

KINDS = ("additive", "dot", "general")


def masked_softmax(e: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 of ``e (T, B)``, exactly 0 where ``mask`` is False."""
    e = np.where(mask, e, -np.inf)
    z = np.exp(e - e.max(axis=0, keepdims=True))  # stable: the largest valid score is 0
    return z / z.sum(axis=0, keepdims=True)


def softmax_backward(a: np.ndarray, da: np.ndarray) -> np.ndarray:
    """``de`` from ``da`` through ``a = softmax(e)``: ``a (da - sum(a da))``."""
    return a * (da - (a * da).sum(axis=0, keepdims=True))


def mask_from(name: str, mask: Any, lengths: Any, T: int, B: int) -> np.ndarray:
    """The ``(T, B)`` mask of valid steps from ``mask`` or ``lengths`` (not both)."""
    if mask is not None and lengths is not None:
        raise InputError(f"{name}: expected mask or lengths, got both")
    if mask is None:
        lens = None if lengths is None else check_lengths(name, lengths, B, T)
        return time_mask(lens, T, B)
    m = np.asarray(mask)
    check_shape(name, "mask", m, (T, B), ("T", "B"))
    if m.dtype != bool:
        raise InputError(f"{name}: mask must be booleans (True at valid steps), got {m.dtype}")
    if not m.any(axis=0).all():
        b = int(np.argmin(m.any(axis=0)))
        raise InputError(f"{name}: mask has no valid step for sequence {b}; expected at least one")
    return m


@dataclass(frozen=True)
class AttentionConfig:
    query_size: int
    key_size: int
    kind: str = "additive"
    attention_size: int | None = None
    dtype: str = "float32"


class Attention(Module):
    """``(context, weights), backward = att.forward_train(query, keys, mask=None, lengths=None)``;
    ``dquery, dkeys = backward(dcontext, dweights=None)``."""

    config_class = AttentionConfig

    def __init__(
        self,
        query_size: int,
        key_size: int,
        kind: str = "additive",
        attention_size: int | None = None,
        seed: int | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.query_size = positive_int("Attention", "query_size", query_size)
        self.key_size = positive_int("Attention", "key_size", key_size)
        if not isinstance(kind, str) or kind not in KINDS:
            raise InputError(f"Attention: kind must be one of {', '.join(KINDS)}, got {show(kind)}")
        if kind == "dot" and self.query_size != self.key_size:
            raise InputError(
                f"Attention: kind 'dot' needs query_size == key_size, got {query_size} and "
                f"{key_size}"
            )
        self.kind = kind
        A = key_size if attention_size is None else attention_size
        self.attention_size = positive_int("Attention", "attention_size", A)
        self.dtype = resolve_dtype("Attention", dtype)
        rng = np.random.default_rng(seed_value("Attention", seed))
        Q, K = self.query_size, self.key_size

        def uniform(shape, fan_in):
            bound = 1.0 / np.sqrt(fan_in)
            return rng.uniform(-bound, bound, shape).astype(self.dtype)

        if kind == "additive":
            self._add_param("weight_query", uniform((A, Q), Q))
            self._add_param("weight_key", uniform((A, K), K))
            self._add_param("v", uniform((A,), A))
        elif kind == "general":
            self._add_param("weight", uniform((Q, K), K))

    @property
    def config(self) -> AttentionConfig:
        A = self.attention_size if self.kind == "additive" else None
        return AttentionConfig(self.query_size, self.key_size, self.kind, A, self.dtype.name)

    def _prepare(self, query, keys, mask, lengths):
        q = as_float_array("Attention", "query", query, self.dtype)
        k = as_float_array("Attention", "keys", keys, self.dtype)
        check_shape("Attention", "keys", k, (None, None, self.key_size), ("T", "B", "K"))
        T, B, _ = k.shape
        if T == 0:
            raise InputError(f"Attention: keys have no steps, shape {tuple(k.shape)}")
        check_shape("Attention", "query", q, (B, self.query_size), ("B", "Q"))
        check_finite("Attention", "query", q)
        check_finite("Attention", "keys", k)
        return q, k, mask_from("Attention", mask, lengths, T, B)

    def _scores(self, q: np.ndarray, k: np.ndarray):
        """Scores ``e (T, B)`` and what their backward needs."""
        if self.kind == "additive":
            s = np.tanh(q @ self.params["weight_query"].T + k @ self.params["weight_key"].T)
            return s @ self.params["v"], s  # (T, B); s (T, B, A)
        u = q if self.kind == "dot" else q @ self.params["weight"]  # (B, K)
        return np.einsum("tbk,bk->tb", k, u), u

    def _scores_backward(self, de, q, k, cache):
        """``dq (B, Q)``, ``dk (T, B, K)`` from ``de (T, B)``; weight gradients accumulate."""
        if self.kind == "additive":
            s = cache  # (T, B, A)
            self.grads["v"] += np.einsum("tb,tba->a", de, s)
            dz = de[:, :, None] * self.params["v"] * (1 - s * s)  # back through tanh
            dzq = dz.sum(axis=0)  # (B, A): the query term is the same at every step
            self.grads["weight_query"] += dzq.T @ q
            A = self.attention_size
            self.grads["weight_key"] += dz.reshape(-1, A).T @ k.reshape(-1, self.key_size)
            return dzq @ self.params["weight_query"], dz @ self.params["weight_key"]
        u = cache
        du = np.einsum("tb,tbk->bk", de, k)  # (B, K)
        dk = de[:, :, None] * u[None]
        if self.kind == "dot":
            return du, dk
        self.grads["weight"] += q.T @ du
        return du @ self.params["weight"].T, dk

    def __call__(self, query, keys, mask=None, lengths=None):
        """Inference: ``context (B, K), weights (T, B)``."""
        q, k, m = self._prepare(query, keys, mask, lengths)
        a = masked_softmax(self._scores(q, k)[0], m)
        return np.einsum("tb,tbk->bk", a, k), a

    def forward_train(self, query, keys, mask=None, lengths=None):
        q, k, m = self._prepare(query, keys, mask, lengths)
        e, cache = self._scores(q, k)
        a = masked_softmax(e, m)  # (T, B)
        c = np.einsum("tb,tbk->bk", a, k)  # (B, K)

        def backward(dcontext, dweights=None):
            dc = as_float_array("Attention", "dcontext", dcontext, self.dtype)
            check_shape("Attention", "dcontext", dc, c.shape, ("B", "K"))
            da = np.einsum("tbk,bk->tb", k, dc)  # context = sum_t a_t k_t
            if dweights is not None:
                dw = as_float_array("Attention", "dweights", dweights, self.dtype)
                check_shape("Attention", "dweights", dw, a.shape, ("T", "B"))
                da = da + dw
            dk_context = a[:, :, None] * dc[None]  # (T, B, K)
            de = softmax_backward(a, da)  # 0 at masked steps, where a = 0
            dq, dk = self._scores_backward(de, q, k, cache)
            return dq, dk + dk_context

        return (c, a), backward

    # -- many queries ---------------------------------------------------------------------------
    def many(self, queries, keys, mask=None, lengths=None):
        """Inference for queries ``(S, B, Q)``: ``contexts (S, B, K), weights (S, T, B)``."""
        (c, a), _ = self.forward_train_many(queries, keys, mask, lengths)
        return c, a

    def forward_train_many(self, queries, keys, mask=None, lengths=None):
        """``(contexts, weights), backward``; ``dqueries, dkeys = backward(dcontexts)``."""
        k = as_float_array("Attention", "keys", keys, self.dtype)
        check_shape("Attention", "keys", k, (None, None, self.key_size), ("T", "B", "K"))
        T, B, _ = k.shape
        q = as_float_array("Attention", "queries", queries, self.dtype)
        check_shape("Attention", "queries", q, (None, B, self.query_size), ("S", "B", "Q"))
        m = mask_from("Attention", mask, lengths, T, B).T[:, None, :]  # (B, 1, T)
        qb, kb = q.transpose(1, 0, 2), k.transpose(1, 0, 2)  # (B, S, Q), (B, T, K)
        if self.kind == "additive":
            wq = qb @ self.params["weight_query"].T  # (B, S, A)
            wk = kb @ self.params["weight_key"].T  # (B, T, A)
            cache = np.tanh(wq[:, :, None, :] + wk[:, None, :, :])  # (B, S, T, A)
            e = cache @ self.params["v"]  # (B, S, T)
        else:
            cache = qb if self.kind == "dot" else qb @ self.params["weight"]  # u (B, S, K)
            e = cache @ kb.transpose(0, 2, 1)  # (B, S, T)
        e = np.where(m, e, -np.inf)
        z = np.exp(e - e.max(axis=2, keepdims=True))
        a = z / z.sum(axis=2, keepdims=True)  # (B, S, T), 0 at masked keys
        c = a @ kb  # (B, S, K)

        def backward(dcontexts):
            dc = as_float_array("Attention", "dcontexts", dcontexts, self.dtype)
            dcb = dc.transpose(1, 0, 2)  # (B, S, K)
            da = dcb @ kb.transpose(0, 2, 1)  # (B, S, T): c = a k
            dkb = a.transpose(0, 2, 1) @ dcb  # (B, T, K)
            de = a * (da - (a * da).sum(axis=2, keepdims=True))  # back through the softmax
            if self.kind == "additive":
                s = cache
                self.grads["v"] += np.einsum("bst,bsta->a", de, s)
                dz = de[..., None] * self.params["v"] * (1 - s * s)  # back through tanh
                dzq, dzk = dz.sum(axis=2), dz.sum(axis=1)  # (B, S, A), (B, T, A)
                A = self.attention_size
                self.grads["weight_query"] += dzq.reshape(-1, A).T @ qb.reshape(-1, self.query_size)
                self.grads["weight_key"] += dzk.reshape(-1, A).T @ kb.reshape(-1, self.key_size)
                dqb = dzq @ self.params["weight_query"]
                dkb = dkb + dzk @ self.params["weight_key"]
            else:
                u = cache
                du = de @ kb  # (B, S, K): e = u k
                dkb = dkb + de.transpose(0, 2, 1) @ u
                if self.kind == "dot":
                    dqb = du
                else:
                    K = self.key_size
                    self.grads["weight"] += qb.reshape(-1, self.query_size).T @ du.reshape(-1, K)
                    dqb = du @ self.params["weight"].T
            return dqb.transpose(1, 0, 2), dkb.transpose(1, 0, 2)

        return (c.transpose(1, 0, 2), a.transpose(1, 2, 0)), backward


@dataclass(frozen=True)
class AttentionPoolConfig:
    input_size: int
    attention_size: int
    dtype: str = "float32"


class AttentionPool(Module):
    """``AttentionPool(input_size, attention_size)``: ``(T, B, F)`` + lengths -> ``(B, F)``."""

    config_class = AttentionPoolConfig
    accepts_lengths = True
    pools_time = True

    def __init__(
        self,
        input_size: int,
        attention_size: int,
        seed: int | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.input_size = positive_int("AttentionPool", "input_size", input_size)
        self.attention_size = positive_int("AttentionPool", "attention_size", attention_size)
        self.dtype = resolve_dtype("AttentionPool", dtype)
        rng = np.random.default_rng(seed_value("AttentionPool", seed))
        F, A = self.input_size, self.attention_size
        b_in, b_v = 1.0 / np.sqrt(F), 1.0 / np.sqrt(A)
        self._add_param("weight", rng.uniform(-b_in, b_in, (A, F)).astype(self.dtype))
        self._add_param("bias", rng.uniform(-b_in, b_in, A).astype(self.dtype))
        self._add_param("v", rng.uniform(-b_v, b_v, A).astype(self.dtype))
        self.last_weights: np.ndarray | None = None  # (T, B), for explanation

    @property
    def config(self) -> AttentionPoolConfig:
        return AttentionPoolConfig(self.input_size, self.attention_size, self.dtype.name)

    def _forward(self, x, lengths):
        x = as_float_array("AttentionPool", "input", x, self.dtype)
        check_shape("AttentionPool", "input", x, (None, None, self.input_size), ("T", "B", "F"))
        T, B, _ = x.shape
        if T == 0:
            raise InputError(f"AttentionPool: input has no steps, shape {tuple(x.shape)}")
        check_finite("AttentionPool", "input", x)
        m = mask_from("AttentionPool", None, lengths, T, B)
        s = np.tanh(x @ self.params["weight"].T + self.params["bias"])  # (T, B, A)
        a = masked_softmax(s @ self.params["v"], m)  # (T, B)
        self.last_weights = a
        return x, s, a, np.einsum("tb,tbf->bf", a, x)

    def __call__(self, x, lengths=None) -> np.ndarray:
        return self._forward(x, lengths)[3]

    def forward_train(self, x, lengths=None):
        """``y, backward``; ``dx = backward(dy)`` with ``dy`` of shape (B, F)."""
        x, s, a, y = self._forward(x, lengths)

        def backward(dy):
            dy = as_float_array("AttentionPool", "dy", dy, self.dtype)
            if dy.shape != y.shape:
                raise ShapeError(
                    f"AttentionPool: expected dy of shape {y.shape}, got {tuple(dy.shape)}"
                )
            de = softmax_backward(a, np.einsum("tbf,bf->tb", x, dy))  # (T, B)
            self.grads["v"] += np.einsum("tb,tba->a", de, s)
            dz = de[:, :, None] * self.params["v"] * (1 - s * s)  # back through tanh
            A, F = self.attention_size, self.input_size
            self.grads["weight"] += dz.reshape(-1, A).T @ x.reshape(-1, F)
            self.grads["bias"] += dz.reshape(-1, A).sum(axis=0)
            return a[:, :, None] * dy[None] + dz @ self.params["weight"]  # (T, B, F)

        return y, backward
