"""Decoding a `Seq2SeqNet`: greedy and beam search, batched over sentences.

Both run the decoder one step at a time for a batch of sentences (sorted by length, so little
padding): ``B`` rows for greedy, ``B * beam`` for beam search, whose encoder keys and states are
repeated ``beam`` times.

- **greedy**: each row takes its most likely next token until ``<eos>``.
- **beam search**: each sentence keeps the ``beam`` best hypotheses by total log-probability;
  a finished hypothesis (it wrote ``<eos>``) keeps its place and score. At the end the best is
  chosen by score divided by ``length ** length_penalty`` (its tokens, ``<eos>`` included; 0:
  no normalisation, 1: the mean log-probability per token). With ``beam=1`` this is greedy
  search exactly (the same tokens: tested).
- **maximum length**: a sentence of ``n`` source tokens (``<eos>`` included) ends with
  ``<eos>`` forced after ``int(max_ratio * n) + 2`` tokens at most.

``attention=True`` also returns each translation's attention weights ``(target steps, source
steps)`` (None for a model without attention).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data.batches import bucket_batches, pad
from ..data.pairs import BOS, EOS
from ..losses import log_softmax
from .seq2seq import Seq2SeqNet


def _limits(lengths: np.ndarray, max_ratio: float) -> np.ndarray:
    return (max_ratio * lengths).astype(np.int64) + 2


def _repeat_state(state, k: int):
    if isinstance(state, tuple):
        return tuple(np.repeat(s, k, axis=1) for s in state)
    return np.repeat(state, k, axis=1)


def _pick_state(state, rows: np.ndarray):
    if isinstance(state, tuple):
        return tuple(s[:, rows] for s in state)
    return state[:, rows]


def _log_probs(net: Seq2SeqNet, ht: np.ndarray) -> np.ndarray:
    return log_softmax(np.asarray(net.out(ht), dtype=np.float64))


def _force_eos(logp: np.ndarray, rows: np.ndarray, keep_eos: bool) -> None:
    """Rows that may only write ``<eos>`` (finished, or at their length limit)."""
    eos = logp[rows, EOS] if keep_eos else 0.0
    logp[rows] = -np.inf
    logp[rows, EOS] = eos


def greedy_batch(
    net: Seq2SeqNet, src: np.ndarray, lengths: np.ndarray, max_ratio: float, attention: bool
):
    """Greedy translations of one padded batch ``src (S, B)``: token lists (no ``<eos>``) and,
    with ``attention``, weight matrices."""
    keys, state = net.encode(src, lengths)
    S, B = src.shape
    mask = np.arange(S)[:, None] < lengths[None, :]
    limit = _limits(lengths, max_ratio)
    feed = np.zeros((B, net.config.hidden_size), dtype=keys.dtype)
    tokens = np.full(B, BOS, dtype=np.int64)
    done = np.zeros(B, dtype=bool)
    out: list[list[int]] = [[] for _ in range(B)]
    weights: list[list[np.ndarray]] = [[] for _ in range(B)]
    t = 0
    while not done.all():
        feed, state, w = net.step(tokens, state, keys, mask, feed)
        logits = np.asarray(net.out(feed))  # the argmax of the logits is the log-softmax's
        _force_eos(logits, np.flatnonzero(~done & (t + 1 >= limit)), keep_eos=True)
        tokens = logits.argmax(axis=1)
        for b in np.flatnonzero(~done):
            if attention and w is not None:
                weights[b].append(w[: lengths[b], b])
            if tokens[b] == EOS:
                done[b] = True
            else:
                out[b].append(int(tokens[b]))
        t += 1
    return out, [np.array(ws) if ws else None for ws in weights]


def beam_batch(
    net: Seq2SeqNet,
    src: np.ndarray,
    lengths: np.ndarray,
    beam: int,
    max_ratio: float,
    length_penalty: float,
    attention: bool,
):
    """Beam search over one padded batch (module docstring); as `greedy_batch` returns."""
    keys, state = net.encode(src, lengths)
    S, B = src.shape
    K = beam
    N = B * K
    keys = np.repeat(keys, K, axis=1)  # (S, B*K, H): row b*K + k is sentence b's beam k
    state = _repeat_state(state, K)
    mask = np.repeat(np.arange(S)[:, None] < lengths[None, :], K, axis=1)
    limit = np.repeat(_limits(lengths, max_ratio), K)
    feed = np.zeros((N, net.config.hidden_size), dtype=keys.dtype)
    tokens = np.full(N, BOS, dtype=np.int64)
    scores = np.full((B, K), -np.inf)
    scores[:, 0] = 0.0  # one live hypothesis per sentence to start
    size = np.zeros((B, K), dtype=np.int64)  # tokens written, <eos> included
    done = np.zeros((B, K), dtype=bool)
    history = np.zeros((N, 0), dtype=np.int64)
    att = np.zeros((N, 0, S))
    base = (np.arange(B) * K)[:, None]
    t = 0
    while not done.all():
        feed, state, w = net.step(tokens, state, keys, mask, feed)
        logp = _log_probs(net, feed)
        flat_done = done.reshape(-1)
        _force_eos(logp, np.flatnonzero(flat_done), keep_eos=False)  # stays, score unchanged
        _force_eos(logp, np.flatnonzero(~flat_done & (t + 1 >= limit)), keep_eos=True)
        V = logp.shape[1]
        cand = scores[:, :, None] + logp.reshape(B, K, V)  # (B, K, V)
        cand = cand.reshape(B, K * V)
        if K == 1:
            pick = cand.argmax(axis=1)[:, None]
        else:
            top = np.argpartition(-cand, K - 1, axis=1)[:, :K]
            vals = np.take_along_axis(cand, top, axis=1)
            pick = np.take_along_axis(top, np.lexsort((top, -vals), axis=1), axis=1)
        parent, tok = pick // V, pick % V  # (B, K)
        rows = (base + parent).reshape(-1)
        scores = np.take_along_axis(cand, pick, axis=1)
        was_done = np.take_along_axis(done, parent, axis=1)
        size = np.take_along_axis(size, parent, axis=1) + ~was_done
        done = was_done | (tok == EOS)
        state = _pick_state(state, rows)
        feed = feed[rows]
        tokens = tok.reshape(-1)
        history = np.concatenate([history[rows], tokens[:, None]], axis=1)
        if attention and w is not None:
            att = np.concatenate([att[rows], w.T[rows][:, None, :]], axis=1)
        t += 1
    final = scores / np.maximum(size, 1) ** length_penalty if length_penalty else scores
    best = final.argmax(axis=1)
    out, weights = [], []
    for b in range(B):
        row = b * K + int(best[b])
        ids = history[row].tolist()
        n = ids.index(EOS) if EOS in ids else len(ids)
        out.append(ids[:n])
        weights.append(att[row, : n + 1, : lengths[b]] if attention and att.shape[1] else None)
    return out, weights


def translate_ids(
    net: Seq2SeqNet,
    sources: Sequence[np.ndarray],
    beam: int = 1,
    max_ratio: float = 2.0,
    length_penalty: float = 1.0,
    batch_size: int = 64,
    attention: bool = False,
) -> tuple[list[list[int]], list[np.ndarray | None]]:
    """Target ids of each source (ids with ``<eos>``), in the given order; greedy for
    ``beam=1``; and attention matrices when asked (else Nones)."""
    net.eval()
    out: list[list[int]] = [[] for _ in sources]
    weights: list[np.ndarray | None] = [None] * len(sources)
    rows = max(1, batch_size // beam)
    for index in bucket_batches([len(s) for s in sources], rows):
        src, lengths = pad(sources, index)
        if beam == 1:
            ids, ws = greedy_batch(net, src, lengths, max_ratio, attention)
        else:
            ids, ws = beam_batch(net, src, lengths, beam, max_ratio, length_penalty, attention)
        for b, i in enumerate(index):
            out[int(i)], weights[int(i)] = ids[b], ws[b]
    return out, weights
