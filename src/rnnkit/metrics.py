"""Classification metrics: accuracy, macro-F1, per-class precision and recall (as
scikit-learn's ``classification_report`` counts them: a class never predicted has precision 0)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def accuracy(y_true: Sequence[Any] | np.ndarray, y_pred: Sequence[Any] | np.ndarray) -> float:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(t == p)) if len(t) else 0.0


def per_class(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    classes: Sequence[Any] | None = None,
) -> dict[str, dict[str, float]]:
    """``{class: {"precision", "recall", "f1", "support"}}`` for every class (those given, or
    every label in either array)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if classes is None:
        classes = sorted(set(t.tolist()) | set(p.tolist()))
    out = {}
    for c in classes:
        tp = float(np.sum((t == c) & (p == c)))
        predicted, support = float(np.sum(p == c)), float(np.sum(t == c))
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[str(c)] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return out


def macro_f1(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    classes: Sequence[Any] | None = None,
) -> float:
    """The unweighted mean of the per-class F1 scores."""
    scores = per_class(y_true, y_pred, classes)
    return float(np.mean([s["f1"] for s in scores.values()])) if scores else 0.0


def report(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    classes: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1 and the per-class table, as ``rnnkit evaluate`` prints them."""
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, classes),
        "classes": per_class(y_true, y_pred, classes),
        "examples": len(y_true),
    }


def confusion_matrix(
    y_true: Sequence[Any] | np.ndarray, y_pred: Sequence[Any] | np.ndarray, classes: Sequence[Any]
) -> np.ndarray:
    """``(C, C)`` counts: row ``i`` the examples of ``classes[i]``, column ``j`` those predicted
    ``classes[j]`` (scikit-learn's layout)."""
    index = {str(c): i for i, c in enumerate(classes)}
    m = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(np.asarray(y_true).tolist(), np.asarray(y_pred).tolist(), strict=True):
        if str(t) in index and str(p) in index:
            m[index[str(t)], index[str(p)]] += 1
    return m
