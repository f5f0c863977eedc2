"""Music: ``rnnkit train music`` and ``rnnkit generate MODEL --midi OUT.mid``.

Read pieces (`rnnkit.data.music`: the JSB JSON with its train/valid/test parts, a MIDI file or
a folder of them), fit a `MusicModel` from the run's config, report the published metric (NLL
per step summed over the 88 keys) on the validation and test parts; generate from a saved
model to MIDI, a piano-roll PNG, or text (one line of MIDI pitches per step).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import nonneg_float, nonneg_int, option, positive_float, positive_int, probability
from ..data.music import LOWEST, read_midi, read_music, steps_from_roll, write_midi
from ..errors import CheckpointError, InputError
from ..estimators.music import MusicModel
from ..files import check_output, safetensors_metadata, save_figure
from ..io.checkpoint import load
from ..training import last_path, plot_path, read_last


@dataclass(frozen=True)
class MusicConfig:
    """One ``rnnkit train music`` run; each field is also its option."""

    data: str = option(
        "",
        help="the JSB JSON (train/valid/test parts, or a list of pieces), a .mid file or a "
        "folder of .mid files",
    )
    steps_per_quarter: int = option(
        1, help="MIDI input: time steps per quarter note (the quantisation)", type=positive_int
    )
    cell: str = option("gru", help="recurrent cell", choices=("gru", "lstm", "rnn"))
    layers: int = option(1, help="stacked recurrent layers", type=positive_int)
    hidden: int = option(128, help="hidden size", type=positive_int)
    output: str = option(
        "sigmoid",
        help="the keys of a step: independent sigmoids, or jointly (NADE)",
        choices=("sigmoid", "nade"),
    )
    nade_hidden: int = option(64, help="hidden units of the NADE output", type=positive_int)
    dropout: float = option(0.3, help="dropout on the recurrent output", type=probability)
    transpose: int = option(
        0, help="augment: shift each training piece by up to N semitones", type=nonneg_int
    )
    batch: int = option(8, help="pieces per batch", type=positive_int)
    lr: float = option(1e-2, help="peak learning rate of AdamW", type=positive_float)
    weight_decay: float = option(0.0, help="AdamW weight decay", type=nonneg_float)
    weight_noise: float = option(
        0.0,
        help="std of Gaussian noise on every weight matrix per batch (0: none)",
        type=nonneg_float,
    )
    epochs: float | None = option(
        None, help="budget in passes over the data", type=positive_float, default_help="60"
    )
    minutes: float | None = option(
        None, help="budget in wall-clock minutes", type=positive_float, default_help="none"
    )
    patience: int = option(
        10, help="stop after N epochs without a better validation loss; 0: never", type=nonneg_int
    )
    seed: int = option(0, help="random seed")
    out: str = option("runs/music.safetensors", help="the model file; loss curve beside it")


DEFAULT_EPOCHS = 60.0


def estimator(cfg: MusicConfig, verbose: bool = True) -> MusicModel:
    epochs = cfg.epochs if cfg.epochs is not None or cfg.minutes is not None else DEFAULT_EPOCHS
    return MusicModel(
        cell=cfg.cell,
        hidden_size=cfg.hidden,
        num_layers=cfg.layers,
        output=cfg.output,
        nade_hidden=cfg.nade_hidden,
        dropout=cfg.dropout,
        transpose=cfg.transpose,
        steps_per_quarter=cfg.steps_per_quarter,
        batch_size=cfg.batch,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        weight_noise=cfg.weight_noise,
        epochs=epochs,
        minutes=cfg.minutes,
        patience=cfg.patience or None,
        seed=cfg.seed,
        verbose=verbose,
    )


def train_music(
    cfg: MusicConfig, force: bool = False, log: Any = None, resume: bool = False
) -> dict[str, Any]:
    """Check the outputs, read the data, fit, score; the metrics for ``--json``. With no
    ``valid`` part in the data, the last 10 % of the training pieces is held out (and
    ``test_nll`` is reported only when the data has a ``test`` part)."""
    out = Path(cfg.out)
    inputs = (cfg.data,)
    check_output(out, "checkpoint", inputs=inputs, force=force)
    check_output(last_path(out), "checkpoint", inputs=inputs, force=force, what="--out (.last)")
    check_output(plot_path(out), "png", inputs=inputs, force=force, what="--out (loss plot)")
    if resume:
        read_last(last_path(out))  # before the data is read
    parts = read_music(cfg.data, cfg.steps_per_quarter)
    train = parts.get("train", parts.get("all"))
    if train is None:
        raise InputError(f"--data: {cfg.data!r} has no 'train' part; expected one to train on")
    valid = parts.get("valid")
    if valid is None:
        held = max(1, round(0.1 * len(train)))
        if len(train) <= held:
            raise InputError(
                f"--data: {cfg.data!r} holds {len(train)} piece(s); expected at least 2 (one "
                "to train on, one held out) or a 'valid' part"
            )
        train, valid = train[:-held], train[-held:]
        if log is not None:
            log(f"validation: the last {held} of {len(train) + held} pieces, held out")
    model = estimator(cfg)
    model.fit(train, valid, out=out, metadata={"run": asdict(cfg)}, resume=resume, force=force)
    metrics: dict[str, Any] = {
        "val_nll": model.nll(valid),
        "train_nll": model.nll(train),
        "parameters": model.model_.num_parameters(),
        "steps": model.n_steps_,
        "stopped": model.stopped_,
        "frames_per_s": model.throughput_,
        "checkpoint": str(out),
    }
    if "test" in parts:
        metrics["test_nll"] = model.nll(parts["test"])
    return metrics


# -- generate ----------------------------------------------------------------------------------
def is_music_checkpoint(path: str) -> bool:
    """Whether ``path`` holds a `MusicModel` (read from its metadata alone)."""
    meta = safetensors_metadata(path)
    if not meta:
        return False
    try:
        extra = json.loads(meta.get("extra", "{}"))
    except ValueError:
        return False
    return isinstance(extra, dict) and extra.get("estimator") == MusicModel.__name__


MUSIC_ONLY = ("midi", "png", "steps")  # options of `rnnkit generate` for music checkpoints
TEXT_ONLY = ("top_k", "length")


def check_generate_options(args: argparse.Namespace, music: bool) -> None:
    """One-line errors for options that do not fit the checkpoint's kind."""
    kind = "a music model ('rnnkit train music')" if music else "a language model"
    wrong = TEXT_ONLY if music else MUSIC_ONLY
    for name in wrong:
        value = getattr(args, name, None)
        if value is not None:
            flag = "--" + name.replace("_", "-")
            fits = "language models" if music else "music models"
            raise InputError(
                f"generate: {flag} applies to {fits}; {args.checkpoint!r} holds {kind}"
            )


def generate_music(args: argparse.Namespace) -> dict[str, Any]:
    """``rnnkit generate MODEL.safetensors [--midi OUT.mid] [--png OUT.png] [--steps N]
    [--prime FILE.mid] [--seed S] [--temperature T]``; with neither --midi nor --png, one line
    of MIDI pitches per step on stdout."""
    inputs = [args.checkpoint, args.prime or None]
    midi = png = None
    if args.midi is not None:
        midi = check_output(args.midi, "midi", inputs=inputs, force=args.force, what="--midi")
    if args.png is not None:
        png = check_output(args.png, "png", inputs=inputs, force=args.force, what="--png")
    model = load(args.checkpoint)
    if not isinstance(model, MusicModel):
        raise CheckpointError(f"generate: {args.checkpoint!r} holds no music model")
    spq = int(model.steps_per_quarter)
    prime = read_midi(args.prime, spq) if args.prime else None
    steps = 64 if args.steps is None else args.steps
    roll = model.generate(steps, prime, args.temperature, args.seed)
    written: dict[str, Any] = {"steps": int(len(roll))}
    if midi is not None:
        written["midi"] = str(write_midi(roll, midi, spq))
    if png is not None:
        written["png"] = str(plot_roll(roll, png, 0 if prime is None else len(prime), spq))
    if midi is None and png is None:
        for step in steps_from_roll(roll):
            print(" ".join(map(str, step)))
    return written


def plot_roll(roll: np.ndarray, path: Path, primed: int = 0, steps_per_quarter: int = 1) -> Path:
    """The piano roll as a PNG: time across, MIDI pitch up; the prime shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    used = np.flatnonzero(roll.any(axis=0))
    lo, hi = (used[0] - 2, used[-1] + 3) if used.size else (39, 60)
    lo, hi = max(lo, 0), min(hi, roll.shape[1])
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.imshow(
        roll[:, lo:hi].T,
        aspect="auto",
        origin="lower",
        cmap="Greys",
        interpolation="nearest",
        extent=(0, len(roll) / steps_per_quarter, LOWEST + lo - 0.5, LOWEST + hi - 0.5),
    )
    if primed:
        ax.axvspan(0, primed / steps_per_quarter, color="tab:blue", alpha=0.12, label="prime")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("quarter notes")
    ax.set_ylabel("MIDI pitch")
    fig.tight_layout()
    try:
        return save_figure(fig, path, "--png", dpi=90)
    finally:
        plt.close(fig)
