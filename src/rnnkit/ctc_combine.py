"""Combining several CTC networks' outputs (an ensemble of transcribers).

Per step, before decoding (``combine_log_probs``), the members' class posteriors
``p_k(c | t)`` are averaged either as probabilities or as log-probabilities::

    "prob":     log p(c | t) = log (1/N) sum_k p_k(c | t)
    "logprob":  log p(c | t) = (1/N) sum_k log p_k(c | t) - log Z_t     (renormalised)

The first is a mixture (one member sure of a class is enough to keep it); the second a
product of experts (every member must agree). Either keeps greedy decoding a per-step
argmax, so a stream can emit what the whole file gives.

After decoding (``vote_words``): ROVER-like word voting (Fiscus 1997) over the members'
transcripts, aligned by edit distance to the medoid transcript (the one nearest all the
others); a slot keeps the word most members put there (the medoid's on a tie), and a word
the medoid lacks is inserted when more than half of the members have it there. It needs
the whole transcripts, so it is offline only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .errors import InputError
from .metrics_text import edit_distance

COMBINE = ("prob", "logprob", "vote")


def combine_log_probs(parts: Sequence[np.ndarray], how: str = "prob") -> np.ndarray:
    """``(T, C)`` log-probabilities of the combined members, from each member's ``(T, C)``
    (float64; one member: returned as is). ``how``: "prob" or "logprob" (module docstring)."""
    if len(parts) == 1:
        return parts[0]
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in parts])  # (N, T, C)
    if how == "prob":  # log of the mean of the probabilities, by log-sum-exp
        top = stacked.max(axis=0)
        return np.log(np.mean(np.exp(stacked - top), axis=0)) + top
    if how == "logprob":  # the mean log-probability, renormalised over the classes
        mean = stacked.mean(axis=0)
        top = mean.max(axis=-1, keepdims=True)
        return mean - (np.log(np.sum(np.exp(mean - top), axis=-1, keepdims=True)) + top)
    raise InputError(f"combine_log_probs: how must be 'prob' or 'logprob', got {how!r}")


def _alignment(ref: list[str], hyp: list[str]) -> list[tuple[int | None, str | None]]:
    """Levenshtein alignment of ``hyp`` to ``ref``: ``(ref index or None, hyp word or
    None)`` pairs in order (None index: a word inserted before the next ref word)."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), dtype=np.int64)
    d[:, 0], d[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(
                d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]), d[i - 1, j] + 1, d[i, j - 1] + 1
            )
    pairs: list[tuple[int | None, str | None]] = []
    i, j = n, m
    while i or j:
        if i and j and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append((i - 1, hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and d[i, j] == d[i - 1, j] + 1:
            pairs.append((i - 1, None))  # hyp lacks ref's word
            i -= 1
        else:
            pairs.append((None, hyp[j - 1]))  # hyp has a word ref lacks
            j -= 1
    return pairs[::-1]


def vote_words(transcripts: Sequence[str]) -> str:
    """One transcript from the members' (module docstring: ROVER-like voting)."""
    hyps = [t.split() for t in transcripts]
    if len(hyps) == 1:
        return " ".join(hyps[0])
    spread = [sum(edit_distance(h, g) for g in hyps) for h in hyps]
    medoid = hyps[int(np.argmin(spread))]
    slots: list[Counter] = [Counter() for _ in medoid]
    inserted: list[Counter] = [Counter() for _ in range(len(medoid) + 1)]  # before slot i
    for h in hyps:
        pairs = _alignment(medoid, h)
        slot = 0  # the next medoid slot
        gap: list[str] = []
        for index, word in pairs:
            if index is None:
                gap.append(str(word))
                continue
            if gap:
                inserted[slot][" ".join(gap)] += 1
                gap = []
            slots[index][word if word is not None else ""] += 1
            slot = index + 1
        if gap:
            inserted[slot][" ".join(gap)] += 1
    out: list[str] = []
    for i in range(len(medoid) + 1):
        if inserted[i]:
            words, count = inserted[i].most_common(1)[0]
            if 2 * count > len(hyps):
                out.append(words)
        if i < len(medoid):
            best = max(slots[i].values())
            winner = medoid[i] if slots[i][medoid[i]] == best else slots[i].most_common(1)[0][0]
            if winner:
                out.append(winner)
    return " ".join(out)
