"""Batches of sequences of different lengths: bucketed by length to waste little padding,
padded time-major and passed on with their ``lengths``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

POOL = 50  # batches' worth of examples sorted together: random enough, little padding


def bucket_batches(
    lengths: Sequence[int] | np.ndarray, batch_size: int, rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """Indices of the examples in batches of ``batch_size`` (the last may be smaller).

    With ``rng``: the examples are shuffled, cut into pools of ``POOL`` batches, each pool
    sorted by length and cut into batches, and the batches shuffled; so a batch holds
    sequences of similar length and every epoch sees other batches. Without: sorted by length
    (for prediction: deterministic, least padding)."""
    lengths = np.asarray(lengths)
    n = len(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    batches = []
    pool = batch_size * POOL
    for start in range(0, n, pool):
        part = order[start : start + pool]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad(sequences: Sequence[np.ndarray], index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sequences ``index`` picks, padded with zeros: time-major ``(T, B)`` ids or
    ``(T, B, F)`` features, and their ``lengths`` ``(B,)``; T is the longest length."""
    picked = [sequences[int(i)] for i in index]
    lengths = np.array([len(s) for s in picked], dtype=np.int64)
    first = picked[0]
    out = np.zeros((int(lengths.max()), len(picked), *first.shape[1:]), dtype=first.dtype)
    for b, s in enumerate(picked):
        out[: len(s), b] = s
    return out, lengths
