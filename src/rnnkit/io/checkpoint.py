"""The checkpoint: one ``.safetensors`` file, weights plus JSON metadata, written atomically.

Metadata keys (all strings, as safetensors requires):

- ``format``: ``"rnnkit"``; ``format_version``: ``"2"``; ``rnnkit_version``;
- ``class``: the module's class name; ``config``: its config dataclass as JSON;
- ``extra``: JSON chosen by the caller (vocabulary, training state, ...);
- ``checksum``: ``sha256:<hex>`` over the tensors and the other metadata (`rnnkit.files.digest`),
  verified on every load (format 1, before checksums, loads unverified).

Tensors: the model's ``named_parameters()`` under their own keys, and the caller's extra arrays
(optimizer buffers, ...) under ``extra/<name>``. Loading never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import CheckpointError, InputError, RnnkitError
from ..files import atomic_write, digest
from ..layers.module import MODULE_REGISTRY, Module

FORMAT_VERSION = "2"
READABLE_VERSIONS = ("1", "2")  # 1: no checksum
EXTRA_PREFIX = "extra/"
# estimators by class name (`rnnkit.estimators.base.Estimator` registers its subclasses): a
# checkpoint whose metadata names one loads as that estimator
ESTIMATOR_REGISTRY: dict[str, Any] = {}


@dataclass
class Checkpoint:
    """What a checkpoint holds: the rebuilt model, the caller's metadata and extra arrays."""

    model: Module
    metadata: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def save(
    model: Module,
    path: str | os.PathLike,
    metadata: dict[str, Any] | None = None,
    arrays: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``model`` (and optional JSON ``metadata`` and ``arrays``) to ``path`` atomically.

    ``model`` may be a fitted estimator (`rnnkit.SequenceClassifier`): its network is written
    with the estimator's parameters and learned state as metadata, and `load` returns it.

    The file is written to a temporary name in the same folder and renamed into place, so an
    existing checkpoint is never left half-written. Non-finite weights are refused.
    """
    from safetensors.numpy import save_file

    if not isinstance(model, Module) and hasattr(model, "_checkpoint"):
        model, own = model._checkpoint()  # an estimator: its network and what it learned
        metadata = {**own, **(metadata or {})}
    if not isinstance(model, Module):
        raise InputError(f"save: expected an rnnkit model (a Module), got {type(model).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"save: expected a file path, got {type(path).__name__}")
    path = Path(path)
    name = type(model).__name__
    try:
        config = json.dumps(dataclasses.asdict(model.config))
    except NotImplementedError:
        raise InputError(
            f"save: expected a model with a config (a layer or a task model), got {name}; "
            "save each of its parts"
        ) from None
    if metadata is not None and not isinstance(metadata, dict):
        raise InputError(f"save: expected metadata as a dict, got {type(metadata).__name__}")
    try:
        extra = json.dumps(metadata or {})
    except (TypeError, ValueError) as exc:
        raise InputError(f"save: expected metadata that JSON can hold ({exc})") from None
    if arrays is not None and not isinstance(arrays, dict):
        raise InputError(f"save: expected arrays as a dict of arrays, got {type(arrays).__name__}")
    tensors: dict[str, np.ndarray] = {}
    for key, value in model.named_parameters().items():
        if not isinstance(value, np.ndarray):
            raise CheckpointError(
                f"save: {name} parameter {key!r} is quantized; save the float model and "
                "quantize it after loading"
            )
        if not np.all(np.isfinite(value)):
            raise CheckpointError(
                f"save: {name} parameter {key!r} contains NaN or infinity; refusing to write {path}"
            )
        tensors[key] = np.ascontiguousarray(value)
    for key, value in (arrays or {}).items():
        array = (
            np.asarray(value) if isinstance(value, (np.ndarray, list, tuple, int, float)) else None
        )
        if not isinstance(key, str) or array is None or array.dtype.kind not in "biuf":
            raise InputError(
                f"save: expected arrays as a dict of str to numeric arrays, got {key!r:.40}: "
                f"{type(value).__name__}"
            )
        tensors[EXTRA_PREFIX + key] = np.ascontiguousarray(array)
    meta = {
        "format": "rnnkit",
        "format_version": FORMAT_VERSION,
        "rnnkit_version": __version__,
        "class": name,
        "config": config,
        "extra": extra,
    }
    meta["checksum"] = digest(tensors, meta)
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta), "save")


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by `save`: the model, its metadata and extra arrays."""
    from safetensors import SafetensorError, safe_open

    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"load: expected a checkpoint file path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"load: no such checkpoint file {str(path)!r}")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(
            f"load: {str(path)!r} is not a readable safetensors file ({reason})"
        ) from None
    if meta.get("format") != "rnnkit":
        raise CheckpointError(
            f"load: {str(path)!r} has no rnnkit metadata; expected a file written by rnnkit.save"
        )
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"load: {str(path)!r} has format version {version!r}; this rnnkit reads versions "
            f"{', '.join(READABLE_VERSIONS)} (a newer rnnkit wrote it?)"
        )
    if version != "1" and meta.get("checksum") != digest(tensors, meta):
        raise CheckpointError(
            f"load: {str(path)!r} is damaged: its data does not match its checksum; "
            "expected an intact file (restore it from a copy)"
        )
    cls_name = meta.get("class", "")
    cls = MODULE_REGISTRY.get(cls_name)
    if cls is None or cls.config_class is None:
        raise CheckpointError(f"load: {str(path)!r} holds an unknown model class {cls_name!r}")
    try:
        config = cls.config_class(**json.loads(meta["config"]))
        extra = json.loads(meta.get("extra", "{}"))
        if not isinstance(extra, dict):
            raise TypeError(f"extra is a {type(extra).__name__}, expected a JSON object")
        model = cls.from_config(config)
    except (KeyError, TypeError, ValueError, OverflowError, MemoryError, RnnkitError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"load: {str(path)!r} has a malformed config ({reason})") from None
    weights = {k: v for k, v in tensors.items() if not k.startswith(EXTRA_PREFIX)}
    arrays = {k[len(EXTRA_PREFIX) :]: v for k, v in tensors.items() if k.startswith(EXTRA_PREFIX)}
    try:
        model.load_state_dict(weights)
    except CheckpointError as exc:
        raise CheckpointError(f"load: {str(path)!r}: {exc}") from exc
    return Checkpoint(model, extra, arrays)


def load(path: str | os.PathLike) -> Any:
    """The model saved at ``path`` by `save`, rebuilt from its config, weights loaded; an
    estimator when an estimator was saved."""
    ckpt = load_checkpoint(path)
    name = ckpt.metadata.get("estimator")
    if name is None:
        return ckpt.model
    cls = ESTIMATOR_REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise CheckpointError(f"load: {str(path)!r} holds an unknown estimator {name!r}")
    return cls._from_checkpoint(ckpt, path)
