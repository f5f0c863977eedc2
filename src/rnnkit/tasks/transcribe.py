"""Speech transcription with CTC: ``rnnkit train transcribe`` and ``rnnkit transcribe``.

Read a manifest (CSV/TSV with a header: ``path`` to a WAV file, relative to the manifest's
folder, and ``transcript``), featurise with the speech front end (`rnnkit.audio`, saved in the
model under ``"frontend"``), fit a `Transcriber`, report the character and word error rates.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..audio.augment import LevelShifted, WarpedEpochs, check_noise_snr
from ..audio.features import FrontEnd
from ..audio.files import featurise, front_end_of, wav_paths
from ..audio.wav import read_wav
from ..config import nonneg_float, nonneg_int, option, positive_float, positive_int, probability
from ..ctc_combine import COMBINE
from ..data.labelled import Labelled, read_labelled
from ..errors import CheckpointError, InputError, RnnkitWarning
from ..estimators.transcriber import Transcriber, check_lengths
from ..files import check_output
from ..io.checkpoint import load, load_checkpoint
from ..training import plot_path
from .classify import noise_of, snr_text, vtlp_spread

# the defaults of --vtlp and the masks: on, chosen on the strings of a training speaker held
# out of training (README, "Transcription of the unseen speaker")
TRANSCRIBE_AUGMENT = {
    "vtlp": 0.1,
    "time_masks": 2,
    "time_mask_width": 5,
    "feature_masks": 2,
    "feature_mask_width": 2,
}
# the default of --level: training voices at random levels within +-20 dB, chosen on the strings
# of a training speaker held out of training (README, "Level augmentation")
TRANSCRIBE_LEVEL = 20.0
# the default of --speed: off (README, "Speed perturbation and added noise for the transcriber")
TRANSCRIBE_SPEED = 0.0
# the command's budget and selection (the Python `Transcriber` keeps 20 epochs and the loss):
# the validation loss on a new voice is noisy from epoch to epoch (README, "Transcription")
TRANSCRIBE_EPOCHS = 40.0


def odd_int(text: str) -> int:
    value = positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"expected an odd number >= 1, got {text!r}")
    return value


@dataclass(frozen=True)
class TranscribeConfig:
    """One ``rnnkit train transcribe`` run; each field is also its option."""

    train: str = option("", help="manifest CSV/TSV with path and transcript columns")
    valid: str | None = option(None, help="validation manifest", default_help="a random 10 %")
    test: str | None = option(None, help="test manifest, scored at the end", default_help="none")
    transcript_column: str = option("transcript", help="the manifest's transcript column")
    cell: str = option("gru", help="recurrent cell", choices=("lstm", "gru", "rnn"))
    layers: int = option(2, help="stacked recurrent layers", type=positive_int)
    hidden: int = option(160, help="hidden size per direction", type=positive_int)
    bidirectional: bool = option(
        False, help="read each utterance both ways (cannot stream with rnnkit stream --audio)"
    )
    stack: int = option(2, help="feature frames (10 ms each) per recurrent step", type=positive_int)
    prior_frames: int = option(
        100,
        help="the running feature normalisation counts the training set's statistics as this "
        "many frames already seen of each utterance (fewer: it adapts to a new voice and level "
        "sooner)",
        type=positive_int,
    )
    norm: str = option(
        "running",
        help="feature normalisation per utterance: 'running' (by the utterance so far, the "
        "training set's statistics as a prior of --prior-frames; streamable), 'utterance' (by "
        "the whole utterance's mean and variance: offline, it cannot stream) or 'global' (by "
        "the training set's alone)",
        choices=("running", "utterance", "global"),
    )
    units: str = option(
        "char",
        help="CTC output units: characters, or the words of the training transcripts (a closed "
        "vocabulary such as digits; the decoder then emits whole known words)",
        choices=("char", "word"),
    )
    vtlp: float = option(
        TRANSCRIBE_AUGMENT["vtlp"],
        help="training only: vocal tract length perturbation, each utterance featurised with "
        "its mel filters warped by a fresh factor in [1-V, 1+V] every epoch; 0: none",
        type=vtlp_spread,
    )
    time_masks: int = option(
        TRANSCRIBE_AUGMENT["time_masks"],
        help="training only: SpecAugment time masks per utterance",
        type=nonneg_int,
    )
    time_mask_width: int = option(
        TRANSCRIBE_AUGMENT["time_mask_width"],
        help="widest time mask in recurrent steps (--stack frames each; at most a fifth of the "
        "utterance)",
        type=nonneg_int,
    )
    feature_masks: int = option(
        TRANSCRIBE_AUGMENT["feature_masks"],
        help="training only: SpecAugment masks of adjacent cepstral coefficients per utterance "
        "(the same ones of every stacked frame and delta)",
        type=nonneg_int,
    )
    feature_mask_width: int = option(
        TRANSCRIBE_AUGMENT["feature_mask_width"],
        help="widest feature mask in coefficients",
        type=nonneg_int,
    )
    speed: float = option(
        TRANSCRIBE_SPEED,
        help="training only: speed perturbation, each utterance played a fresh factor in "
        "[1-S, 1+S] times as fast every epoch (resampled: tempo and pitch; Ko et al. 2015), "
        "before VTLP; 0: none",
        type=vtlp_spread,
    )
    noise_snr: str | None = option(
        None,
        help="training only: white noise added to each utterance every epoch at a fresh "
        "signal-to-noise ratio uniform in LO,HI decibels (of the utterance's mean power), "
        "before featurisation",
        type=snr_text,
        default_help="none",
    )
    level: float = option(
        TRANSCRIBE_LEVEL,
        help="training only: each utterance heard at a random level, uniform within +-DB "
        "decibels, every epoch (its log energy shifted); 0: none",
        type=nonneg_float,
    )
    dropout: float = option(0.1, help="dropout between recurrent layers", type=probability)
    batch: int = option(16, help="utterances per batch", type=positive_int)
    lr: float = option(3e-3, help="peak learning rate of AdamW", type=positive_float)
    epochs: float | None = option(
        None,
        help="budget in passes over the data",
        type=positive_float,
        default_help=f"{TRANSCRIBE_EPOCHS:g}, unless --minutes is given",
    )
    minutes: float | None = option(
        None, help="budget in wall-clock minutes", type=positive_float, default_help="none"
    )
    patience: int = option(
        5,
        help="stop after N epochs without a better validation score (--select); 0: never",
        type=nonneg_int,
    )
    select: str = option(
        "wer",
        help="which epoch's weights are kept: the lowest validation loss, greedy word error "
        "rate, or word error rate with each word snapped to the nearest training word",
        choices=("loss", "wer", "lexicon"),
    )
    warps: int = option(
        1,
        help="test-time VTLP, saved in the model: decode from the CTC posteriors averaged over "
        "this many featurisations of each recording, warps evenly spaced in [1-V, 1+V] with "
        "V the --vtlp (0.1 if that is 0); odd; 1: none",
        type=odd_int,
    )
    beam: int = option(1, help="beam width for --test (1: greedy)", type=positive_int)
    seed: int = option(0, help="random seed")
    ensemble: int = option(
        1,
        help="train N networks (seeds SEED..SEED+N-1, the same data, each its own augmentation) "
        "one after another; --out holds them all and decoding combines them (--combine; N "
        "times the training and the compute per frame)",
        type=positive_int,
    )
    combine: str = option(
        "vote",
        help="with --ensemble: decode the members' per-step CTC probabilities averaged (prob) "
        "or log-probabilities averaged (logprob), or vote word by word over each member's "
        "transcript (vote), each vote weighted by the word's confidence from that member's "
        "posteriors (weighted; offline: stream --audio averages probabilities for both)",
        choices=COMBINE,
    )
    out: str = option("runs/transcribe.safetensors", help="the model file; loss curve beside it")


def read_manifest(path: str, column: str, what: str) -> Labelled:
    """The files and transcripts of a manifest (`rnnkit.data.labelled`'s reader), each
    transcript's runs of white space (two spaces, a tab, a line break in a quoted cell) made one
    space: a model writes one space between words, and CER would count the rest as errors."""
    data = read_labelled(path, "path", column, what, "--transcript-column", "transcript")
    if not data.audio:
        raise InputError(
            f"{what}: {path!r} is not a manifest of audio files; expected a CSV/TSV with a "
            f"'path' column of .wav files and a {column!r} column"
        )
    return replace(data, labels=[" ".join(text.split()) for text in data.labels])


def train_transcribe(cfg: TranscribeConfig, force: bool = False) -> dict[str, Any]:
    out = Path(cfg.out)
    inputs = (cfg.train, cfg.valid, cfg.test)
    check_output(out, "checkpoint", inputs=inputs, force=force)
    check_output(plot_path(out), "png", inputs=inputs, force=force, what="--out (loss plot)")
    col = cfg.transcript_column
    data = read_manifest(cfg.train, col, "--train")
    valid = read_manifest(cfg.valid, col, "--valid") if cfg.valid else None
    test = read_manifest(cfg.test, col, "--test") if cfg.test else None
    front = FrontEnd(norm="none")  # the model normalises with fixed statistics: streamable
    X = featurise(data.texts, front, "--train")
    X_valid = featurise(valid.texts, front, "--valid") if valid else None
    check_lengths(X, data.labels, cfg.stack, cfg.units, [f"--train: {w}" for w in data.where])
    if valid is not None and X_valid is not None:
        names = [f"--valid: {w}" for w in valid.where]
        check_lengths(X_valid, valid.labels, cfg.stack, cfg.units, names)
    model = Transcriber(
        cell=cfg.cell,
        hidden_size=cfg.hidden,
        num_layers=cfg.layers,
        bidirectional=cfg.bidirectional,
        stack=cfg.stack,
        prior_frames=cfg.prior_frames,
        norm=cfg.norm,
        units=cfg.units,
        time_masks=cfg.time_masks,
        time_mask_width=cfg.time_mask_width,
        feature_masks=cfg.feature_masks,
        feature_mask_width=cfg.feature_mask_width,
        feature_blocks=cfg.stack * (1 + front.deltas),
        dropout=cfg.dropout,
        batch_size=cfg.batch,
        lr=cfg.lr,
        epochs=cfg.epochs if cfg.epochs or cfg.minutes else TRANSCRIBE_EPOCHS,
        minutes=cfg.minutes,
        patience=cfg.patience or None,
        select=cfg.select,
        warps=cfg.warps,
        warp_spread=cfg.vtlp or TRANSCRIBE_AUGMENT["vtlp"],
        members=cfg.ensemble,
        combine=cfg.combine,
        seed=cfg.seed,
        verbose=True,
    )
    model.fit(
        X,
        data.labels,
        X_valid,
        valid.labels if valid else None,
        out=out,
        metadata={"run": asdict(cfg), "frontend": asdict(front)},
        X_epoch_of=lambda seed: training_epochs(X, data.texts, front, replace(cfg, seed=seed)),
    )
    metrics: dict[str, Any] = {
        "best_val_loss": model.best_val_loss_,
        "best_val_wer": model.best_val_wer_,
        "steps": model.n_steps_,
        "stopped": model.stopped_,
        "checkpoint": str(out),
    }
    if test is not None:
        _warn_unwritable(model, test)
        X_test = inputs_of(model, front, test.texts, "--test")
        scores = model.score(X_test, test.labels, cfg.beam)
        metrics |= {"test_cer": scores["cer"], "test_wer": scores["wer"]}
    return metrics


def warped_epochs(
    paths: list[str],
    front: FrontEnd,
    vtlp: float,
    seed: int,
    speed: float = 0.0,
    noise: tuple[float, float] | None = None,
) -> WarpedEpochs | None:
    """The training utterances featurised afresh each epoch with VTLP, speed perturbation and
    added noise (`WarpedEpochs`; None when all are off); the samples kept as float32."""
    noise = check_noise_snr(noise, "--noise-snr")
    if not vtlp and not speed and noise is None:
        return None
    samples = [read_wav(p, front.rate, "--train").astype("float32") for p in paths]
    return WarpedEpochs(samples, front, vtlp, seed, speed, noise)


def training_epochs(
    X: list, paths: list[str], front: FrontEnd, cfg: TranscribeConfig
) -> Callable[[int], list] | None:
    """Each epoch's training features: speed-perturbed, noised and VTLP-warped afresh
    (`warped_epochs`), then with ``cfg.level`` each utterance's log energy shifted
    (`LevelShifted`); None with none of them."""
    warped = warped_epochs(paths, front, cfg.vtlp, cfg.seed, cfg.speed, noise_of(cfg.noise_snr))
    if not cfg.level:
        return warped
    return LevelShifted(X, front, cfg.level, cfg.seed, warped)


def inputs_of(model: Transcriber, front: FrontEnd, paths: list[str], what: str) -> list:
    """What ``model`` transcribes each file from: its features, or with test-time warps the
    ``(warps, T, F)`` views (`Transcriber.views`)."""
    if getattr(model, "warps", 1) == 1:
        return featurise(paths, front, what)
    return [model.views(read_wav(p, front.rate, what), front) for p in paths]


def load_transcriber(path: str) -> tuple[Transcriber, FrontEnd]:
    model = load(path)
    saved = load_checkpoint(path).metadata.get("frontend")
    if not isinstance(model, Transcriber) or not isinstance(saved, dict):
        raise CheckpointError(
            f"{path!r} holds no transcriber; expected a model from 'rnnkit train transcribe'"
        )
    return model, front_end_of(saved)


def transcribe_files(
    path: str,
    files: list[str],
    beam: int = 1,
    test: str | None = None,
    column: str = "transcript",
    lexicon: bool = False,
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """``(file, transcript)`` for each WAV file, and with ``test`` (a manifest) its CER/WER."""
    model, front = load_transcriber(path)
    files = wav_paths(files, "transcribe")  # a folder: its .wav files
    if not files and not test:
        raise InputError("transcribe: expected .wav files or --test MANIFEST; got neither")
    X = inputs_of(model, front, files, "transcribe")
    out = list(zip(files, model.predict(X, beam, lexicon), strict=True))
    metrics: dict[str, Any] = {}
    if test:
        data = read_manifest(test, column, "--test")
        _warn_unwritable(model, data)
        X_test = inputs_of(model, front, data.texts, "--test")
        scores = model.score(X_test, data.labels, beam, lexicon)
        metrics = {"cer": scores["cer"], "wer": scores["wer"], "utterances": len(data)}
    return out, metrics


def _warn_unwritable(model: Transcriber, data: Labelled, show: int = 5) -> None:
    """Warn when the reference transcripts hold characters (words) the model cannot write: each
    counts as an error (a model trained on ``one`` scored on ``ONE`` scores nothing)."""
    chars = model.units == "char"
    pieces = [c for t in data.labels for c in (t if chars else t.split())]
    unseen = sorted(set(pieces) - set(model.alphabet_))
    if not unseen:
        return
    listed = ", ".join(repr(c) for c in unseen[:show])
    more = f" and {len(unseen) - show} more" if len(unseen) > show else ""
    writes = f"; it writes {''.join(model.alphabet_)[:40]!r}" if chars else ""
    warnings.warn(
        f"--test: {data.source!r} has {'characters' if chars else 'words'} the model cannot "
        f"write ({listed}{more}), each counted as an error{writes}",
        RnnkitWarning,
        stacklevel=3,
    )
