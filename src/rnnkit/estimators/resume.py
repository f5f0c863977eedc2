"""Continuing an estimator's interrupted `fit` from its ``.last`` checkpoint.

``fit(..., out=PATH, resume=True)`` reads ``PATH.last.safetensors`` (written at every
evaluation and when a run is stopped) and checks that it is the same run before the `Trainer`
continues it:

- parameters that shape the model or its vocabulary (`MODEL_PARAMS`), the classes and the
  vocabulary must be equal: a model cannot change shape, not even with ``force``;
- other parameters (learning rate, batch size, budget ...) and the data (a SHA-256 over the
  encoded training and validation sequences and their labels) may change only with ``force``,
  which turns the error into a warning; changed data also forgets the best validation loss
  (measured on other data, it is not comparable).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, RnnkitWarning

MODEL_PARAMS = frozenset(
    {
        "tokens",
        "min_count",
        "max_vocab",
        "embedding_dim",
        "cell",
        "hidden_size",
        "num_layers",
        "bidirectional",
        "pooling",
        "attention_size",
        "dropout",
        "output",  # MusicModel: independent sigmoids or NADE
        "nade_hidden",
        "level",  # Seq2Seq: the tokenizer and the decoder's wiring
        "lowercase",
        "split_punctuation",
        "attention",
        "input_feeding",
        "tie_embeddings",
    }
)
IGNORED = frozenset({"verbose"})  # changes nothing the run computes


def fingerprint(seqs: Sequence[np.ndarray], targets: np.ndarray) -> dict[str, Any]:
    """What identifies a training or validation part: its size and the SHA-256 over every
    sequence (dtype, shape, bytes) and the label indices."""
    h = hashlib.sha256()
    for s in seqs:
        a = np.ascontiguousarray(s)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.view(np.uint8).ravel().data)
    h.update(np.ascontiguousarray(targets, dtype=np.int64).tobytes())
    return {"n": len(seqs), "sha256": h.hexdigest()}


def check_resume(
    path: Path,
    saved: dict[str, Any],
    params: dict[str, Any],
    learned: dict[str, Any],
    data: dict[str, Any],
    force: bool,
) -> bool:
    """Compare the run saved at ``path`` (its metadata ``saved``) with this fit's ``params``,
    ``learned`` state and ``data`` fingerprints; raise `CheckpointError` or warn as the module
    says. Returns whether the saved best validation loss still applies."""
    old_params, old_learned = saved.get("params"), saved.get("learned")
    if not isinstance(old_params, dict) or not isinstance(old_learned, dict):
        raise CheckpointError(
            f"resume: {str(path)!r} was not written by an estimator's fit; expected the "
            ".last checkpoint of an earlier fit with the same out"
        )
    changed = sorted(
        k for k in params if k not in IGNORED and k in old_params and old_params[k] != params[k]
    )
    shaping = [k for k in changed if k in MODEL_PARAMS]
    if shaping:
        raise CheckpointError(
            f"resume: {str(path)!r} holds a model fitted with {_pairs(shaping, old_params)}, "
            f"this fit asks for {_pairs(shaping, params)}; a model cannot change shape, even "
            "with force (start a new run with another out)"
        )
    for key, what in (("classes", "classes"), ("vocab", "vocabulary")):
        if old_learned.get(key) != learned.get(key):
            raise CheckpointError(
                f"resume: the {what} of this fit's data differs from the saved run's; a "
                f"model's {what} cannot change, even with force (start a new run with "
                "another out)"
            )
    reasons = []
    if changed:
        reasons.append(
            f"{str(path)!r} was fitted with {_pairs(changed, old_params)}, this fit asks for "
            f"{_pairs(changed, params)}"
        )
    old_data = saved.get("data")
    data_changed = [
        part
        for part in ("train", "valid")
        if not isinstance(old_data, dict) or old_data.get(part) != data[part]
    ]
    for part in data_changed:
        was = old_data.get(part) if isinstance(old_data, dict) else None
        reasons.append(
            f"the {'training' if part == 'train' else 'validation'} data has changed since the "
            f"run was saved (was {_describe(was)}, now {_describe(data[part])})"
        )
    if reasons and not force:
        raise CheckpointError(
            f"resume: {'; '.join(reasons)}; pass force=True (--force on the command line) "
            "to continue anyway"
        )
    for reason in reasons:
        warnings.warn(f"resume (forced): {reason}", RnnkitWarning, stacklevel=4)
    return not data_changed


def _pairs(keys: list[str], values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={values.get(k)!r}" for k in keys)


def _describe(fp: Any) -> str:
    if not isinstance(fp, dict):
        return "unknown"
    return f"{fp.get('n', 0):,} sequences, sha256 {str(fp.get('sha256', ''))[:12]}"
