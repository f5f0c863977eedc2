"""`Seq2SeqNet`: an encoder-decoder with attention (Luong et al. 2015; Bahdanau et al. 2015).

Encoder: source ids ``(S, B)`` -> embedding -> dropout -> a bidirectional recurrent stack of
``hidden_size / 2`` units per direction; its outputs ``k (S, B, H)`` (the two directions
concatenated) are the attention's keys, and its final states, the two directions concatenated
per layer, are the decoder's initial state (OpenNMT's ``brnn``: no bridge layer).

Decoder, default (Luong, attention after the recurrent step, no input feeding)::

    h_t = RNN(drop(E y_{t-1}), h_{t-1})                      (T, B, H): one fused call
    c_t = sum_s a_ts k_s,  a_t = softmax_s(score(h_t, k_s))  (T, B, H): one batched product
    h~_t = tanh(W_c [c_t; h_t])                              (T, B, H)
    logits_t = W_o drop(h~_t) + b_o                          (T, B, V)

Under teacher forcing every ``y_{t-1}`` is known, so the decoder RNN runs over the whole target
sequence in one engine call and attention is one batched product over all steps; nothing runs
in a Python loop over time. ``score`` is ``dot``, ``general`` (`rnnkit.layers.Attention`) or
``none`` (``h~_t = h_t``: no attention, to show what it adds). Options that need the step loop:

- ``input_feeding``: the previous ``h~_{t-1}`` is concatenated to the RNN's input (Luong 3.3);
- ``attention="additive"`` (Bahdanau): the query is the previous state ``h_{t-1}`` and the
  context enters the RNN, ``h_t = RNN([drop(E y_{t-1}); c_t], h_{t-1})``; then ``h~_t`` as above;
- a teacher-forcing ratio below 1 (scheduled sampling): each row's input is its own previous
  prediction (argmax) with probability ``1 - ratio``.

``tie_embeddings`` shares ``W_o`` with the decoder's embedding (needs ``embedding_dim ==
hidden_size``). Every backward is the children's closures chained in reverse (no gradient
formula of its own but the ``tanh`` and the concatenations' splits).
Decoding (greedy and beam search) is in `rnnkit.models.seq2seq_decode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..layers import GRU, LSTM, RNN, Attention, Dropout, Embedding, Linear, Module

RECURRENT = {"gru": GRU, "lstm": LSTM, "rnn": RNN}
ATTENTIONS = ("general", "dot", "additive", "none")


@dataclass(frozen=True)
class Seq2SeqConfig:
    source_vocab: int
    target_vocab: int
    embedding_dim: int = 256
    hidden_size: int = 256
    num_layers: int = 1
    cell: str = "gru"
    attention: str = "general"
    input_feeding: bool = False
    dropout: float = 0.1
    tie_embeddings: bool = False
    dtype: str = "float32"


class Seq2SeqNet(Module):
    """``logits, backward = net.forward_train(src, src_lengths, tgt_in)``; ``backward(dlogits)``.

    ``src`` ``(S, B)`` and ``tgt_in`` ``(T, B)`` are time-major int ids (``tgt_in`` starts with
    ``<bos>``), ``logits`` ``(T, B, V)``."""

    config_class = Seq2SeqConfig

    def __init__(
        self,
        source_vocab: int,
        target_vocab: int,
        embedding_dim: int = 256,
        hidden_size: int = 256,
        num_layers: int = 1,
        cell: str = "gru",
        attention: str = "general",
        input_feeding: bool = False,
        dropout: float = 0.1,
        tie_embeddings: bool = False,
        dtype: str = "float32",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if cell not in RECURRENT:
            raise InputError(f"Seq2Seq: cell must be one of {sorted(RECURRENT)}, got {cell!r}")
        if attention not in ATTENTIONS:
            raise InputError(f"Seq2Seq: attention must be one of {ATTENTIONS}, got {attention!r}")
        if hidden_size < 2 or hidden_size % 2:
            raise InputError(
                f"Seq2Seq: hidden_size must be even (half per encoder direction), got {hidden_size}"
            )
        if tie_embeddings and embedding_dim != hidden_size:
            raise InputError(
                f"Seq2Seq: tie_embeddings needs embedding_dim == hidden_size, got "
                f"{embedding_dim} and {hidden_size}"
            )
        if input_feeding and attention in ("none", "additive"):
            raise InputError(
                f"Seq2Seq: input_feeding needs dot or general attention, got {attention!r}"
            )
        self._config = Seq2SeqConfig(
            source_vocab,
            target_vocab,
            embedding_dim,
            hidden_size,
            num_layers,
            cell,
            attention,
            input_feeding,
            dropout,
            tie_embeddings,
            dtype,
        )
        s = [int(x) for x in np.random.SeedSequence(seed).generate_state(9)]
        H, E = hidden_size, embedding_dim
        rnn = RECURRENT[cell]
        between = dropout if num_layers > 1 else 0.0
        self.src_embed = Embedding(source_vocab, E, seed=s[0], dtype=dtype)
        self.encoder = rnn(
            E, H // 2, num_layers, dropout=between, bidirectional=True, seed=s[1], dtype=dtype
        )
        self.tgt_embed = Embedding(target_vocab, E, seed=s[2], dtype=dtype)
        extra = H if (input_feeding or attention == "additive") else 0
        self.decoder = rnn(E + extra, H, num_layers, dropout=between, seed=s[3], dtype=dtype)
        self.children = {
            "src_embed": self.src_embed,
            "encoder": self.encoder,
            "tgt_embed": self.tgt_embed,
            "decoder": self.decoder,
        }
        self.attend: Attention | None = None
        self.combine: Linear | None = None
        if attention != "none":
            self.attend = Attention(H, H, kind=attention, seed=s[4], dtype=dtype)
            self.combine = Linear(2 * H, H, bias=False, seed=s[5], dtype=dtype)
            self.children.update({"attend": self.attend, "combine": self.combine})
        self.out = Linear(H, target_vocab, seed=s[6], dtype=dtype)
        self.children["out"] = self.out
        if tie_embeddings:
            self.out.params["weight"] = self.tgt_embed.params["weight"]
            self.out.grads["weight"] = self.tgt_embed.grads["weight"]
        self.drop_src = Dropout(dropout, seed=s[7])
        self.drop_tgt = Dropout(dropout, seed=s[8])
        self.drop_out = Dropout(dropout, seed=s[8] + 1)
        self.children.update(
            {"drop_src": self.drop_src, "drop_tgt": self.drop_tgt, "drop_out": self.drop_out}
        )
        self.teacher_forcing = 1.0  # the share of steps fed the reference (the estimator sets it)
        self.rng = np.random.default_rng(s[8] + 2)  # scheduled sampling's draws

    @property
    def config(self) -> Seq2SeqConfig:
        return self._config

    @property
    def is_lstm(self) -> bool:
        return self._config.cell == "lstm"

    @property
    def stepwise(self) -> bool:
        """Whether training needs the Python loop over decoder steps."""
        c = self._config
        return c.input_feeding or c.attention == "additive" or self.teacher_forcing < 1.0

    # -- encoder -------------------------------------------------------------------------------
    def bridge(self, state: Any) -> Any:
        """The encoder's final state ``(2L, B, H/2)`` as the decoder's ``(L, B, H)``."""
        if isinstance(state, tuple):  # LSTM: (h, c)
            return tuple(self.bridge(part) for part in state)
        L2, B, half = state.shape
        return state.reshape(L2 // 2, 2, B, half).transpose(0, 2, 1, 3).reshape(L2 // 2, B, -1)

    def unbridge(self, dstate: Any) -> Any:
        """`bridge`'s backward: a reshuffle, so the gradient is reshuffled back."""
        if isinstance(dstate, tuple):
            return tuple(self.unbridge(part) for part in dstate)
        L, B, H = dstate.shape
        return dstate.reshape(L, B, 2, H // 2).transpose(0, 2, 1, 3).reshape(2 * L, B, H // 2)

    def encode(self, src: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, Any]:
        """Inference: keys ``(S, B, H)`` and the decoder's initial state."""
        keys, state = self.encoder(self.src_embed(src), lengths=lengths)
        return keys, self.bridge(state)

    def _encode_train(self, src, lengths):
        x, back_embed = self.src_embed.forward_train(src)
        x, back_drop = self.drop_src.forward_train(x)
        keys, state, back_rnn = self.encoder.forward_train(x, lengths=lengths)

        def backward(dkeys, dstate):
            dx, _ = back_rnn(dkeys, self.unbridge(dstate))
            back_embed(back_drop(dx))

        return keys, self.bridge(state), backward

    # -- the attentional output ----------------------------------------------------------------
    def _output_train(self, h, c):
        """``h~ = tanh(W_c [c; h])`` (or ``h`` without attention) and its backward."""
        if self.combine is None:
            return h, lambda dht: (None, dht)
        z, back_combine = self.combine.forward_train(np.concatenate([c, h], axis=-1))
        ht = np.tanh(z)
        H = h.shape[-1]

        def backward(dht):
            dch = back_combine(dht * (1 - ht * ht))  # back through tanh
            return dch[..., :H], dch[..., H:]

        return ht, backward

    def output(self, h: np.ndarray, c: np.ndarray | None) -> np.ndarray:
        """Inference: ``h~`` from the RNN's output and the context."""
        if self.combine is None or c is None:
            return h
        return np.tanh(self.combine(np.concatenate([c, h], axis=-1)))

    # -- training forward ----------------------------------------------------------------------
    def forward_train(self, src, src_lengths, tgt_in, tgt_mask=None):
        """``logits, backward``; with ``tgt_mask`` ``(T, B)`` (True at real target steps) the
        logits of those steps only, ``(N, V)`` in row-major order of the mask: the output
        layer, the costliest product, skips the padding."""
        keys, state, back_enc = self._encode_train(src, src_lengths)
        if self.stepwise:
            ht, back_dec = self._decode_steps(keys, state, src_lengths, tgt_in)
        else:
            ht, back_dec = self._decode_fused(keys, state, src_lengths, tgt_in)
        d, back_drop = self.drop_out.forward_train(ht)
        picked = d if tgt_mask is None else d[tgt_mask]
        logits, back_out = self.out.forward_train(picked)  # (T, B, V) or (N, V)

        def backward(dlogits):
            dd = back_out(dlogits)
            if tgt_mask is not None:
                full = np.zeros_like(d)
                full[tgt_mask] = dd
                dd = full
            dkeys, dstate = back_dec(back_drop(dd))
            back_enc(dkeys, dstate)

        return logits, backward

    def _decode_fused(self, keys, state, lengths, tgt_in):
        """Teacher forcing, attention after the RNN: one RNN call, one batched attention."""
        x, back_embed = self.tgt_embed.forward_train(tgt_in)
        x, back_drop = self.drop_tgt.forward_train(x)
        h, _, back_rnn = self.decoder.forward_train(x, state=state)  # (T, B, H)
        if self.attend is None:
            c, back_att = None, None
        else:
            (c, _), back_att = self.attend.forward_train_many(h, keys, lengths=lengths)
        ht, back_output = self._output_train(h, c)

        def backward(dht):
            dc, dh = back_output(dht)
            dkeys = np.zeros_like(keys)
            if back_att is not None:
                dq, dkeys = back_att(dc)
                dh = dh + dq  # h is the query and part of h~: gradients add
            dx, dstate = back_rnn(dh)
            back_embed(back_drop(dx))
            return dkeys, dstate

        return ht, backward

    def _decode_steps(self, keys, state, lengths, tgt_in):
        """The step loop: input feeding, additive attention, scheduled sampling."""
        T, B = tgt_in.shape
        H = self._config.hidden_size
        feed = np.zeros((B, H), dtype=keys.dtype)
        tokens = tgt_in[0]
        outs, backs = [], []
        for t in range(T):
            if t > 0:
                tokens = self._next_inputs(tgt_in[t], outs[-1])
            step_out, state, back = self._step_train(tokens, state, keys, lengths, feed)
            outs.append(step_out)
            backs.append(back)
            feed = step_out
        ht = np.stack(outs)  # (T, B, H)

        def backward(dht):
            dkeys = np.zeros_like(keys)
            dstate = None
            dfeed = np.zeros((B, H), dtype=keys.dtype)
            for t in range(T - 1, -1, -1):
                dstate, dfeed, dk = backs[t](dht[t] + dfeed, dstate)
                dkeys += dk
            return dkeys, dstate

        return ht, backward

    def _next_inputs(self, reference: np.ndarray, prev_ht: np.ndarray) -> np.ndarray:
        if self.teacher_forcing >= 1.0:
            return reference
        own = np.asarray(self.out(prev_ht)).argmax(axis=-1)  # the model's own last guess
        assert self.rng is not None
        use_own = self.rng.random(len(reference)) >= self.teacher_forcing
        return np.where(use_own, own, reference)

    def _step_train(self, tokens, state, keys, lengths, feed):
        """One decoder step, training: ``h~_t, state, backward(dht, dstate)``."""
        x, back_embed = self.tgt_embed.forward_train(tokens)  # (B, E)
        x, back_drop = self.drop_tgt.forward_train(x)
        kind = self._config.attention
        back_pre = None
        if kind == "additive":
            query = (state[0] if self.is_lstm else state)[-1]  # the top layer's h_{t-1}
            (c_pre, _), back_pre = self.attend.forward_train(query, keys, lengths=lengths)
            x = np.concatenate([x, c_pre], axis=-1)
        elif self._config.input_feeding:
            x = np.concatenate([x, feed], axis=-1)
        h, new_state, back_rnn = self.decoder.forward_train(x[None], state=state)
        h = h[0]  # (B, H)
        back_post = None
        if kind == "additive":
            c = c_pre
        elif self.attend is not None:
            (c, _), back_post = self.attend.forward_train(h, keys, lengths=lengths)
        else:
            c = None
        ht, back_output = self._output_train(h, c)
        E = self._config.embedding_dim

        def backward(dht, dstate):
            dkeys = np.zeros_like(keys)
            dc, dh = back_output(dht)
            if back_post is not None:
                dq, dkeys = back_post(dc)
                dh = dh + dq
            dx, dprev = back_rnn(dh[None], dstate)
            dx = dx[0]
            dfeed = np.zeros_like(dht)
            if back_pre is not None:
                dx_c = dx[:, E:] + dc  # c_pre feeds the RNN and h~
                dq, dk = back_pre(dx_c)
                dkeys = dkeys + dk
                if self.is_lstm:
                    dprev[0][-1] += dq
                else:
                    dprev[-1] += dq
            elif self._config.input_feeding:
                dfeed = dx[:, E:]
            back_embed(back_drop(dx[:, :E]))
            return dprev, dfeed, dkeys

        return ht, new_state, backward

    # -- inference step ------------------------------------------------------------------------
    def step(self, tokens, state, keys, mask, feed):
        """One decoder step, inference: ``h~ (N, H), state, weights (S, N) or None``; ``mask``
        ``(S, N)`` marks the valid source steps, ``feed`` the previous ``h~``."""
        x = self.tgt_embed(tokens)
        kind = self._config.attention
        weights = None
        if kind == "additive":
            query = (state[0] if self.is_lstm else state)[-1]
            c, weights = self.attend(query, keys, mask=mask)
            x = np.concatenate([x, c], axis=-1)
        elif self._config.input_feeding:
            x = np.concatenate([x, feed], axis=-1)
        h, state = self.decoder(x[None], state=state)
        h = h[0]
        if kind not in ("additive", "none"):
            c, weights = self.attend(h, keys, mask=mask)
        elif kind == "none":
            c = None
        return self.output(h, c), state, weights

    def teacher_forced(self, src, src_lengths, tgt_in) -> np.ndarray:
        """Inference logits under teacher forcing (validation loss): no dropout, no sampling."""
        keys, state = self.encode(src, src_lengths)
        if not (self._config.input_feeding or self._config.attention == "additive"):
            h, _ = self.decoder(self.tgt_embed(tgt_in), state=state)
            c = None if self.attend is None else self.attend.many(h, keys, lengths=src_lengths)[0]
            return np.asarray(self.out(self.output(h, c)))
        mask = np.arange(keys.shape[0])[:, None] < np.asarray(src_lengths)[None, :]
        feed = np.zeros((src.shape[1], self._config.hidden_size), dtype=keys.dtype)
        outs = []
        for t in range(tgt_in.shape[0]):
            feed, state, _ = self.step(tgt_in[t], state, keys, mask, feed)
            outs.append(feed)
        return np.asarray(self.out(np.stack(outs)))
