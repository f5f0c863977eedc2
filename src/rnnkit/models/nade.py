"""`Nade`: a distribution over the K binary keys of one time step, one key after another
(Larochelle and Murray 2011), its biases given per step by a recurrent network (the RNN-NADE
of Boulanger-Lewandowski et al. 2012).

For one step with visible keys ``v`` (K,) and per-step biases ``b`` (K,), ``c`` (H,)::

    a_k   = c + W[:, :k] v[:k]              the hidden pre-activation seen by key k  (H,)
    g_k   = sigmoid(a_k)
    z_k   = b_k + V[k] . g_k                 the logit of key k given the keys below it
    p(v)  = prod_k sigmoid(z_k)^v_k (1 - sigmoid(z_k))^(1 - v_k)

so ``-log p(v)`` is the binary cross-entropy of the logits ``z`` against ``v``, and the
probabilities of all 2^K key sets sum to 1 (each factor is a Bernoulli). With ``v`` known
(training, scoring), all ``a_k`` come from one product with a strictly lower-triangular
weight: ``A = v @ Wl`` where ``Wl[j, k*H:(k+1)*H] = W[:, j]`` for ``j < k``, else 0.
Sampling goes key by key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..layers import Module


@dataclass(frozen=True)
class NadeConfig:
    keys: int
    hidden_size: int
    dtype: str = "float32"


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # never overflows


class Nade(Module):
    """``Nade(keys, hidden_size)``: parameters ``W`` (H, K) and ``V`` (K, H); the biases come
    from the caller, one set per step. Inputs are flattened steps: ``v`` (N, K)."""

    config_class = NadeConfig

    def __init__(
        self, keys: int, hidden_size: int, seed: int | None = None, dtype: str = "float32"
    ) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        W = rng.normal(0.0, 1.0 / np.sqrt(keys), (hidden_size, keys))
        V = rng.normal(0.0, 1.0 / np.sqrt(hidden_size), (keys, hidden_size))
        self._add_param("W", W.astype(dtype))
        self._add_param("V", V.astype(dtype))
        self.keys, self.hidden_size = keys, hidden_size

    @property
    def config(self) -> NadeConfig:
        return NadeConfig(self.keys, self.hidden_size, self.params["W"].dtype.name)

    def _lower(self) -> np.ndarray:
        """``Wl`` (K, K*H): row j holds ``W[:, j]`` in the blocks of the keys above j."""
        W = self.params["W"]
        K, H = self.keys, self.hidden_size
        mask = np.tri(K, K, -1, dtype=W.dtype).T  # mask[j, k] = 1 for j < k
        return (mask[:, :, None] * W.T[:, None, :]).reshape(K, K * H)

    def forward_train(self, v: np.ndarray, b: np.ndarray, c: np.ndarray):
        """The logits ``z`` (N, K) of each key given the keys below it, and ``backward(dz)``
        that returns ``(db, dc)`` and adds to the gradients of ``W`` and ``V``."""
        N, K, H = len(v), self.keys, self.hidden_size
        V = self.params["V"]
        a = (v @ self._lower()).reshape(N, K, H)  # (N, K, H)
        a += c[:, None, :]
        g = sigmoid(a)
        z = b + np.einsum("nkh,kh->nk", g, V)  # (N, K)

        def backward(dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            self.grads["V"] += np.einsum("nk,nkh->kh", dz, g)
            da = dz[:, :, None] * V[None]  # through V[k] . g_k
            da *= g * (1.0 - g)  # backprop through the sigmoid
            dc = da.sum(axis=1)  # c reaches every key's a_k
            # dW[:, j] = sum_n v[n, j] sum_{k > j} da[n, k]: the transpose of the lower product
            M = (v.T @ da.reshape(N, K * H)).reshape(K, K, H)  # (j, k, H)
            mask = np.tri(K, K, -1, dtype=M.dtype).T
            self.grads["W"] += np.einsum("jk,jkh->hj", mask, M)
            return dz, dc

        return z, backward

    def logits(self, v: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        """The conditional logits of the keys of ``v`` (N, K), as in training."""
        return self.forward_train(v, b, c)[0]

    def sample(
        self, b: np.ndarray, c: np.ndarray, temperature: float, rng: np.random.Generator
    ) -> np.ndarray:
        """One key set per row of the biases ``b`` (N, K), ``c`` (N, H), key by key, each
        conditional logit divided by ``temperature`` (0: the likelier value of each key)."""
        W, V = self.params["W"], self.params["V"]
        a = c.astype(np.float64).copy()
        v = np.zeros(b.shape, dtype=np.uint8)
        for k in range(self.keys):
            z = b[:, k] + sigmoid(a) @ V[k]
            if temperature == 0:
                on = z > 0
            else:
                on = rng.random(len(z)) < sigmoid(z / temperature)
            v[:, k] = on
            a += on[:, None] * W[:, k]
        return v
