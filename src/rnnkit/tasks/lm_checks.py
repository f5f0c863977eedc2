"""What `rnnkit.tasks.lm.train_lm` checks before the work starts: its output paths, the memory
the run needs, the validation text's vocabulary, and that a resumed run is the run it says.

Each check ends in a one-line rnnkit error, or a `RnnkitWarning` when the work can go on.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..config import flag_of
from ..data.text import Vocabulary
from ..errors import CheckpointError, ResourceError, RnnkitWarning
from ..files import check_output, is_rnnkit_file, text_fingerprint
from ..memory import available_memory, gib, lm_training_memory
from ..training import last_path, plot_path

UNKNOWN_SHARE = 0.05  # more unknown validation tokens than this: warn
IGNORED = ("out", "text", "valid")  # paths: the data is compared by content, the out is the file
MODEL = ("tokens", "vocab_size", "cell", "layers", "hidden", "embedding", "dropout", "tie_weights")
BUDGET = ("steps", "minutes")


def check_outputs(cfg: Any, force: bool) -> None:
    """The checkpoint, its ``.last`` and its loss PNG can be written, and none of them is an
    input or a file rnnkit did not write (unless ``force``)."""
    out = Path(cfg.out)
    inputs = (cfg.text, cfg.valid)
    check_output(out, "checkpoint", inputs=inputs, force=force)
    check_output(last_path(out), "checkpoint", inputs=inputs, force=force, what="--out (.last)")
    plot = plot_path(out)
    # a matplotlib PNG beside an rnnkit checkpoint is the run's own plot, from before rnnkit
    # signed its PNGs (so a `make run` after an upgrade goes on)
    legacy = plot.exists() and is_rnnkit_file(out, "checkpoint") and _is_matplotlib_png(plot)
    check_output(plot, "png", inputs=inputs, force=force or legacy, what="--out (loss plot)")


def _is_matplotlib_png(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    return head.startswith(b"\x89PNG\r\n\x1a\n") and b"Software\x00Matplotlib" in head


def check_memory(cfg: Any, vocab_size: int) -> None:
    """Refuse a run whose training step cannot fit in the memory available, naming the option
    that would shrink its largest part first (`rnnkit.memory.lm_training_memory`)."""
    available = available_memory()
    embedding = cfg.hidden if cfg.tie_weights else cfg.embedding
    need = lm_training_memory(
        vocab_size,
        cfg.cell,
        cfg.hidden,
        cfg.layers,
        embedding,
        cfg.batch,
        cfg.bptt,
        cfg.tie_weights,
    )
    if available is None or need.total <= available:
        return
    word = cfg.tokens == "word"
    parts = {
        "weights and optimizer state": (need.weights, "--hidden or --layers", "--vocab-size"),
        "activations": (need.activations, "--batch, --bptt or --hidden", ""),
        "logits": (need.logits, "--batch or --bptt", "--vocab-size"),
    }
    ranked = sorted(parts.items(), key=lambda kv: -kv[1][0])
    shares = ", ".join(f"{name} {gib(n)}" for name, (n, _, _) in ranked)
    _, (_, options, word_option) = ranked[0]
    if word and word_option:
        options = f"{word_option}, {options}"
    raise ResourceError(
        f"train lm: a training step needs about {gib(need.total)} of memory ({shares}), "
        f"{gib(available)} is available; reduce {options}"
    )


def warn_unknown(valid_text: str, vocab: Vocabulary, valid_ids: np.ndarray) -> None:
    """Warn when more than ``UNKNOWN_SHARE`` of the validation tokens are not in the training
    vocabulary: its loss then measures mostly the unknown token."""
    if len(valid_ids) == 0:
        return
    share = float(np.mean(valid_ids == 0))
    if share <= UNKNOWN_SHARE:
        return
    index = vocab.index
    unknown = Counter(t for t in vocab.split(valid_text) if t not in index)
    examples = ", ".join(repr(t) for t, _ in unknown.most_common(5))
    warnings.warn(
        f"train lm: {share:.0%} of the validation {vocab.level}s are not in the training "
        f"vocabulary (e.g. {examples}); the validation loss measures mostly those",
        RnnkitWarning,
        stacklevel=3,
    )


def data_fingerprint(train_text: str, valid_text: str) -> dict[str, Any]:
    """What the checkpoint records of the data (`rnnkit.files.text_fingerprint`)."""
    return {"text": text_fingerprint(train_text), "valid": text_fingerprint(valid_text)}


# -- resuming --------------------------------------------------------------------------------
def check_resume(
    path: Path,
    saved: dict[str, Any],
    cfg: Any,
    data: dict[str, Any],
    vocab: Vocabulary,
    force: bool,
) -> ResumePlan:
    """Compare the run saved at ``path`` (its checkpoint metadata ``saved``) with this one.

    A different model (``MODEL`` options, vocabulary) is an error even with ``force``; other
    settings and changed data are an error without ``force`` and a warning with it. Returns
    what of the saved state still applies after what ``force`` let through.
    """
    run = saved.get("run")
    if not isinstance(run, dict):
        warnings.warn(
            f"resume: {str(path)!r} records no run settings (an older rnnkit wrote it); "
            "cannot check that they match",
            RnnkitWarning,
            stacklevel=3,
        )
        return ResumePlan()
    diffs = _differing(run, cfg)
    model = [f for f in diffs if f.name in MODEL]
    if model:
        raise CheckpointError(
            f"resume: {str(path)!r} holds a model trained with {_flags(model, run)}, this "
            f"run asks for {_flags(model, cfg)}; a model cannot change shape, even with "
            "--force (start a new run with another --out)"
        )
    if "vocab" in saved and tuple(saved["vocab"]) != vocab.tokens:
        new = [t for t in vocab.tokens if t not in set(saved["vocab"])]
        raise CheckpointError(
            f"resume: the vocabulary of this run's text differs from the saved run's "
            f"({len(vocab)} {vocab.level}s, {len(saved['vocab'])} then; new: "
            f"{', '.join(repr(t) for t in new[:5]) or 'none'}); a model's vocabulary cannot "
            "change, even with --force (start a new run with another --out)"
        )
    reasons = []
    if diffs:
        reasons.append(
            f"{str(path)!r} was trained with {_flags(diffs, run)}, this run asks for "
            f"{_flags(diffs, cfg)}"
        )
    data_changes = _data_changes(saved.get("data"), data, cfg)
    reasons += data_changes
    if reasons and not force:
        raise CheckpointError(f"resume: {'; '.join(reasons)}; pass --force to continue anyway")
    for reason in reasons:
        warnings.warn(f"resume --force: {reason}", RnnkitWarning, stacklevel=3)
    names = {f.name for f in diffs}
    if names & set(BUDGET):
        warnings.warn(
            "resume --force: the budget changed, so the cosine schedule is stretched over the "
            "new one (the learning rate does not continue where the saved run left it)",
            RnnkitWarning,
            stacklevel=3,
        )
    if "batch" in names:
        warnings.warn(
            "resume --force: --batch changed, so the carried hidden state (of the old batch "
            "size) is dropped; the next chunk starts from a zero state",
            RnnkitWarning,
            stacklevel=3,
        )
    if data_changes:
        warnings.warn(
            "resume --force: the best validation loss so far was measured on other data; "
            "the next evaluation starts a new best",
            RnnkitWarning,
            stacklevel=3,
        )
    return ResumePlan(carry="batch" not in names, keep_best=not data_changes)


@dataclasses.dataclass(frozen=True)
class ResumePlan:
    """What of a saved run carries over: the hidden state (not when --batch changed), the best
    validation loss (not when the data changed: the losses are not comparable)."""

    carry: bool = True
    keep_best: bool = True


def _differing(run: dict[str, Any], cfg: Any) -> list[dataclasses.Field]:
    """The fields of ``cfg`` whose value differs from the saved ``run``'s."""
    fields = []
    for f in dataclasses.fields(cfg):
        if f.name in IGNORED or f.name not in run:
            continue
        if f.name == "vocab_size" and cfg.tokens == "char" and run.get("tokens") == "char":
            continue  # unused at character level
        if run[f.name] != getattr(cfg, f.name):
            fields.append(f)
    return fields


def _flags(fields: list[dataclasses.Field], values: Any) -> str:
    """``--steps 20 --lr 0.003``: the options of ``fields`` with their values in ``values``
    (a config, or a saved run's dict)."""
    parts = []
    for f in fields:
        value = values[f.name] if isinstance(values, dict) else getattr(values, f.name)
        flag = flag_of(f)
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        else:
            parts.append(f"{flag} {'none' if value is None else value}")
    return " ".join(parts)


def _data_changes(saved: Any, data: dict[str, Any], cfg: Any) -> list[str]:
    if not isinstance(saved, dict):
        warnings.warn(
            "resume: the checkpoint records no fingerprint of its data (an older rnnkit "
            "wrote it); cannot check that --text is unchanged",
            RnnkitWarning,
            stacklevel=4,
        )
        return []
    changes = []
    if saved.get("text") != data["text"]:
        changes.append(
            f"--text has changed since the run was saved ({_compare(saved, data, 'text')})"
        )
    elif saved.get("valid") != data["valid"]:
        flag = "--valid" if cfg.valid is not None else "the validation text"
        changes.append(
            f"{flag} has changed since the run was saved ({_compare(saved, data, 'valid')})"
        )
    return changes


def _compare(saved: dict[str, Any], data: dict[str, Any], key: str) -> str:
    def describe(fp: Any) -> str:
        if not isinstance(fp, dict):
            return "unknown"
        return f"{fp.get('chars', 0):,} chars, sha256 {str(fp.get('sha256', ''))[:12]}"

    return f"was {describe(saved.get(key))}, now {describe(data[key])}"
