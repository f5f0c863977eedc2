"""The files a training run writes next to its ``out``, and reading one back to resume.

For ``out = runs/lm.safetensors``: ``runs/lm.safetensors``, the best checkpoint by validation
loss (`save_best`); ``runs/lm.last.safetensors`` (`last_path`), the latest state with the
optimizer's buffers and the objective's carried state, to resume from exactly (`save_last`,
`read_last`); ``runs/lm.loss.png`` (`plot_path`), the loss curve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError
from ..io.checkpoint import Checkpoint, load_checkpoint, save
from ..layers.module import Module


def last_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".safetensors") + ".last.safetensors")


def plot_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(".safetensors") + ".loss.png")


def save_last(
    model: Module,
    out: Path,
    metadata: dict[str, Any],
    train_state: dict[str, Any],
    opt_state: dict[str, Any],
    carry: dict[str, np.ndarray],
    averaged: dict[str, np.ndarray] | None = None,
) -> None:
    """``<out>.last.safetensors``: the model, the optimizer's state (its buffers as ``opt/``
    arrays, its scalars in the metadata), the carried state as ``carry/`` arrays, the moving
    average of the weights (`TrainConfig.ema`) as ``ema/`` arrays, and the trainer's counters
    as the metadata's ``train``."""
    arrays = {f"opt/{k}": v for k, v in opt_state["buffers"].items()}
    arrays.update({f"carry/{k}": v for k, v in carry.items()})
    arrays.update({f"ema/{k}": v for k, v in (averaged or {}).items()})
    meta = dict(metadata, train=train_state, optimizer=_scalars(opt_state))
    save(model, last_path(out), metadata=meta, arrays=arrays)


def save_best(
    model: Module, out: Path, metadata: dict[str, Any], step: int, val_loss: float
) -> None:
    """``out``: the model with the best validation loss so far, and the step it was reached."""
    meta = dict(metadata, train={"step": step, "val_loss": val_loss})
    save(model, out, metadata=meta)


def read_last(path: Path) -> Checkpoint:
    """The ``.last`` checkpoint to resume from; one-line errors when it is missing, damaged or
    not one (a best checkpoint holds no optimizer state)."""
    if not path.is_file():
        raise CheckpointError(
            f"resume: no checkpoint {str(path)!r} to resume from; expected the .last file "
            "of an earlier run with the same --out"
        )
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"resume: {exc}") from None
    state = ckpt.metadata.get("train")
    if not isinstance(state, dict) or "generators" not in state or "optimizer" not in ckpt.metadata:
        raise CheckpointError(
            f"resume: {str(path)!r} holds no training state; expected the .last checkpoint "
            "that a training run writes"
        )
    return ckpt


def _scalars(opt_state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in opt_state.items() if k != "buffers"}
