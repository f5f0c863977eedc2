"""Text and audio classification: ``rnnkit train classify``, ``evaluate`` and ``predict``.

Read labelled files (`rnnkit.data.labelled`: CSV/TSV with a header, or one folder per label),
fit a `SequenceClassifier` from the run's config, evaluate, and report. Audio (a folder per
label of ``.wav`` files, or a manifest with a ``path`` column) goes through the speech front end
(`rnnkit.audio`, MFCCs with deltas) first; its settings are saved in the model under
``"frontend"``, so ``evaluate`` and ``predict`` featurise WAV files the same way.
"""

from __future__ import annotations

import argparse
import csv
import io
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.augment import REVERB_MAX, WarpedEpochs, reverb_allowed
from ..audio.features import FrontEnd
from ..audio.files import by_speaker, featurise, front_end_of
from ..audio.norm import speaker_cmvn
from ..audio.tta import TTA_PICKS, tta_factors, view_proba
from ..audio.wav import read_wav
from ..config import nonneg_float, nonneg_int, option, positive_float, positive_int, probability
from ..data.dialect import column_index, csv_rows, delimiter_of
from ..data.labelled import (
    SPEAKER_COLUMN,
    Labelled,
    check_classes,
    check_known_labels,
    read_labelled,
    stratified_folds,
    stratified_split,
)
from ..data.text import decode_utf8, lines_of
from ..errors import CheckpointError, InputError, RnnkitWarning
from ..estimators.classifier import SequenceClassifier
from ..files import check_output
from ..io.checkpoint import load, load_checkpoint
from ..metrics import confusion_matrix, report
from ..training import last_path, plot_path, read_last
from .classify_plots import plot_attention, plot_confusion

TEXT_MODEL = {"cell": "lstm", "hidden": 64, "pooling": "mean"}  # --cell, --hidden, --pooling
AUDIO_MODEL = {  # the same for audio: chosen on held-out-speaker validation of spoken digits
    "cell": "gru",
    "hidden": 256,
    "pooling": "max",
}
AUDIO_AUGMENT = {  # what --vtlp and the masks are for audio when not given (text: none)
    "vtlp": 0.1,
    "time_masks": 2,
    "time_mask_width": 5,
    "feature_masks": 2,
    "feature_mask_width": 2,
    "speed": 0.1,  # since 2026-12-03, chosen on held-out-speaker validation (README)
}

AUDIO_TTA = {"tta_vtlp": 0.1, "tta_warps": 5}  # test-time VTLP for audio when not given
AUDIO_FEATURES = {  # --features: the front end each name stands for
    "mfcc": FrontEnd(),  # 13 MFCCs (c0 the log energy) + deltas + delta-deltas: 39 a frame
    "logmel": FrontEnd(n_mfcc=0),  # the 26 log-mel energies + deltas + delta-deltas: 78
}
AUDIO_FEATURES_DEFAULT = "mfcc"


def vtlp_spread(text: str) -> float:
    value = nonneg_float(text)
    if value >= 0.5:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 0.5), got {text!r}")
    return value


@dataclass(frozen=True)
class Span:
    """An option's ``LO,HI``: two numbers that ``ok(lo, hi)`` allows; ``expected`` says in
    words what is allowed, for the one-line error. The config keeps the text as given."""

    option: str
    ok: Callable[[float, float], bool]
    expected: str

    def parse(self, text: str) -> tuple[float, float]:
        """``LO,HI`` as a pair of floats; `argparse.ArgumentTypeError` when not allowed."""
        parts = str(text).split(",")
        try:
            lo, hi = (float(p) for p in parts) if len(parts) == 2 else (None, None)
        except ValueError:
            lo = hi = None
        if lo is None or hi is None or not self.ok(lo, hi):
            raise argparse.ArgumentTypeError(f"expected LO,HI: {self.expected}, got {text!r}")
        return lo, hi

    def text(self, text: str) -> str:
        """The option's argparse type: checked, kept as given."""
        self.parse(text)
        return text

    def of(self, text: str | None) -> tuple[float, float] | None:
        """The config's text as ``(lo, hi)``, None when off; a one-line error naming the
        option when malformed."""
        if text is None:
            return None
        try:
            return self.parse(text)
        except argparse.ArgumentTypeError as e:
            raise InputError(f"{self.option}: {e}") from None


NOISE_SNR = Span(
    "--noise-snr",
    lambda lo, hi: bool(np.isfinite(lo) and np.isfinite(hi)) and lo <= hi,
    "two decibel values with LO <= HI (e.g. 5,30)",
)
NOISE_COLOUR = Span(
    "--noise-color",
    lambda lo, hi: 0 <= lo <= hi <= 3,
    "two spectral exponents with 0 <= LO <= HI <= 3 (0 white, 1 pink, 2 brown; e.g. 0,2)",
)
REVERB = Span(
    "--reverb",
    reverb_allowed,
    f"reverberation times in seconds with 0 < LO <= HI <= {REVERB_MAX:g} (e.g. 0.1,0.5)",
)
snr_text, noise_of, reverb_of = NOISE_SNR.text, NOISE_SNR.of, REVERB.of


def colour_of(text: str | None, noise: tuple[float, float] | None) -> tuple[float, float] | None:
    """``--noise-color``'s ``(lo, hi)``, None when off; one-line errors when malformed or
    given without ``--noise-snr``."""
    colour = NOISE_COLOUR.of(text)
    if colour is not None and noise is None:
        raise InputError("--noise-color: colours the added noise; give --noise-snr LO,HI too")
    return colour


def odd_positive_int(text: str) -> int:
    value = positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"expected an odd integer >= 1, got {text!r}")
    return value


def smoothing(text: str) -> float:
    value = nonneg_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def mixup_alpha(text: str) -> float:
    value = nonneg_float(text)
    if value > 10:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 10], got {text!r}")
    return value


@dataclass(frozen=True)
class ClassifyConfig:
    """One ``rnnkit train classify`` run; each field is also its option."""

    train: str = option("", help="CSV/TSV with a header, or a folder with one subfolder per label")
    valid: str | None = option(None, help="validation data", default_help="a stratified 10 %")
    test: str | None = option(None, help="test data, scored at the end", default_help="none")
    text_column: str = option("text", help="the CSV/TSV column holding the text")
    label_column: str = option("label", help="the CSV/TSV column holding the label")
    tokens: str = option("word", help="read characters or words", choices=("char", "word"))
    min_count: int = option(2, help="keep words seen at least this often", type=positive_int)
    cell: str | None = option(
        None,
        help="recurrent cell",
        choices=("lstm", "gru", "rnn"),
        default_help=f"{TEXT_MODEL['cell']} for text, {AUDIO_MODEL['cell']} for audio",
    )
    layers: int = option(1, help="stacked recurrent layers", type=positive_int)
    hidden: int | None = option(
        None,
        help="hidden size per direction",
        type=positive_int,
        default_help=f"{TEXT_MODEL['hidden']} for text, {AUDIO_MODEL['hidden']} for audio",
    )
    embedding: int = option(128, help="embedding size", type=positive_int)
    bidirectional: bool = option(True, help="read each text both ways")
    pooling: str | None = option(
        None,
        help="how the steps become one vector (meanmax: the mean and the maximum side by side, "
        "twice the width)",
        choices=("mean", "max", "last", "attention", "meanmax"),
        default_help=f"{TEXT_MODEL['pooling']} for text, {AUDIO_MODEL['pooling']} for audio",
    )
    dropout: float = option(0.5, help="dropout before the output layer", type=probability)
    balanced: bool = option(False, help="weight classes inversely to their frequency")
    label_smoothing: float = option(
        0.0,
        help="train towards 1-E on the label and E spread over all classes; 0: plain labels",
        type=smoothing,
    )
    mixup: float = option(
        0.0,
        help="training only: mixup, each batch mixed with itself in another order (features "
        "and loss) by a weight drawn from Beta(A, A) every step (Zhang et al. 2018); 0: none",
        type=mixup_alpha,
    )
    ema: float = option(
        0.0,
        help="training only: validate and keep a moving average of the weights, of decay EMA "
        "per step (0.998: about the last 500 steps; Polyak averaging); 0: the weights "
        "themselves",
        type=smoothing,  # the same check: a number in [0, 1)
    )
    vtlp: float | None = option(
        None,
        help="audio, training only: vocal tract length perturbation, each recording "
        "featurised with its mel filters warped by a fresh factor in [1-V, 1+V] every epoch "
        "(Jaitly and Hinton 2013); 0: none",
        type=vtlp_spread,
        default_help=f"{AUDIO_AUGMENT['vtlp']} for audio",
    )
    speed: float | None = option(
        None,
        help="audio, training only: speed perturbation, each recording played a fresh factor "
        "in [1-S, 1+S] times as fast every epoch (resampled: tempo and pitch; Ko et al. 2015), "
        "before VTLP; 0: none",
        type=vtlp_spread,
        default_help=f"{AUDIO_AUGMENT['speed']:g} for audio",
    )
    noise_snr: str | None = option(
        None,
        help="audio, training only: white noise added to each recording every epoch at a "
        "fresh signal-to-noise ratio uniform in LO,HI decibels (of the recording's mean "
        "power), after speed perturbation and before featurisation",
        type=NOISE_SNR.text,
        default_help="none",
    )
    noise_color: str | None = option(
        None,
        help="audio, training only, with --noise-snr: the noise coloured, its power falling "
        "as f^-B with B uniform in LO,HI per recording and epoch (0 white, 1 pink, 2 brown; "
        "rooms and microphones hum low)",
        type=NOISE_COLOUR.text,
        default_help="white",
    )
    reverb: str | None = option(
        None,
        help="audio, training only: each recording every epoch in a fresh synthetic room, "
        "its reverberation time uniform in LO,HI seconds (the direct sound 0-10 dB above the "
        "tail), after speed perturbation and before the noise",
        type=REVERB.text,
        default_help="none",
    )
    time_masks: int | None = option(
        None,
        help="audio, training only: SpecAugment time masks per recording",
        type=nonneg_int,
        default_help=f"{AUDIO_AUGMENT['time_masks']} for audio",
    )
    time_mask_width: int | None = option(
        None,
        help="widest time mask in 10 ms frames (at most a fifth of the recording)",
        type=nonneg_int,
        default_help=f"{AUDIO_AUGMENT['time_mask_width']} for audio",
    )
    feature_masks: int | None = option(
        None,
        help="audio, training only: SpecAugment masks of adjacent cepstral coefficients per "
        "recording (the same ones of the deltas too)",
        type=nonneg_int,
        default_help=f"{AUDIO_AUGMENT['feature_masks']} for audio",
    )
    feature_mask_width: int | None = option(
        None,
        help="widest feature mask in coefficients",
        type=nonneg_int,
        default_help=f"{AUDIO_AUGMENT['feature_mask_width']} for audio",
    )
    features: str | None = option(
        None,
        help="audio: the frames the network reads, 13 MFCCs (c0 the log frame energy) or the "
        "26 log-mel filterbank energies, each with deltas and delta-deltas, normalised per "
        "recording; saved in the model for evaluate and predict",
        choices=tuple(AUDIO_FEATURES),
        default_help=f"{AUDIO_FEATURES_DEFAULT} for audio",
    )
    cepstra: int | None = option(
        None,
        help="audio, with --features mfcc: cepstral coefficients per frame (c0 the log "
        f"frame energy; at most the {FrontEnd().n_mels} mel filters); saved in the model",
        type=positive_int,
        default_help=f"{FrontEnd().n_mfcc} for audio",
    )
    speaker_norm: bool = option(
        False,
        help="audio: normalise the features over each speaker's recordings (each feature's "
        "mean and deviation over all of a speaker's frames; Kaldi's per-speaker CMVN) instead "
        "of over each recording; needs a manifest with a 'speaker' column for --train; "
        "evaluate reads --test's 'speaker' column, and takes the files as one speaker without "
        "it, as predict always does; saved in the model",
    )
    tta_vtlp: float | None = option(
        None,
        help="audio, prediction: test-time VTLP, each recording also read with its mel "
        "filters warped by factors evenly spaced in [1-V, 1+V] and the probabilities "
        "averaged; saved in the model for evaluate and predict; 0: plain features only",
        type=vtlp_spread,
        default_help=f"{AUDIO_TTA['tta_vtlp']} for audio",
    )
    tta_warps: int | None = option(
        None,
        help="audio, prediction: how many warp factors (odd, 1 among them); 1: plain features only",
        type=odd_positive_int,
        default_help=f"{AUDIO_TTA['tta_warps']} for audio",
    )
    tta_pick: str | None = option(
        None,
        help="audio, prediction, with test-time VTLP: how the warped views' probabilities "
        "become one, their mean or, per recording, the view of the lowest entropy (the most "
        "confident); saved in the model for evaluate and predict",
        choices=TTA_PICKS,
        default_help="mean",
    )
    batch: int = option(32, help="examples per batch", type=positive_int)
    lr: float = option(3e-3, help="peak learning rate of AdamW", type=positive_float)
    weight_decay: float = option(0.0, help="AdamW's decoupled weight decay", type=nonneg_float)
    epochs: float | None = option(
        None, help="budget in passes over the data", type=positive_float, default_help="10"
    )
    minutes: float | None = option(
        None, help="budget in wall-clock minutes", type=positive_float, default_help="none"
    )
    patience: int = option(
        3, help="stop after N epochs without a better validation loss; 0: never", type=nonneg_int
    )
    seed: int = option(0, help="random seed")
    ensemble: int = option(
        1,
        help="train N networks (seeds SEED..SEED+N-1, the same data) one after another and "
        "average their probabilities; --out holds them all",
        type=positive_int,
    )
    cv: int = option(
        0,
        help="first score K-fold stratified cross-validation on --train (a fresh model per "
        "fold, same options); --out then holds the model trained as without --cv; "
        "0: no cross-validation",
        type=nonneg_int,
    )
    out: str = option("runs/classify.safetensors", help="the model file; loss curve beside it")


def augmentation(cfg: ClassifyConfig, audio: bool) -> dict[str, Any]:
    """The run's --vtlp, --speed and mask settings: as given, else `AUDIO_AUGMENT` for audio
    and none for text (where giving any is an error)."""
    given = {k: getattr(cfg, k) for k in AUDIO_AUGMENT if getattr(cfg, k) is not None}
    if not audio:
        if any(given.values()):
            name = next(k for k, v in given.items() if v)
            raise InputError(
                f"--{name.replace('_', '-')}: augments audio; --train holds text (drop it)"
            )
        return dict.fromkeys(AUDIO_AUGMENT, 0)
    return AUDIO_AUGMENT | given


def test_time(cfg: ClassifyConfig, audio: bool) -> dict[str, Any]:
    """The run's --tta-vtlp, --tta-warps and --tta-pick: as given, else `AUDIO_TTA` (and the
    mean) for audio; text has none (giving a warp or a pick is an error)."""
    given = {k: getattr(cfg, k) for k in AUDIO_TTA if getattr(cfg, k) is not None}
    pick = cfg.tta_pick or "mean"
    if not audio:
        if given.get("tta_vtlp") or given.get("tta_warps", 1) != 1:
            name = "tta-vtlp" if given.get("tta_vtlp") else "tta-warps"
            raise InputError(f"--{name}: warps audio at prediction; --train holds text (drop it)")
        if pick != "mean":
            raise InputError(
                "--tta-pick: picks among warped audio views; --train holds text (drop it)"
            )
        return {"tta_vtlp": 0.0, "tta_warps": 1, "tta_pick": "mean"}
    return AUDIO_TTA | given | {"tta_pick": pick}


def audio_front(cfg: ClassifyConfig, audio: bool) -> FrontEnd | None:
    """The run's front end: `AUDIO_FEATURES` of --features (else of
    `AUDIO_FEATURES_DEFAULT`), with --cepstra MFCCs if given, for audio; None for text
    (where giving either is an error)."""
    if not audio:
        for name in ("features", "cepstra"):
            if getattr(cfg, name) is not None:
                raise InputError(f"--{name}: chooses audio features; --train holds text (drop it)")
        if cfg.speaker_norm:
            raise InputError(
                "--speaker-norm: normalises audio features; --train holds text (drop it)"
            )
        return None
    front = AUDIO_FEATURES[cfg.features or AUDIO_FEATURES_DEFAULT]
    if cfg.speaker_norm:
        front = replace(front, norm="speaker")
    if cfg.cepstra is None:
        return front
    if not front.n_mfcc:
        raise InputError(
            f"--cepstra: counts MFCCs; --features {cfg.features} has none (drop --cepstra)"
        )
    if cfg.cepstra > front.n_mels:
        raise InputError(
            f"--cepstra: expected at most {front.n_mels} (the mel filters), got {cfg.cepstra}"
        )
    return replace(front, n_mfcc=cfg.cepstra)


def network(cfg: ClassifyConfig, audio: bool) -> dict[str, Any]:
    """The run's --cell, --hidden and --pooling: as given, else `AUDIO_MODEL` for audio and
    `TEXT_MODEL` for text."""
    given = {k: getattr(cfg, k) for k in TEXT_MODEL if getattr(cfg, k) is not None}
    return (AUDIO_MODEL if audio else TEXT_MODEL) | given


def estimator(cfg: ClassifyConfig, audio: bool = False) -> SequenceClassifier:
    augment = augmentation(cfg, audio)
    net = network(cfg, audio)
    return SequenceClassifier(
        tokens=cfg.tokens,
        min_count=cfg.min_count if cfg.tokens == "word" else 1,
        embedding_dim=cfg.embedding,
        cell=net["cell"],
        hidden_size=net["hidden"],
        num_layers=cfg.layers,
        bidirectional=cfg.bidirectional,
        pooling=net["pooling"],
        dropout=cfg.dropout,
        class_weight="balanced" if cfg.balanced else None,
        label_smoothing=cfg.label_smoothing,
        mixup=cfg.mixup,
        ema=cfg.ema,
        batch_size=cfg.batch,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        time_masks=augment["time_masks"],
        time_mask_width=augment["time_mask_width"],
        feature_masks=augment["feature_masks"],
        feature_mask_width=augment["feature_mask_width"],
        feature_blocks=1 + FrontEnd().deltas if audio else 1,
        epochs=cfg.epochs,
        minutes=cfg.minutes,
        patience=cfg.patience or None,
        seed=cfg.seed,
        members=cfg.ensemble,
        **test_time(cfg, audio),
        verbose=True,
    )


def train_classify(
    cfg: ClassifyConfig, force: bool = False, log: Any = None, resume: bool = False
) -> dict[str, Any]:
    """Check the outputs, read the data, fit (or, with ``resume``, continue the fit saved at
    ``--out``), score; the metrics for ``--json``."""
    if resume and cfg.cv:
        raise InputError(
            "--resume continues the fit saved at --out; --cv refits every fold from scratch: "
            "drop --cv (or --resume)"
        )
    inputs = (cfg.train, cfg.valid, cfg.test)
    out = Path(cfg.out)
    check_output(out, "checkpoint", inputs=inputs, force=force)
    check_output(last_path(out), "checkpoint", inputs=inputs, force=force, what="--out (.last)")
    check_output(plot_path(out), "png", inputs=inputs, force=force, what="--out (loss plot)")
    if resume:
        read_last(last_path(out))  # before the data is read: a missing or damaged .last file
    columns = (cfg.text_column, cfg.label_column)
    data = read_labelled(cfg.train, *columns, what="--train")
    check_classes(data, "--train")
    valid = read_labelled(cfg.valid, *columns, what="--valid") if cfg.valid else None
    test = read_labelled(cfg.test, *columns, what="--test") if cfg.test else None
    front = audio_front(cfg, data.audio)
    augment = augmentation(cfg, front is not None)  # checked before any training (--cv too)
    noise = noise_of(cfg.noise_snr)
    if noise and front is None:
        raise InputError("--noise-snr: adds noise to audio; --train holds text (drop it)")
    colour = colour_of(cfg.noise_color, noise)
    reverb = reverb_of(cfg.reverb)
    if reverb and front is None:
        raise InputError("--reverb: puts audio in a room; --train holds text (drop it)")
    if front is not None and front.norm == "speaker":
        check_speakers_named(cfg, (data, "--train"), (valid, "--valid"))
    X = inputs_of(data, front, "--train")
    paths = list(data.texts)
    folds = stratified_folds(data.labels, cfg.cv, cfg.seed) if cfg.cv else []
    X_valid = inputs_of(valid, front, "--valid") if valid is not None else None
    cv = cross_validate(cfg, X, data, folds, X_valid, valid, log) if folds else {}
    whole, valid_i = data, None  # with --speaker-norm the held-out 10 % keep whole's grouping
    if valid is None:  # a stratified 10 % held out
        train_i, valid_i = stratified_split(data.labels, 0.1, cfg.seed)
        X, X_valid = [X[i] for i in train_i], [X[i] for i in valid_i]
        data, valid = data.subset(train_i), data.subset(valid_i)
        paths = [paths[i] for i in train_i]
    assert X_valid is not None
    classes = sorted(set(data.labels))
    for part, what in ((valid, "--valid"), (test, "--test")):
        if part is not None:
            check_known_labels(part, classes, what)
    # verbose: it logs the data's size and classes once they are checked
    clf = estimator(cfg, audio=front is not None)
    X_epoch: Callable[[int], list[np.ndarray]] | None = None
    if front is not None and (augment["vtlp"] or augment["speed"] or noise or reverb):
        samples = [read_wav(p, front.rate, "--train") for p in paths]
        epochs = WarpedEpochs(
            samples, front, augment["vtlp"], cfg.seed, augment["speed"], noise, colour, reverb
        )
        # with --speaker-norm each epoch's copies are normalised over each speaker's
        X_epoch = SpeakerEpochs(epochs, data.speakers) if front.norm == "speaker" else epochs
    extra = {"frontend": asdict(front)} if front is not None else {}
    clf.fit(
        X,
        data.labels,
        X_valid,
        valid.labels,
        out=out,
        metadata={"run": asdict(cfg) | network(cfg, front is not None), **extra},
        resume=resume,
        force=force,
        X_epoch=X_epoch,
    )
    if front is None:
        val_accuracy = clf.score(X_valid, valid.labels)
    elif front.norm == "speaker" and valid_i is not None:  # as X_valid: over whole speakers
        views = audio_views(clf, front, list(whole.texts), "--valid", whole.speakers)
        held = [[view[i] for i in valid_i] for view in views]
        proba = view_proba(clf.predict_proba, held, clf.tta_pick)
        val_accuracy = float(np.mean(clf.classes_[proba.argmax(axis=1)] == valid.labels))
    else:
        val_accuracy = float(np.mean(predicted_audio(clf, front, valid, "--valid") == valid.labels))
    metrics: dict[str, Any] = {
        "val_accuracy": val_accuracy,
        "best_val_loss": clf.best_val_loss_,
        "steps": clf.n_steps_,
        "stopped": clf.stopped_,
        "checkpoint": str(out),
    } | cv
    if test is not None:
        predicted = (
            clf.predict(inputs_of(test, front, "--test"))
            if front is None
            else predicted_audio(clf, front, test, "--test")
        )
        scores = report(test.labels, predicted, classes)
        metrics |= {"test_accuracy": scores["accuracy"], "test_macro_f1": scores["macro_f1"]}
    return metrics


def check_speakers_named(cfg: ClassifyConfig, *parts: tuple[Labelled | None, str]) -> None:
    """--speaker-norm needs each training and validation recording's speaker (a manifest's
    'speaker' column), and a label that is not the speaker (evaluate would group by it)."""
    if cfg.label_column == SPEAKER_COLUMN:
        raise InputError(
            f"--speaker-norm: groups recordings by their {SPEAKER_COLUMN!r} column, which is "
            "the label here (--label-column); a speaker classifier cannot use it (drop it)"
        )
    for part, what in parts:
        if part is not None and part.speakers is None:
            raise InputError(
                f"--speaker-norm: normalises over each speaker's recordings; {what} "
                f"{part.source!r} names no speakers (expected a manifest with a "
                f"{SPEAKER_COLUMN!r} column: path,label,{SPEAKER_COLUMN})"
            )


def inputs_of(data: Labelled, front: FrontEnd | None, what: str) -> list[Any]:
    """What the estimator reads: the texts, or the feature frames of the audio files."""
    if front is None and data.audio:
        raise InputError(
            f"{what}: {data.source!r} holds audio files; the model reads text (train it on "
            "audio, or give text)"
        )
    if front is not None and not data.audio:
        raise InputError(
            f"{what}: {data.source!r} holds text; the model reads audio (expected a folder per "
            "label of .wav files, or a manifest with a 'path' column)"
        )
    return featurise(data.texts, front, what, data.speakers) if front is not None else data.texts


@dataclass(frozen=True)
class SpeakerEpochs:
    """Epoch ``e``'s augmented features (``epochs(e)``, unnormalised) normalised over each
    speaker's recordings of that epoch (`rnnkit.audio.norm.speaker_cmvn`)."""

    epochs: WarpedEpochs
    speakers: list[str] | None

    def __call__(self, epoch: int) -> list[np.ndarray]:
        return speaker_cmvn(self.epochs(epoch), self.speakers)


def cross_validate(
    cfg: ClassifyConfig,
    X: list[Any],
    data: Labelled,
    folds: list[np.ndarray],
    X_valid: list[Any] | None,
    valid: Labelled | None,
    log: Any,
) -> dict[str, Any]:
    """Accuracy on each held-out fold of a fresh estimator fitted on the others (validated on
    ``valid`` if given, else on its own stratified 10 %); mean and (population) std."""
    scores = []
    for k, held in enumerate(folds, start=1):
        rest = np.setdiff1d(np.arange(len(data)), held)
        check = (X_valid, valid.labels) if valid is not None else (None, None)
        clf = estimator(cfg, audio=data.audio).fit(
            [X[i] for i in rest], [data.labels[i] for i in rest], *check
        )
        scores.append(clf.score([X[i] for i in held], [data.labels[i] for i in held]))
        if log is not None:
            log(f"cv fold {k}/{len(folds)}: accuracy {scores[-1]:.4f} on {len(held):,} examples")
    return {
        "cv_accuracy": scores,
        "cv_accuracy_mean": float(np.mean(scores)),
        "cv_accuracy_std": float(np.std(scores)),
    }


def load_classifier(path: str) -> SequenceClassifier:
    model = load(path)
    if not isinstance(model, SequenceClassifier) or model.input_ not in ("text", "features"):
        raise CheckpointError(
            f"{path!r} holds no text or audio classifier; expected a model from "
            "'rnnkit train classify'"
        )
    if model.input_ == "features" and front_end(path) is None:
        raise CheckpointError(
            f"{path!r} holds a classifier of feature frames without a front end; expected a "
            "model from 'rnnkit train classify' on text or audio"
        )
    return model


def front_end(path: str) -> FrontEnd | None:
    """The audio front end saved with a classifier; None for text."""
    saved = load_checkpoint(path).metadata.get("frontend")
    return front_end_of(saved) if isinstance(saved, dict) else None


def audio_proba(
    clf: SequenceClassifier,
    front: FrontEnd,
    files: list[str],
    what: str,
    speakers: list[str] | None = None,
) -> np.ndarray:
    """Class probabilities ``(N, C)`` of WAV files: with the model's test-time VTLP
    (``tta_vtlp``, ``tta_warps``; `rnnkit.audio.tta`) made one over the warped views as
    ``tta_pick`` says (their mean, or the most confident view's), else of the plain features
    (a model saved before test-time VTLP existed: plain). A model trained with
    ``--speaker-norm`` normalises each view over each speaker's files (``speakers``; None:
    the files are one speaker's)."""
    if front.norm == "speaker":
        check_speaker_groups(speakers, len(files), what)
    return view_proba(
        clf.predict_proba, audio_views(clf, front, files, what, speakers), clf.tta_pick
    )


def audio_views(
    clf: SequenceClassifier,
    front: FrontEnd,
    files: list[str],
    what: str,
    speakers: list[str] | None = None,
) -> list[list[np.ndarray]]:
    """What the model reads of each file, one list per test-time view: the plain features
    alone, or those under each of the model's warps (`rnnkit.audio.tta.warped_views`, view by
    view); each view normalised per speaker for a ``--speaker-norm`` model
    (`rnnkit.audio.files.by_speaker`)."""
    factors = tta_factors(clf.tta_vtlp, clf.tta_warps)
    if len(factors) == 1:
        return [featurise(files, front, what, speakers)]
    recordings = [read_wav(p, front.rate, what) for p in files]
    return [
        by_speaker([front.features(x, warp=float(a)) for x in recordings], front, speakers)
        for a in factors
    ]


MIN_SPEAKER_RECORDINGS = 10  # fewer per speaker, and per-speaker statistics are unsteady (README)


def check_speaker_groups(speakers: list[str] | None, n: int, what: str) -> None:
    """A warning when a model normalised per speaker is given a speaker (``speakers``; None:
    all ``n`` files one speaker's) with fewer than `MIN_SPEAKER_RECORDINGS` recordings."""
    counts = Counter(speakers) if speakers is not None else Counter({"": n})
    few = sorted(c for c in counts.values() if c < MIN_SPEAKER_RECORDINGS)
    if not few:
        return
    if speakers is None:
        text = f"takes the {n} file(s) given as one speaker's, fewer than {MIN_SPEAKER_RECORDINGS}"
    else:
        text = (
            f"{len(few)} speaker(s) have fewer than {MIN_SPEAKER_RECORDINGS} recordings (the "
            f"fewest {few[0]})"
        )
    warnings.warn(
        f"{what}: the model normalises over each speaker's recordings and {text}: the "
        "statistics are unsteady and accuracy lower; give a speaker's recordings together",
        RnnkitWarning,
        stacklevel=3,
    )


def predicted_audio(
    clf: SequenceClassifier, front: FrontEnd, data: Labelled, what: str
) -> np.ndarray:
    """The likeliest class of each recording of ``data`` (`audio_proba`)."""
    inputs_of(data, front, what)  # the one-line error for text given to an audio model
    if front.norm == "speaker" and data.speakers is None:
        warnings.warn(
            f"{what}: the model normalises over each speaker's recordings and {what} has no "
            f"{SPEAKER_COLUMN!r} column: its {len(data)} file(s) are taken as one speaker's",
            RnnkitWarning,
            stacklevel=2,
        )
    proba = audio_proba(clf, front, list(data.texts), what, data.speakers)
    return clf.classes_[np.argmax(proba, axis=1)]


def predict_audio(clf: SequenceClassifier, front: FrontEnd, files: list[str]) -> np.ndarray:
    """Class probabilities ``(N, C)`` of WAV files (`audio_proba`); a folder's files are given
    by `rnnkit.audio.files.wav_paths`. A model trained with ``--speaker-norm`` takes them as
    one speaker's recordings."""
    if not files:
        raise InputError("predict: an audio classifier needs .wav files to label; got none")
    return audio_proba(clf, front, files, "predict")


def confusion_path(model: str) -> Path:
    """``<model stem>.confusion.png`` beside the model."""
    path = Path(model)
    return path.with_name(f"{path.stem}.confusion.png")


def evaluate(
    path: str,
    test: str,
    text_column: str,
    label_column: str,
    plot: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision/recall of a saved classifier; the confusion
    matrix drawn to ``plot`` (default `confusion_path`), its path under ``"plot"``."""
    figure = check_output(
        plot or confusion_path(path), "png", inputs=(path, test), force=force, what="--plot"
    )
    clf = load_classifier(path)
    data = read_labelled(test, text_column, label_column, what="--test")
    classes = [str(c) for c in clf.classes_.tolist()]
    check_known_labels(data, classes, "--test")
    front = front_end(path)
    predicted = (
        clf.predict(inputs_of(data, front, "--test"))
        if front is None
        else predicted_audio(clf, front, data, "--test")
    ).astype(str)
    counts = confusion_matrix(data.labels, predicted, classes)
    plot_confusion(counts, classes, figure, "--plot")
    return report(data.labels, predicted, classes) | {
        "confusion": counts.tolist(),
        "plot": str(figure),
    }


EXPLAINED = 8  # inputs drawn by ``predict --explain``


def check_explain(clf: SequenceClassifier, path: str, inputs: list[str], force: bool) -> Path:
    """Before any input is read: ``--explain`` needs an attention-pooled model and a path."""
    if clf.pooling != "attention":
        raise InputError(
            f"predict --explain: the model pools with {clf.pooling!r}; a heat map of attention "
            "weights needs a model trained with --pooling attention"
        )
    return check_output(path, "png", inputs=inputs, force=force, what="--explain")


def explain(clf: SequenceClassifier, lines: list[str], path: Path) -> Path:
    """A heat map of the attention weights over the tokens of the first `EXPLAINED` lines."""
    first = lines[:EXPLAINED]
    weights = clf.attention_weights(first)
    tokens = [clf.vocab_.split(text) or [clf.vocab_.unk] for text in first]
    labels = [str(label) for label in clf.predict(first)]
    return plot_attention(tokens, weights, labels, path, "--explain")


def read_lines(files: list[str], stdin: Any) -> list[str]:
    """Every line of the files (of a ``.csv``/``.tsv`` file, its ``text`` column), or of stdin:
    UTF-8 (a byte-order mark dropped, so it does not
    become part of the first text) or UTF-16 with its mark, as `rnnkit.data.text.decode_utf8`
    reads them; a one-line error naming the file and line otherwise."""
    if not files:
        lines = [line.rstrip("\r\n") for line in stdin]
        if lines and lines[0].startswith("\ufeff"):
            lines[0] = lines[0][1:]
        return lines
    out: list[str] = []
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise InputError(f"predict: no such file {name!r}")
        if path.suffix.lower() in (".csv", ".tsv"):
            out += _text_column(path)
        else:
            out += lines_of(decode_utf8(path, "predict"))
    return out


def _text_column(path: Path, column: str = "text") -> list[str]:
    """The ``text`` column of a CSV/TSV with a header (as ``train classify`` reads it: labels
    and other columns may be there and are not read), or one line naming the file."""
    text = decode_utf8(path, "predict")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else delimiter_of(text.split("\n", 1)[0])
    rows = csv_rows(io.StringIO(text, newline=""), delimiter)
    try:
        header = [h.strip() for h in next(rows, [])]
        k = column_index(header, column)
        if k is None:
            raise InputError(
                f"predict: {str(path)!r} has no column {column!r} (found {header[:8]}); "
                "expected a CSV/TSV with a text column, or a .txt file of one example per line"
            )
        return [row[k] for row in rows if len(row) > k and row != header and any(row)]
    except csv.Error as exc:
        raise InputError(f"predict: {str(path)!r} is malformed CSV ({exc})") from None
