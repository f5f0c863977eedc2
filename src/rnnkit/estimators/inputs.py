"""The inputs an estimator accepts: what kind of sequences ``X`` holds (strings, token-id
arrays or ``(T, F)`` float arrays, never mixed) and labels ``y`` of the right shape; one-line
errors name the estimator and the method."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import InputError

KINDS = {
    "text": "strings",
    "ids": "1-D integer token-id arrays",
    "features": "(T, F) float arrays",
}


def labels_of(y: Any, n: int, where: str) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != n:
        raise InputError(
            f"{where}: expected y with one label per sequence ({n}), got shape {labels.shape}"
        )
    return labels


def input_kind(X: Sequence[Any], where: str) -> str:
    """ "text", "ids" or "features", from the first sequence; all must be alike."""
    if len(X) == 0:
        raise InputError(f"{where}: X is empty; expected sequences")
    kinds = set()
    for x in X:
        if isinstance(x, str):
            kinds.add("text")
            continue
        a = np.asarray(x)
        if a.dtype.kind in "iu" and a.ndim == 1:
            kinds.add("ids")
        elif a.dtype.kind == "f" and a.ndim in (1, 2):
            kinds.add("features")
        else:
            raise InputError(
                f"{where}: expected strings, 1-D integer arrays or (T, F) "
                f"float arrays, got an array of dtype {a.dtype} and shape {a.shape}"
            )
        if len(kinds) > 1:
            break
    if len(kinds) > 1:
        raise InputError(f"{where}: X mixes {' and '.join(KINDS[k] for k in sorted(kinds))}")
    return kinds.pop()


def feature_size(X: Sequence[Any]) -> int:
    a = np.asarray(X[0])
    return 1 if a.ndim == 1 else int(a.shape[1])


def checked_epochs(
    X_epoch: Callable[[int], Sequence[Any]],
    X: list[np.ndarray],
    encode: Callable[[Sequence[Any], str], list[np.ndarray]],
    who: str,
    unit: str,
    same_lengths: bool = True,
) -> Callable[[int], list[np.ndarray]]:
    """``X_epoch``'s sequences (an epoch's augmented training inputs) encoded as ``X``'s were,
    checked to match them in number and, with ``same_lengths``, in length (the batches are
    cut by length; without it, by ``X``'s lengths and padded to the epoch's, as speed
    perturbation needs); ``who`` and ``unit`` name the estimator's fit and its sequences in
    the one-line error."""

    def epoch_inputs(epoch: int) -> list[np.ndarray]:
        seqs = encode(X_epoch(epoch), f"fit (X_epoch({epoch}))")
        if len(seqs) != len(X):
            raise InputError(f"{who}.fit: X_epoch({epoch}) must hold {len(X)} {unit}, as X")
        if same_lengths and any(len(a) != len(b) for a, b in zip(seqs, X, strict=True)):
            raise InputError(
                f"{who}.fit: X_epoch({epoch}) must hold {len(X)} {unit} of the lengths of X's"
            )
        return seqs

    return epoch_inputs
