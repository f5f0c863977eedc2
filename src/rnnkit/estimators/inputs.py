"""The inputs an estimator accepts: what kind of sequences ``X`` holds (strings, token-id
arrays or ``(T, F)`` float arrays, never mixed) and labels ``y`` of the right shape; one-line
errors name the estimator and the method."""

from __future__ import annotations

from collections.abc import Sequence
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
