"""`LanguageModel`: embedding, a recurrent stack, a linear softmax head.

    e_t = E[w_t]                          (dropout in training)
    h_t = Recurrent(e_1..t)               (stacked RNN, GRU or LSTM; dropout between layers)
    logits_t = W_out dropout(h_t) + b     (W_out = E when the weights are tied)

Keys follow PyTorch's module names: ``embedding.weight``, ``rnn.weight_ih_l0``, ...,
``head.weight``, ``head.bias`` (with tied weights ``head.weight`` is ``embedding.weight``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import GRU, LSTM, RNN, Embedding, Linear, Module
from ..layers.module import StreamHook

RECURRENT = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


@dataclass(frozen=True)
class LMConfig:
    vocab_size: int
    cell: str = "lstm"
    hidden_size: int = 512
    num_layers: int = 2
    embedding_size: int = 64
    dropout: float = 0.1
    tie_weights: bool = False
    dtype: str = "float32"


def _dropout_mask(rng: np.random.Generator, shape: tuple, p: float, dtype) -> np.ndarray:
    keep = 1.0 - p
    return (rng.random(shape) < keep).astype(dtype) / keep


class LanguageModel(Module):
    """Next-token logits for a batch of token streams; ids ``(T, B)`` in, ``(T, B, V)`` out."""

    config_class = LMConfig

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        hidden_size: int = 512,
        num_layers: int = 2,
        embedding_size: int = 64,
        dropout: float = 0.1,
        tie_weights: bool = False,
        dtype: str = "float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if cell not in RECURRENT:
            raise InputError(
                f"LanguageModel: unknown cell {cell!r}; expected one of {sorted(RECURRENT)}"
            )
        if tie_weights and embedding_size != hidden_size:
            raise InputError(
                f"LanguageModel: tied weights need embedding_size == hidden_size, got "
                f"{embedding_size} and {hidden_size}"
            )
        seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(4)]
        self.cell, self.dropout, self.tie_weights = cell, float(dropout), bool(tie_weights)
        self.embedding = Embedding(vocab_size, embedding_size, seed=seeds[0], dtype=dtype)
        self.rnn = RECURRENT[cell](
            embedding_size, hidden_size, num_layers, dropout=dropout, seed=seeds[1], dtype=dtype
        )
        self.head = Linear(hidden_size, vocab_size, seed=seeds[2], dtype=dtype)
        if self.tie_weights:  # one array, two uses; gradients from both add up in one buffer
            self.head.params["weight"] = self.embedding.params["weight"]
            self.head.grads["weight"] = self.embedding.grads["weight"]
        self.rng = np.random.default_rng(seeds[3])
        self.children = {"embedding": self.embedding, "rnn": self.rnn, "head": self.head}

    @property
    def config(self) -> LMConfig:
        return LMConfig(
            self.embedding.num_embeddings,
            self.cell,
            self.rnn.hidden_size,
            self.rnn.num_layers,
            self.embedding.embedding_dim,
            self.dropout,
            self.tie_weights,
            self.rnn.dtype.name,
        )

    @classmethod
    def from_config(cls, config: Any) -> LanguageModel:
        return cls(**vars(config))

    @property
    def dtype(self) -> np.dtype:
        return self.rnn.dtype

    @property
    def vocab_size(self) -> int:
        return self.embedding.num_embeddings

    def initial_state(self, batch: int):
        return self.rnn.initial_state(batch)

    def __call__(self, ids: np.ndarray, state=None):
        """Inference: ``logits (T, B, V), state``; no dropout."""
        h, state = self.rnn(self.embedding(ids), state)
        return self.head(h), state

    takes_ids = True  # a Stream feeds it token ids

    def stream_forward(self, ids: np.ndarray, state=None):
        """Ids ``(T, B)`` to logits ``(T, B, V)`` from a carried state (for `Stream`)."""
        return self(ids, state)

    def stream_hook(self) -> StreamHook:
        """The fast stream step (`rnnkit.stream`): an embedding row in, the stack, the head."""
        table = self.embedding.params["weight"]  # (V, E): read at each step, so updates show
        V = self.vocab_size

        def encode(token: Any) -> np.ndarray | None:
            if not isinstance(token, (int, np.integer)) or not 0 <= token < V:
                return None  # the general path reports what is wrong
            return table[token]

        def encode_many(tokens: Any) -> np.ndarray | None:
            t = np.asarray(tokens)
            if t.ndim != 1 or t.size == 0 or t.dtype.kind not in "iu":
                return None
            if t.min() < 0 or t.max() >= V:
                return None
            return table[t]

        head = self.head.params

        def decode(h: np.ndarray) -> np.ndarray:
            if h.ndim == 1:
                return decode(h[None])[0]
            logits = h @ head["weight"].T  # works on quantized weights too
            if "bias" in head:
                logits += head["bias"]
            return logits

        return StreamHook(self.rnn, encode, encode_many, decode)

    def forward_train(self, ids: np.ndarray, state=None):
        """``logits, state, backward``; ``backward(dlogits)`` accumulates every gradient.

        The state is an input only: truncated BPTT stops at the start of the chunk.
        """
        e, emb_backward = self.embedding.forward_train(ids)  # (T, B, E)
        drop_e = drop_h = None
        if self.dropout > 0:
            assert self.rng is not None
            drop_e = _dropout_mask(self.rng, e.shape, self.dropout, e.dtype)
            e = e * drop_e
        h, state, rnn_backward = self.rnn.forward_train(e, state)  # (T, B, H)
        if self.dropout > 0:
            assert self.rng is not None
            drop_h = _dropout_mask(self.rng, h.shape, self.dropout, h.dtype)
            h = h * drop_h
        logits, head_backward = self.head.forward_train(h)  # (T, B, V)

        def backward(dlogits: np.ndarray) -> None:
            dh = head_backward(dlogits)
            if drop_h is not None:
                dh *= drop_h
            de, _ = rnn_backward(dh)
            if drop_e is not None:
                de *= drop_e
            emb_backward(de)

        return logits, state, backward
