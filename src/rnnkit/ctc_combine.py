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

Weighted voting (``vote_words(transcripts, confidences)``; ``combine="weighted"``): as in
ROVER's confidence scoring, each member's vote for a word in a slot weighs that word's
confidence (`word_confidences`: the geometric mean over its letters of the letter's peak
probability on the frames that a Viterbi forced alignment of the transcript to the member's
posteriors gives it, `ctc_align`), and a member that has no word in the slot votes for none
with the mean confidence of the slot's word votes; the heaviest choice wins (the medoid's on
a tie). With equal confidences it is the plain vote. Insertions are kept, as in the plain
vote, when more than half of the members have them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .errors import InputError
from .metrics_text import edit_distance

COMBINE = ("prob", "logprob", "vote", "weighted")
VOTES = ("vote", "weighted")  # the ways that combine transcripts, not posteriors (offline)


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


def vote_words(
    transcripts: Sequence[str], confidences: Sequence[Sequence[float]] | None = None
) -> str:
    """One transcript from the members' (module docstring: ROVER-like voting); with
    ``confidences`` (per member, one per word of its transcript) each vote weighs its word's
    confidence (weighted voting)."""
    hyps = [t.split() for t in transcripts]
    if len(hyps) == 1:
        return " ".join(hyps[0])
    if confidences is None:
        confidences = [[1.0] * len(h) for h in hyps]
    for h, c in zip(hyps, confidences, strict=True):
        if len(c) != len(h):
            raise InputError(f"vote_words: {len(h)} words but {len(c)} confidences")
    spread = [sum(edit_distance(h, g) for g in hyps) for h in hyps]
    medoid = hyps[int(np.argmin(spread))]
    slots: list[dict[str, float]] = [{} for _ in medoid]  # word -> summed confidence
    nulls = [0] * len(medoid)  # members with no word in the slot
    inserted: list[Counter] = [Counter() for _ in range(len(medoid) + 1)]  # before slot i
    for h, conf in zip(hyps, confidences, strict=True):
        pairs = _alignment(medoid, h)
        slot, j = 0, 0  # the next medoid slot; the next word of h
        gap: list[str] = []
        for index, word in pairs:
            if index is None:
                gap.append(str(word))
                j += 1
                continue
            if gap:
                inserted[slot][" ".join(gap)] += 1
                gap = []
            if word is None:
                slots[index].setdefault("", 0.0)  # its weight is set below
                nulls[index] += 1
            else:
                slots[index][word] = slots[index].get(word, 0.0) + float(conf[j])
                j += 1
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
            votes = dict(slots[i])
            if nulls[i]:  # no word: as heavy as the slot's mean word vote, per member
                votes[""] = nulls[i] * sum(votes.values()) / (len(hyps) - nulls[i])
            best = max(votes.values())
            if votes.get(medoid[i], -1.0) == best:
                winner = medoid[i]
            else:
                winner = next(w for w, v in votes.items() if v == best)
            if winner:
                out.append(winner)
    return " ".join(out)


def vote_members(
    texts: Sequence[Sequence[str]], confidences: Sequence[Sequence[Sequence[float]]] | None = None
) -> list[str]:
    """`vote_words` per utterance over the members' transcripts ``texts[member][utterance]``
    (and their word confidences ``confidences[member][utterance]``, for weighted voting)."""
    per_utterance = list(zip(*texts, strict=True))
    if confidences is None:
        return [vote_words(t) for t in per_utterance]
    confs = list(zip(*confidences, strict=True))
    return [vote_words(t, c) for t, c in zip(per_utterance, confs, strict=True)]


def ctc_align(log_probs: np.ndarray, labels: Sequence[int]) -> list[tuple[int, int]] | None:
    """Viterbi forced alignment of ``labels`` (class indices, blank 0 excluded) to ``(T, C)``
    log-probabilities: for each label, the frames ``[start, end)`` of the most probable CTC
    path that spells exactly ``labels``; None when ``T`` is too short to spell them."""
    lp = np.asarray(log_probs, dtype=np.float64)
    T = lp.shape[0]
    z = np.zeros(2 * len(labels) + 1, dtype=np.int64)  # blank, l1, blank, l2, ..., blank
    z[1::2] = labels
    S = len(z)
    skip = np.zeros(S, dtype=bool)  # s may come from s - 2: a label unlike the one before
    skip[3::2] = z[3::2] != z[1:-2:2]
    score = np.full(S, -np.inf)
    score[0] = lp[0, z[0]] if T else -np.inf
    if S > 1 and T:
        score[1] = lp[0, z[1]]
    came = np.zeros((T, S), dtype=np.int8)  # 0: stayed, 1: from s - 1, 2: from s - 2
    for t in range(1, T):
        moves = np.full((3, S), -np.inf)  # from s (stay), s - 1 and s - 2
        moves[0] = score
        moves[1, 1:] = score[:-1]
        moves[2, 2:] = np.where(skip[2:], score[:-2], -np.inf)
        came[t] = np.argmax(moves, axis=0)
        score = moves[came[t], np.arange(S)] + lp[t, z]
    ends = [S - 1] if S == 1 else [S - 1, S - 2]
    s = max(ends, key=lambda e: score[e])
    if not T or not np.isfinite(score[s]):
        return None
    state = np.zeros(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        state[t] = s
        s -= int(came[t, s])
    spans = []
    for u in range(len(labels)):
        frames = np.flatnonzero(state == 2 * u + 1)
        spans.append((int(frames[0]), int(frames[-1]) + 1))
    return spans


def word_confidences(
    log_probs: np.ndarray, words: Sequence[Sequence[int]], separator: int | None
) -> list[float]:
    """A confidence in (0, 1] for each word of a transcript, given as its words' class indices
    (one each for word units), spelt with ``separator`` (the space's class; None: nothing)
    between them: the geometric mean over a word's labels of each label's peak probability on
    its frames of the forced alignment (`ctc_align`); all 0 when the transcript cannot be
    aligned to the ``(T, C)`` log-probabilities."""
    lp = np.asarray(log_probs, dtype=np.float64)
    labels: list[int] = []
    where: list[list[int]] = []  # positions in labels, per word
    for k, word in enumerate(words):
        if k and separator is not None:
            labels.append(separator)
        where.append(list(range(len(labels), len(labels) + len(word))))
        labels += list(word)
    spans = ctc_align(lp, labels)
    if spans is None:
        return [0.0] * len(words)
    peak = [float(np.max(lp[a:b, c])) for (a, b), c in zip(spans, labels, strict=True)]
    return [float(np.exp(np.mean([peak[u] for u in w]))) for w in where]
