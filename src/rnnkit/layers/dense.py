"""`Linear` and `Embedding`, with PyTorch's parameter names and initialisation.

``y, backward = layer.forward_train(x)``; ``dx = backward(dy)`` (``None`` for an embedding,
whose input is integer ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError, ShapeError
from .checks import (
    as_float_array,
    check_finite,
    check_shape,
    positive_int,
    resolve_dtype,
    seed_value,
)
from .module import Module


@dataclass(frozen=True)
class LinearConfig:
    in_features: int
    out_features: int
    bias: bool = True
    dtype: str = "float32"


class Linear(Module):
    """``y = x W^T + b`` over the last axis of ``x``; W is ``(out_features, in_features)``."""

    config_class = LinearConfig

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        seed: int | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.in_features = positive_int("Linear", "in_features", in_features)
        self.out_features = positive_int("Linear", "out_features", out_features)
        self.dtype = resolve_dtype("Linear", dtype)
        rng = np.random.default_rng(seed_value("Linear", seed))
        bound = 1.0 / np.sqrt(self.in_features)  # PyTorch's kaiming_uniform(a=sqrt(5)) bound
        shape = (self.out_features, self.in_features)
        self._add_param("weight", rng.uniform(-bound, bound, shape).astype(self.dtype))
        if bias:
            self._add_param(
                "bias", rng.uniform(-bound, bound, self.out_features).astype(self.dtype)
            )

    @property
    def config(self) -> LinearConfig:
        return LinearConfig(
            self.in_features, self.out_features, "bias" in self.params, self.dtype.name
        )

    def _prepare(self, x) -> np.ndarray:
        x = as_float_array("Linear", "input", x, self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ShapeError(
                f"Linear: expected input of shape (..., {self.in_features}), got {tuple(x.shape)}"
            )
        return x

    def _forward(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.params["weight"].T
        if "bias" in self.params:
            y += self.params["bias"]
        return y

    def __call__(self, x) -> np.ndarray:
        return self._forward(self._prepare(x))

    def forward_train(self, x):
        x = self._prepare(x)
        check_finite("Linear", "input", x)
        y = self._forward(x)

        def backward(dy):
            dy = np.asarray(dy, dtype=self.dtype)
            check_shape("Linear", "dy", dy, y.shape, tuple("?" * y.ndim))
            dy2 = dy.reshape(-1, self.out_features)
            self.grads["weight"] += dy2.T @ x.reshape(-1, self.in_features)
            if "bias" in self.grads:
                self.grads["bias"] += dy2.sum(axis=0)
            return dy @ self.params["weight"]

        return y, backward


@dataclass(frozen=True)
class EmbeddingConfig:
    num_embeddings: int
    embedding_dim: int
    dtype: str = "float32"


class Embedding(Module):
    """A lookup table ``weight[ids]``; weight is ``(num_embeddings, embedding_dim)``, ~ N(0, 1)."""

    config_class = EmbeddingConfig

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        seed: int | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.num_embeddings = positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = positive_int("Embedding", "embedding_dim", embedding_dim)
        self.dtype = resolve_dtype("Embedding", dtype)
        rng = np.random.default_rng(seed_value("Embedding", seed))
        shape = (self.num_embeddings, self.embedding_dim)
        self._add_param("weight", rng.standard_normal(shape).astype(self.dtype))

    @property
    def config(self) -> EmbeddingConfig:
        return EmbeddingConfig(self.num_embeddings, self.embedding_dim, self.dtype.name)

    def _ids(self, ids) -> np.ndarray:
        try:
            arr = np.asarray(ids)
        except (ValueError, TypeError):
            raise InputError(
                f"Embedding: expected a rectangular array of integer ids, got a ragged "
                f"{type(ids).__name__}"
            ) from None
        if arr.dtype.kind not in "iu":
            raise InputError(f"Embedding: expected integer ids, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.num_embeddings):
            raise InputError(
                f"Embedding: ids must lie in [0, {self.num_embeddings}), "
                f"got values from {arr.min()} to {arr.max()}"
            )
        return arr

    def __call__(self, ids) -> np.ndarray:
        return self.params["weight"][self._ids(ids)]

    def forward_train(self, ids):
        ids = self._ids(ids)
        y = self.params["weight"][ids]

        def backward(dy):
            dy = np.asarray(dy, dtype=self.dtype).reshape(-1, self.embedding_dim)
            np.add.at(self.grads["weight"], ids.reshape(-1), dy)  # repeated ids add up
            return None

        return y, backward
