"""`make eval-speech`: spoken digits (the Free Spoken Digit Dataset, 5 speakers x 500
recordings) recognised by classification and by CTC transcription, also live.

1. Classification, the dataset's usual split (recordings 0-4 of each speaker for testing,
   5-49 for training): ``rnnkit train classify`` on the folders per digit that
   ``rnnkit data fsdd`` writes, with its audio defaults (MFCC + deltas, bidirectional GRU
   256, max pooling, speed perturbation, VTLP and masks).
2. Speaker independence: leave one speaker out, 5 folds. Per fold, interleaved, each side in
   its own process with the same thread pins and the same features (rnnkit's front end), folds,
   validation split, batches and budget: rnnkit's `SequenceClassifier` and the same network in
   PyTorch (`benchmarks/speech_torch.py`). No published speaker-independent FSDD figure is
   known to us; PyTorch is the peer. Test-time VTLP (``--tta-vtlp``, ``--tta-warps``; the
   audio defaults of ``train classify``): both sides average their probabilities over the
   same warped views (`rnnkit.audio.tta`), and report the plain features' accuracy beside;
   ``--tta-pick confident`` keeps each recording's most confident view instead, and every
   pick is scored beside from the same models (``picks``). ``--dump-proba DIR`` keeps each
   side's probabilities per member and view. ``--pooling meanmax``: mean and max pooling
   side by side; ``--pooling attention``: rnnkit's `AttentionPool` (both sides).
   ``--same-start``: the PyTorch side starts each member from rnnkit's initial weights and
   draws rnnkit's dropout masks (`write_starts`), so that only the engine differs;
   ``--speakers a,b``: those test speakers' folds alone.
3. Transcription of digit strings (2-7 clips of one speaker joined by short silences) of a
   speaker never heard in training: ``rnnkit train transcribe`` (unidirectional GRU, CTC over
   characters, augmented), word error rate greedy, with a beam of 8, and kept to the digit
   words (snapped; the lexicon beam). ``--ctc-bidirectional 1``, ``--ctc-units word``: the
   offline models; ``--ctc-validate speaker``: validate on one training speaker's strings,
   trained on the other three (for choosing settings without the test speaker);
   ``--ctc-validate-gain DB``: that speaker's strings also rebuilt DB dB quieter under the same
   noise (a low signal-to-noise ratio, as the test speaker's) and scored, ``low_snr_wer_*``.
   ``--ctc-ensemble N``: N networks (seeds SEED..SEED+N-1) in one model; every score is then
   also given under ``"combined"`` for each member alone (``member0``, ...) and each way of
   combining them (``prob``, ``logprob``: posteriors averaged before decoding; ``vote``: the
   members' transcripts voted word by word; ``weighted``: each vote weighted by the word's
   confidence from its member's posteriors), from one training run.
4. Live: every test utterance fed 10 ms at a time through `LiveTranscriber`; its transcript
   against the offline greedy one, and the compute per frame (median, p99) against the hop.

Writes speech.json and speech.md into --out (runs/eval-speech; --quick: runs/eval-speech-quick).

    python benchmarks/eval_speech.py                # about 15-20 minutes on 2 cores
    python benchmarks/eval_speech.py --quick        # a smoke test
    python benchmarks/eval_speech.py --parts loso --sides rnnkit --vtlp 0 --tag plain
    python benchmarks/eval_speech.py --parts transcribe --ctc-units word --ctc-bidirectional 1 \
        --tag word-bi
    python benchmarks/eval_speech.py --side rnnkit FOLD.npz PARAMS.json   # one LOSO side
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "speech" / "fsdd" / "recordings"
THREADS = "2"
SEED = 0
VALIDATION = 0.1
AUGMENT_OPTIONS = ("vtlp", "time_masks", "time_mask_width", "feature_masks", "feature_mask_width")
LOSO_AUGMENT = ("speed", "noise_snr", "noise_color", "reverb")  # classify's (CTC: its own)
LOSO_FRONT = ("features", "cepstra")  # classification alone: train classify's
MODEL_OPTIONS = (
    "hidden",
    "layers",
    "dropout",
    "label_smoothing",
    "mixup",
    "ema",
    "weight_decay",
    "patience",
    "pooling",
)
TTA_OPTIONS = ("tta_vtlp", "tta_warps", "tta_pick")
CTC_OPTIONS = (
    "units",
    "bidirectional",
    "hidden",
    "layers",
    "dropout",
    "patience",
    "select",
    "warps",
    "prior_frames",
    "norm",
    "level",
    "speed",
    "noise_snr",
    "seed",
    "ensemble",
) + AUGMENT_OPTIONS


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in MODEL_OPTIONS if getattr(args, k) is not None}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    threads = env.get("EVAL_SPEECH_THREADS", THREADS)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = threads
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    return env


def machine() -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_machine

    flags = bench_machine.isa() or []
    versions = bench_machine.versions()
    return {
        "cpu_model": bench_machine.cpu_model(),
        "cores": os.cpu_count(),
        "avx512": any(f.startswith("avx512") for f in flags),
        "load_average": os.getloadavg(),
        "versions": {k: versions.get(k) for k in ("python", "numpy", "numba", "torch")},
        "threads": {k: v for k, v in _env().items() if k.endswith("_NUM_THREADS")}
        | {"torch.set_num_threads": int(_env()["OMP_NUM_THREADS"])},
        "commit": bench_machine.git_commit(ROOT),
    }


# -- one side of a leave-one-speaker-out fold (its own process) ------------------------------
def load_fold(fold: Path) -> dict[str, np.ndarray]:
    """A fold's indices with the features they index (``flat``, ``offsets``, ``y``; with
    VTLP, ``warped``: the features of each epoch, and with speed perturbation
    ``warped_offsets``, each epoch's offsets into it; with test-time VTLP, ``views``: every
    recording's features under each factor), from the shared features file."""
    npz = dict(np.load(fold))
    return npz | dict(np.load(str(npz.pop("features"))))


def epoch_train(npz: dict, e: int) -> list[np.ndarray]:
    """The fold's training recordings as augmented for epoch ``e`` (``warped``: ``(E,
    frames, F)`` at the plain offsets; with ``warped_offsets`` ``(E, N + 1)``, one
    ``(frames, F)`` array, epoch ``k``'s recording ``i`` at ``warped_offsets[k, i]``).
    Imports no rnnkit: the PyTorch side calls it too."""
    warped = npz["warped"]
    if "warped_offsets" in npz:
        offsets = npz["warped_offsets"][e % len(npz["warped_offsets"])]
        return [warped[offsets[i] : offsets[i + 1]] for i in npz["train"]]
    offsets, frames = npz["offsets"], warped[e % len(warped)]
    return [frames[offsets[i] : offsets[i + 1]] for i in npz["train"]]


def rnnkit_side(fold: Path, params_path: Path) -> None:
    from rnnkit.estimators.classifier import SequenceClassifier

    params = json.loads(params_path.read_text())
    npz = load_fold(fold)
    flat, offsets = npz["flat"], npz["offsets"]

    def part(name: str) -> tuple[list[np.ndarray], list[int]]:
        index = npz[name]
        return [flat[offsets[i] : offsets[i + 1]] for i in index], npz["y"][index].tolist()

    def epoch(e: int) -> list[np.ndarray]:
        return epoch_train(npz, e)

    (X, y), (Xv, yv), (Xt, yt) = part("train"), part("valid"), part("test")
    X_epoch = epoch if "warped" in npz else None
    members = []
    for seed in ensemble_seeds(params):
        t0 = time.perf_counter()
        p = {k: v for k, v in params.items() if k not in SIDE_KEYS} | {"seed": seed}
        clf = SequenceClassifier(**p).fit(X, y, Xv, yv, X_epoch=X_epoch)
        members.append(
            {
                "view_test_proba": tta_views(clf.predict_proba, npz, "test"),
                "view_valid_proba": tta_views(clf.predict_proba, npz, "valid"),
                "plain_test_proba": clf.predict_proba(Xt),
                "plain_valid_proba": clf.predict_proba(Xv),
                "seq_per_s": clf.throughput_,
                "steps": clf.n_steps_,
                "epochs": clf.n_steps_ / -(-len(X) // params["batch_size"]),
                "fit_seconds": time.perf_counter() - t0,
            }
        )
    dump_views(npz, "rnnkit", members, np.asarray(yt), np.asarray(yv))
    print(json.dumps(ensemble_result(members, np.asarray(yt), np.asarray(yv), tta_pick(params))))


def _tta_module() -> Any:
    """`rnnkit.audio.tta`, loaded by path: this file's side functions import no rnnkit (the
    PyTorch side calls them too)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "rnnkit_tta", ROOT / "src" / "rnnkit" / "audio" / "tta.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tta_pick(params: dict) -> str:
    """The run's test-time pick (``--tta-pick``; "mean" for estimators without it)."""
    return str(params.get("tta_pick", "mean"))


def tta_views(proba: Callable[[list[np.ndarray]], np.ndarray], npz: dict, name: str) -> np.ndarray:
    """``(K, N, C)``: the probabilities of the fold's part ``name`` under each test-time warp
    factor (``npz["views"]``, `rnnkit.audio.tta`); ``K = 1``, the plain features, without
    views. Imports no rnnkit: the PyTorch side calls it too."""
    offsets, index = npz["offsets"], npz[name]
    views = npz["views"] if "views" in npz else npz["flat"][None]
    return np.stack([proba([v[offsets[i] : offsets[i + 1]] for i in index]) for v in views])


def tta_proba(proba: Callable[[list[np.ndarray]], np.ndarray], npz: dict, name: str) -> np.ndarray:
    """``(N, C)``: `tta_views` averaged over the views."""
    return tta_views(proba, npz, name).mean(axis=0)


def dump_views(npz: dict, side: str, members: list[dict], yt: np.ndarray, yv: np.ndarray) -> None:
    """With ``--dump-proba`` (the fold's ``dump`` path prefix): every member's probabilities
    under every view, ``view_test`` / ``view_valid`` ``(members, K, N, C)``, with the labels,
    into ``PREFIX-SIDE.npz``, for looking at the test-time picks afterwards."""
    if "dump" not in npz:
        return
    np.savez_compressed(
        f"{npz['dump']}-{side}.npz",
        view_test=np.stack([m["view_test_proba"] for m in members]).astype(np.float32),
        view_valid=np.stack([m["view_valid_proba"] for m in members]).astype(np.float32),
        y_test=yt,
        y_valid=yv,
    )


SIDE_KEYS = ("ensemble", "torch_start")  # the evaluation's keys in PARAMS, not the estimator's


def write_starts(params: dict, features: int, classes: int, folder: Path) -> None:
    """``--same-start``: each member's initial weights as rnnkit draws them (the network
    `SequenceClassifier` builds for its seed), under the names of `speech_torch.Net`'s
    state dict, and the state of its dropout's random generator, in FOLDER/start-SEED.npz;
    the PyTorch side starts from them (`speech_torch.start_from`). Imports rnnkit (the
    evaluation's own process, never a timed side)."""
    from rnnkit.estimators.classifier import SequenceClassifier

    if params.get("num_layers", 1) > 1 and params.get("dropout", 0) > 0:
        raise SystemExit(
            "eval-speech: --same-start cannot give PyTorch the recurrent layers' own dropout "
            "between layers (torch draws it); use --layers 1 or --dropout 0"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for seed in ensemble_seeds(params):
        clf = SequenceClassifier(**{k: v for k, v in params.items() if k not in SIDE_KEYS})
        clf.set_params(seed=seed)
        clf.input_, clf.n_inputs_, clf.classes_ = "features", features, np.arange(classes)
        arrays: dict[str, Any] = {}
        for module in clf._network().children.values():
            kind = type(module).__name__
            if kind == "Dropout":
                assert module.rng is not None
                arrays["dropout_state"] = json.dumps(module.rng.bit_generator.state)
            elif kind == "Linear":
                arrays |= {f"linear.{k}": v for k, v in module.params.items()}
            elif kind == "AttentionPool":  # Net: score (weight, bias) and v
                arrays |= {"score.weight": module.params["weight"]}
                arrays |= {"score.bias": module.params["bias"], "v": module.params["v"]}
            elif kind in ("GRU", "LSTM", "RNN"):  # the names are PyTorch's already
                arrays |= {f"rnn.{k}": v for k, v in module.params.items()}
            elif module.params:
                raise SystemExit(f"eval-speech: --same-start has no PyTorch name for {kind}")
        np.savez(folder / f"start-{seed}.npz", **arrays)


def ensemble_seeds(params: dict) -> list[int]:
    """The seeds of an ensemble of ``params["ensemble"]`` members (1: the run's seed)."""
    return [params["seed"] + k for k in range(int(params.get("ensemble", 1)))]


def ensemble_result(
    members: list[dict], yt: np.ndarray, yv: np.ndarray, pick: str = "mean"
) -> dict:
    """A side's JSON: accuracy of the mean of the members' probabilities (the first member's
    alone beside it), the members' accuracies, and their summed training time. With each
    member's probabilities per test-time view (``view_test_proba``, ``(K, N, C)``), the
    views are made one by ``pick`` (`rnnkit.audio.tta.pick_views`; an ensemble averages its
    members per view first, as `SequenceClassifier(members=)` does), and every pick's
    accuracies are given beside (``picks``)."""

    def accuracy(proba: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(proba.argmax(1) == y))

    picks: dict[str, dict] = {}
    if "view_test_proba" in members[0]:
        tta = _tta_module()
        vt = [m.pop("view_test_proba") for m in members]
        vv = [m.pop("view_valid_proba") for m in members]
        for how in tta.TTA_PICKS:
            picks[how] = {
                "accuracy": accuracy(tta.pick_views(np.mean(vt, axis=0), how), yt),
                "valid_accuracy": accuracy(tta.pick_views(np.mean(vv, axis=0), how), yv),
                "member_accuracy": [accuracy(tta.pick_views(p, how), yt) for p in vt],
                "member_valid_accuracy": [accuracy(tta.pick_views(p, how), yv) for p in vv],
            }
            if how == pick:
                for m, t, v in zip(members, vt, vv, strict=True):
                    m["test_proba"], m["valid_proba"] = (
                        tta.pick_views(t, how),
                        tta.pick_views(v, how),
                    )
    test = [m["test_proba"] for m in members]
    valid = [m["valid_proba"] for m in members]
    if picks:  # the ensemble as picked from its mean per view, not the mean of the picks
        ensemble = picks[pick]
        return ensemble_fields(members, test, valid, yt, yv, accuracy) | {
            "accuracy": ensemble["accuracy"],
            "valid_accuracy": ensemble["valid_accuracy"],
            "tta_pick": pick,
            "picks": picks,
        }
    return ensemble_fields(members, test, valid, yt, yv, accuracy)


def ensemble_fields(
    members: list[dict],
    test: list[np.ndarray],
    valid: list[np.ndarray],
    yt: np.ndarray,
    yv: np.ndarray,
    accuracy: Callable[[np.ndarray, np.ndarray], float],
) -> dict:
    """`ensemble_result`'s fields from the members' (already picked) probabilities."""
    plain = {}
    if "plain_test_proba" in members[0]:  # the plain features' accuracy beside test-time VTLP
        pt = [m["plain_test_proba"] for m in members]
        pv = [m["plain_valid_proba"] for m in members]
        plain = {
            "plain_accuracy": accuracy(np.mean(pt, axis=0), yt),
            "plain_valid_accuracy": accuracy(np.mean(pv, axis=0), yv),
            "plain_member_accuracy": [accuracy(p, yt) for p in pt],
            "plain_member_valid_accuracy": [accuracy(p, yv) for p in pv],
        }
    return plain | {
        "accuracy": accuracy(np.mean(test, axis=0), yt),
        "valid_accuracy": accuracy(np.mean(valid, axis=0), yv),
        "member_accuracy": [accuracy(p, yt) for p in test],
        "member_valid_accuracy": [accuracy(p, yv) for p in valid],
        "seq_per_s": float(np.median([m["seq_per_s"] for m in members])),
        "steps": int(sum(m["steps"] for m in members)),
        "epochs": float(np.mean([m["epochs"] for m in members])),
        "fit_seconds": float(sum(m["fit_seconds"] for m in members)),
    }


def _side(side: str, fold: Path, params: Path) -> dict:
    if side == "torch":
        cmd = [sys.executable, str(ROOT / "benchmarks" / "speech_torch.py"), str(fold), str(params)]
    else:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--side",
            side,
            str(fold),
            str(params),
        ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"eval-speech: the {side} side failed with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the parts -------------------------------------------------------------------------------
def classify_usual(fsdd: Path, out: Path, epochs: float, tta: dict | None = None) -> dict:
    """``train classify`` with the audio defaults (``tta``: --tta-vtlp, --tta-warps given);
    the test accuracy of the plain features beside, from the same model."""
    from rnnkit.audio.files import featurise
    from rnnkit.data.labelled import read_labelled
    from rnnkit.io.checkpoint import load
    from rnnkit.tasks.classify import ClassifyConfig, front_end, train_classify

    given = {k: v for k, v in (tta or {}).items() if v is not None}
    cfg = ClassifyConfig(
        train=str(fsdd / "classify" / "train"),
        test=str(fsdd / "classify" / "test"),
        epochs=epochs,
        seed=SEED,
        out=str(out / "classify.safetensors"),
        **given,
    )  # the audio defaults of the model, the augmentation and test-time VTLP
    t0 = time.perf_counter()
    metrics = train_classify(cfg, force=True)
    seconds = time.perf_counter() - t0
    clf, front = load(cfg.out), front_end(cfg.out)
    assert front is not None, "an audio model has a front end"
    test = read_labelled(cfg.test or "")
    plain = clf.predict(featurise(test.texts, front)) == np.asarray(test.labels)
    flags = "".join(f" --{k.replace('_', '-')} {v}" for k, v in given.items())
    return metrics | {
        "seconds": seconds,
        "tta": {"tta_vtlp": clf.tta_vtlp, "tta_warps": clf.tta_warps, "tta_pick": clf.tta_pick},
        "plain_test_accuracy": float(np.mean(plain)),
        "command": f"rnnkit train classify --train {cfg.train} --test {cfg.test} "
        f"--epochs {epochs:g}{flags} --out {cfg.out}",
    }


def speaker_normalised(feats: list[np.ndarray], groups: np.ndarray, mode: str) -> list[np.ndarray]:
    """Unnormalised features ``(T_i, F)`` normalised per speaker (``groups[i]``, the speaker of
    recording ``i``): ``cmvn``, each feature's mean and standard deviation over all frames of
    the speaker's recordings (Kaldi's per-speaker CMVN); ``cvn``, each recording's own mean
    removed (as per-utterance normalisation) and the standard deviation pooled over the
    speaker's recordings. Uses the speaker's audio, never its labels."""
    from rnnkit.audio.norm import speaker_cmvn  # what `train classify --speaker-norm` does

    if mode == "cvn":  # each recording's own mean out first: the pooled mean is then 0
        feats = [f.astype(np.float64) - f.astype(np.float64).mean(axis=0) for f in feats]
    return speaker_cmvn(feats, groups.tolist())


def speaker_folds(fsdd: Path, args: argparse.Namespace, tmp: Path, log) -> dict:
    """Leave one speaker out: rnnkit and PyTorch, interleaved, per fold. ``--validate split``:
    a stratified 10 % of the training speakers' recordings for early stopping (the measured
    setting); ``speaker``: the next speaker's recordings instead, trained on the other three,
    a speaker-independent validation score for choosing settings without the test speaker."""
    from rnnkit.audio.augment import WarpedEpochs
    from rnnkit.audio.files import featurise
    from rnnkit.audio.tta import tta_factors
    from rnnkit.audio.wav import read_wav
    from rnnkit.data.labelled import read_labelled, stratified_split
    from rnnkit.tasks.classify import (
        ClassifyConfig,
        audio_front,
        augmentation,
        colour_of,
        estimator,
        noise_of,
        reverb_of,
        test_time,
    )

    data = read_labelled(fsdd / "classify" / "all.csv")
    paths, labels = list(data.texts), list(data.labels)
    real = len(paths)
    if args.synthetic is not None:  # extra training voices (`rnnkit data voices`), train only
        from rnnkit.tasks.speech_data import scan

        extra = scan(str(args.synthetic))
        paths += [str(p) for p, _, _, _ in extra]
        labels += [str(d) for _, d, _, _ in extra]
    speakers = np.array([Path(p).stem.split("_")[1] for p in paths])
    y = np.array([int(label) for label in labels])
    names = sorted(set(speakers[:real].tolist()))  # the folds: FSDD's speakers alone
    unknown = sorted(set(args.speakers or ()) - set(names))
    if unknown:
        raise SystemExit(f"eval-speech: --speakers {unknown} are not among {names}")
    synthetic = np.arange(real, len(paths))
    if set(speakers[synthetic].tolist()) & set(names):
        raise SystemExit(f"eval-speech: --synthetic {args.synthetic} has FSDD's speaker names")
    if len(synthetic):
        log(f"--synthetic: {len(synthetic)} recordings of {len(set(speakers[synthetic]))} voices")
    cfg = dataclasses.replace(
        ClassifyConfig(),
        epochs=args.loso_epochs,
        seed=args.seed,
        **model_options(args),  # else the audio defaults of `rnnkit train classify`
        **{k: getattr(args, k) for k in AUGMENT_OPTIONS + LOSO_AUGMENT + LOSO_FRONT},
        **{k: getattr(args, k) for k in TTA_OPTIONS},
    )
    front = audio_front(cfg, audio=True)  # --features, else the command's audio default
    assert front is not None
    by_speaker = args.speaker_norm != "none"
    if by_speaker:  # features as read, then normalised per speaker (`speaker_normalised`)
        front = dataclasses.replace(front, norm="none")
        log(f"--speaker-norm {args.speaker_norm}: features normalised per speaker")

    def normalised(feats: list[np.ndarray]) -> list[np.ndarray]:
        return speaker_normalised(feats, speakers, args.speaker_norm) if by_speaker else feats

    feats = normalised(featurise(paths, front))
    flat = np.concatenate(feats)
    offsets = np.concatenate([[0], np.cumsum([len(f) for f in feats])])
    vtlp, speed = (augmentation(cfg, audio=True)[k] for k in ("vtlp", "speed"))
    noise = noise_of(cfg.noise_snr)
    colour = colour_of(cfg.noise_color, noise)
    reverb = reverb_of(cfg.reverb)
    factors = tta_factors(
        **{k[4:]: v for k, v in test_time(cfg, audio=True).items() if k != "tta_pick"}
    )
    arrays: dict[str, Any] = {"flat": flat, "offsets": offsets, "y": y}
    if vtlp or speed or noise or reverb:  # every recording warped afresh each epoch (both sides)
        samples = [read_wav(p, front.rate) for p in paths]
        epochs = int(np.ceil(args.loso_epochs))
        warped: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        epoch_features = WarpedEpochs(
            samples, front, vtlp, args.seed, speed, noise, colour, reverb
        )  # as the CLI
        for e in range(epochs):
            feats_e = normalised(epoch_features(e))
            done = int(np.sum([len(w) for w in warped]))
            starts.append(done + np.cumsum([0] + [len(f) for f in feats_e]))
            warped.append(np.concatenate(feats_e))
        if speed:  # lengths change: all epochs in one array, each epoch's offsets into it
            arrays["warped"] = np.concatenate(warped)
            arrays["warped_offsets"] = np.stack(starts)  # (epochs, N + 1)
        else:
            arrays["warped"] = np.stack(warped)  # (epochs, frames, F)
        noisy = f", noise {noise[0]:g}-{noise[1]:g} dB SNR" if noise else ""
        noisy += f", coloured f^-({colour[0]:g}-{colour[1]:g})" if colour else ""
        noisy += f", rooms of RT60 {reverb[0]:g}-{reverb[1]:g} s" if reverb else ""
        log(f"VTLP {vtlp}, speed {speed}{noisy}: {epochs} epochs of warped features")
    if len(factors) > 1:  # test-time VTLP: every recording under each factor, both sides
        samples = [read_wav(p, front.rate) for p in paths]
        arrays["views"] = np.stack(
            [
                np.concatenate(normalised([front.features(x, warp=float(a)) for x in samples]))
                for a in factors
            ]
        )  # (K, frames, F)
        log(f"test-time VTLP: views at warps {np.round(factors, 4).tolist()}")
    features = tmp / "features.npz"
    np.savez(features, **arrays)  # type: ignore[arg-type]
    params = estimator(cfg, audio=True).set_params(verbose=False).get_params()
    params["ensemble"] = args.ensemble  # members of seeds seed, seed + 1, ... (both sides)
    if args.same_start:
        write_starts(params, int(flat.shape[1]), int(y.max()) + 1, tmp / "starts")
        params["torch_start"] = str(tmp / "starts")
    params_path = tmp / "params.json"
    params_path.write_text(json.dumps(params))
    folds = {}
    for k, speaker in enumerate(names):
        if args.speakers and speaker not in args.speakers:
            continue
        if args.validate == "speaker":
            validator = names[(k + 1) % len(names)]
            train = np.flatnonzero((speakers[:real] != speaker) & (speakers[:real] != validator))
            valid = np.flatnonzero(speakers[:real] == validator)
        else:
            rest = np.flatnonzero(speakers[:real] != speaker)
            keep, held = stratified_split(y[rest].tolist(), VALIDATION, SEED)
            train, valid = rest[keep], rest[held]
        train = np.concatenate([train, synthetic])  # the synthetic voices: training alone
        fold = tmp / f"{speaker}.npz"
        dump: dict[str, Any] = {}
        if args.dump_proba is not None:  # each side's probabilities per member and view
            args.dump_proba.mkdir(parents=True, exist_ok=True)
            dump = {"dump": str(args.dump_proba / speaker)}
        np.savez(
            fold,
            features=str(features),
            train=train,
            valid=valid,
            test=np.flatnonzero(speakers[:real] == speaker),
            **dump,
        )
        folds[speaker] = {side: _side(side, fold, params_path) for side in args.sides}
        got = folds[speaker]
        log(
            f"held-out speaker {speaker}: "
            + ", ".join(
                f"{side} {got[side]['accuracy']:.3f} (validation {got[side]['valid_accuracy']:.3f}"
                f", {got[side]['fit_seconds']:.0f} s)"
                for side in args.sides
            )
        )
    return {
        "params": params,
        "vtlp": vtlp,
        "speed": speed,
        "tta_factors": factors.tolist(),
        "validate": args.validate,
        "same_start": args.same_start,  # the PyTorch side from rnnkit's initial weights
        "speakers": args.speakers,  # the folds run (None: all)
        "synthetic": None if args.synthetic is None else str(args.synthetic),
        "synthetic_recordings": len(synthetic),
        "speaker_norm": args.speaker_norm,
        "folds": folds,
    }


def loso_table(loso: dict) -> str:
    """Per fold and side: test (and validation) accuracy; the mean and the worst fold."""
    sides = list(next(iter(loso["folds"].values())))
    lines = []
    for side in sides:
        acc = {k: v[side]["accuracy"] * 100 for k, v in loso["folds"].items()}
        val = {k: v[side]["valid_accuracy"] * 100 for k, v in loso["folds"].items()}
        lines.append(
            f"{side}: mean {np.mean(list(acc.values())):.1f} %, worst {min(acc.values()):.1f} % "
            f"({', '.join(f'{k} {a:.1f}' for k, a in acc.items())}); validation "
            f"({loso['validate']}) mean {np.mean(list(val.values())):.1f} %"
        )
        if "plain_accuracy" in next(iter(loso["folds"].values()))[side]:
            pa = {k: v[side]["plain_accuracy"] * 100 for k, v in loso["folds"].items()}
            pv = [v[side]["plain_valid_accuracy"] * 100 for v in loso["folds"].values()]
            lines.append(
                f"{side} without test-time VTLP: mean {np.mean(list(pa.values())):.1f} %, "
                f"worst {min(pa.values()):.1f} % "
                f"({', '.join(f'{k} {a:.1f}' for k, a in pa.items())}); validation mean "
                f"{np.mean(pv):.1f} %"
            )
            mv = [v[side]["member_valid_accuracy"] for v in loso["folds"].values()]
            pmv = [v[side]["plain_member_valid_accuracy"] for v in loso["folds"].values()]
            diff = np.asarray(mv) - np.asarray(pmv)  # (folds, members): models with / without
            lines.append(
                f"{side} test-time VTLP, validation per model: {int(np.sum(diff > 0))} better, "
                f"{int(np.sum(diff == 0))} same, {int(np.sum(diff < 0))} worse; mean change "
                f"{np.mean(diff) * 100:+.2f} points"
            )
        if "picks" in next(iter(loso["folds"].values()))[side]:
            for how in next(iter(loso["folds"].values()))[side]["picks"]:
                got = [v[side]["picks"][how] for v in loso["folds"].values()]
                acc = {k: g["accuracy"] * 100 for k, g in zip(loso["folds"], got, strict=True)}
                mv = np.mean([g["member_valid_accuracy"] for g in got], axis=0) * 100
                lines.append(
                    f"{side} test-time pick {how!r}: mean {np.mean(list(acc.values())):.1f} %, "
                    f"worst {min(acc.values()):.1f} %; validation mean "
                    f"{np.mean([g['valid_accuracy'] for g in got]) * 100:.1f} % (members alone "
                    f"{', '.join(f'{a:.1f}' for a in mv)} %)"
                )
        members = [v[side].get("member_accuracy", []) for v in loso["folds"].values()]
        if len(members[0]) > 1:  # an ensemble: each member alone
            test = np.mean(members, axis=0) * 100
            valid = [v[side]["member_valid_accuracy"] for v in loso["folds"].values()]
            lines.append(
                f"{side} members alone: mean {', '.join(f'{a:.1f}' for a in test)} %; validation "
                f"mean {', '.join(f'{a:.1f}' for a in np.mean(valid, axis=0) * 100)} %"
            )
    return "\n".join(lines)


def transcription(
    fsdd: Path,
    out: Path,
    epochs: float,
    stream_utterances: int,
    options: dict | None = None,
    tag: str = "",
    validate: str = "split",
    clips: bool = False,
    valid_from: Path | None = None,
    low_snr: Path | None = None,
    held: str | None = None,
) -> dict:
    """Train on the training speakers' strings, score the held-out speaker's; ``options``:
    `TranscribeConfig` fields (``units``, ``bidirectional``, ``vtlp``, the masks, ...), as
    given to the command. ``validate="speaker"``: validation (early stopping, the scores in
    ``valid_*``) on the strings of one training speaker (`speaker_manifests`), trained on the
    other three; ``"split"``: a random 10 % of all the training speakers' strings. ``clips``:
    the training speakers' isolated recordings join the training strings, each transcribed as
    its one word (`with_clips`). ``valid_from``: the strings folder the validation speaker's
    strings come from (default ``fsdd``'s: another build when the training strings are at
    random levels, ``--gain``, so validation stays the same strings at their own level);
    ``low_snr``: a strings folder with the validation speaker played quieter under the same
    noise (`low_snr_strings`), scored at the end as ``low_snr_wer_*`` (never for choosing the
    epoch)."""
    from rnnkit.audio import read_wav
    from rnnkit.estimators.transcriber_stream import LiveTranscriber
    from rnnkit.tasks.transcribe import (
        TranscribeConfig,
        inputs_of,
        load_transcriber,
        read_manifest,
        train_transcribe,
    )

    train, valid = str(fsdd / "strings" / "train.csv"), None
    if validate == "speaker":
        train, valid = speaker_manifests(fsdd / "strings", out, held)
        if valid_from is not None:
            (out / "plain").mkdir(exist_ok=True)
            valid = speaker_manifests(valid_from / "strings", out / "plain", held)[1]
    quiet = None
    if low_snr is not None:
        (out / "low-snr").mkdir(exist_ok=True)
        quiet = speaker_manifests(low_snr / "strings", out / "low-snr", held)[1]
    if clips:
        train = with_clips(Path(train), fsdd / "classify" / "all.csv", out)
    cfg = TranscribeConfig(
        train=train,
        valid=valid,
        test=str(fsdd / "strings" / "test.csv"),
        epochs=epochs,
        out=str(out / f"transcribe{'-' + tag if tag else ''}.safetensors"),
        **({"seed": SEED} | {k: v for k, v in (options or {}).items() if v is not None}),
    )
    t0 = time.perf_counter()
    metrics = train_transcribe(cfg, force=True)
    seconds = time.perf_counter() - t0
    model, front = load_transcriber(cfg.out)
    test = read_manifest(cfg.test or "", "transcript", "--test")
    X = inputs_of(model, front, test.texts, "--test")
    beam = model.score(X, test.labels, beam=8)
    lexicon = model.score(X, test.labels, lexicon=True)
    lexicon_beam = model.score(X, test.labels, beam=8, lexicon=True)
    scores: dict[str, float] = {}
    if valid is not None:  # the held-out training speaker: what settings are chosen on
        heard = read_manifest(valid, "transcript", "--valid")
        Xv = inputs_of(model, front, heard.texts, "--valid")
        for name, width, lex in (
            ("greedy", 1, False),
            ("beam8", 8, False),
            ("lexicon_beam8", 8, True),
        ):
            scores[f"valid_wer_{name}"] = model.score(Xv, heard.labels, width, lex)["wer"]
    if quiet is not None:  # the validation speaker at a lower SNR: scored, never selected on
        low = read_manifest(quiet, "transcript", "--valid (low SNR)")
        Xq = inputs_of(model, front, low.texts, "--valid (low SNR)")
        for name, width, lex in (("greedy", 1, False), ("lexicon_beam8", 8, True)):
            scores[f"low_snr_wer_{name}"] = model.score(Xq, low.labels, width, lex)["wer"]
    combined = {}
    if len(model.networks) > 1:  # each member alone and each way of combining them
        sets = {"": (X, test.labels)}
        if valid is not None:
            sets["valid_"] = (Xv, heard.labels)
        if quiet is not None:
            sets["low_snr_"] = (Xq, low.labels)
        combined = ensemble_scores(model, sets)
    if model.bidirectional:  # no streaming: the offline numbers alone
        stream_utterances = 0
    # what a stream emits: the greedy transcript of the (members' averaged) posteriors; for one
    # network `predict`'s, for a voting ensemble not (a stream cannot vote)
    offline = model.decode(model.log_probs(X))
    n = min(stream_utterances, len(test))
    live = LiveTranscriber(model, front) if n else None
    same = 0
    if live is not None:
        live.warm_up()
    for path, expected in zip(test.texts[:n], offline[:n], strict=True):
        assert live is not None
        x = read_wav(path, front.rate)
        got = []
        for start in range(0, len(x), front.frame_step):
            got += live.push(x[start : start + front.frame_step])
        got += live.flush()
        same += model.separator.join(c for c, _ in got) == expected
    per_frame = np.asarray(live.timings if live is not None else [np.nan]) * 1e3
    given = " ".join(
        (f"--{'' if v else 'no-'}{k}" if isinstance(v, bool) else f"--{k.replace('_', '-')} {v}")
        for k, v in (options or {}).items()
        if v is not None
    )
    return {
        "command": f"rnnkit train transcribe --train {cfg.train} --test {cfg.test} "
        f"{'--valid ' + valid + ' ' if valid else ''}"
        f"--epochs {epochs:g} {given + ' ' if given else ''}--out {cfg.out}",
        "test_utterances": len(test),
        "wer_greedy": metrics["test_wer"],
        "cer_greedy": metrics["test_cer"],
        "wer_beam8": beam["wer"],
        "cer_beam8": beam["cer"],
        "wer_lexicon": lexicon["wer"],
        "wer_lexicon_beam8": lexicon_beam["wer"],
        **scores,
        "kept_val_loss": metrics["best_val_loss"],
        "kept_val_wer": metrics["best_val_wer"],
        "validate": validate,
        "clips": clips,
        "bidirectional": bool(model.bidirectional),
        "steps": metrics["steps"],
        "seconds": seconds,
        "stream_same": same,
        "stream_utterances": n,
        "frame_ms_median": float(np.median(per_frame)),
        "frame_ms_p99": float(np.percentile(per_frame, 99)),
        "hop_ms": 1e3 * front.hop,
        "members": len(model.networks),
        "members_val_wer": getattr(model, "members_val_wer_", None),
        "combined": combined,
    }


# (name, beam, lexicon) scored for each member and combination (not the plain beam of 8:
# about 0.2 s an utterance, where the lexicon beam takes 0.05 s)
ENSEMBLE_DECODES = (
    ("greedy", 1, False),
    ("lexicon", 1, True),
    ("lexicon_beam8", 8, True),
)


def ensemble_scores(model: Any, sets: dict[str, tuple[list, list[str]]]) -> dict:
    """WER (and greedy CER) of each member of ``model`` alone and of each way of combining
    them (`rnnkit.ctc_combine`), on each of ``sets`` (prefix -> (inputs, transcripts)), the
    members' posteriors computed once: ``{way: {prefix + "wer_" + decode: ...}}``."""
    from rnnkit.ctc_combine import combine_log_probs, vote_members, vote_words
    from rnnkit.metrics_text import error_rate

    out: dict[str, dict[str, float]] = {}
    for prefix, (inputs, labels) in sets.items():
        per_member = model.member_log_probs(inputs)
        ways = {f"member{k}": lps for k, lps in enumerate(per_member)}
        for how in ("prob", "logprob"):
            ways[how] = [combine_log_probs(p, how) for p in zip(*per_member, strict=True)]
        for name, beam, lexicon in ENSEMBLE_DECODES:
            hyps = {way: model.decode(lps, beam, lexicon) for way, lps in ways.items()}
            members = [hyps[f"member{k}"] for k in range(len(per_member))]
            hyps["vote"] = [vote_words(h) for h in zip(*members, strict=True)]
            pairs = zip(per_member, members, strict=True)
            confs = [model.word_confidences(lps, texts) for lps, texts in pairs]
            hyps["weighted"] = vote_members(members, confs)
            for way, texts in hyps.items():
                scores = out.setdefault(way, {})
                scores[f"{prefix}wer_{name}"] = error_rate(labels, texts, words=True)
                if name == "greedy":
                    scores[f"{prefix}cer_{name}"] = error_rate(labels, texts, words=False)
    return out


def held_speaker(strings: Path) -> str:
    """The training speaker `speaker_manifests` holds out for validation."""
    lines = (strings / "train.csv").read_text().splitlines()
    speakers = sorted({row.rsplit(",", 1)[1] for row in lines[1:] if row})
    test = {line.rsplit(",", 1)[1] for line in (strings / "test.csv").read_text().splitlines()[1:]}
    everyone = sorted(set(speakers) | test)
    after = everyone[(everyone.index(min(test)) + 1) % len(everyone)] if test else speakers[0]
    return after if after in speakers else speakers[0]


def low_snr_strings(fsdd: Path, out: Path, db: float, recordings: Path) -> Path:
    """``fsdd``'s layout rebuilt in ``out``/fsdd-vgDB with the validation speaker
    (`held_speaker`) played ``db`` decibels quieter before the noise is added (the same
    clips, gaps and noise draws; 300 strings per speaker, no ``--gain``): the held-out voice at
    a lower signal-to-noise ratio, as the test speaker is heard. Never the test speaker."""
    from rnnkit.tasks.speech_data import FsddConfig, prepare
    from rnnkit.training import log_to_stderr

    where = out / f"fsdd-vg{db:g}"
    if not (where / "strings" / "test.csv").is_file():
        cfg = FsddConfig(recordings=str(recordings), out=str(where), gain=0.0, seed=SEED)
        prepare(cfg, log_to_stderr, levels={held_speaker(fsdd / "strings"): -db})
    return where


SYNTHETIC_STRINGS = 30  # per --synthetic voice: validated on yweweler, README "Synthetic voices"


def synthetic_strings(n: int | None, synthetic: Path | None) -> int:
    """``--ctc-synthetic-strings``: ``n`` as given (at least 0), or when not given
    `SYNTHETIC_STRINGS` with ``--synthetic`` (the recipe adopted on validation) and 0 without."""
    if n is None:
        return SYNTHETIC_STRINGS if synthetic is not None else 0
    if n < 0:
        raise SystemExit(f"eval-speech: --ctc-synthetic-strings: expected 0 or more, got {n}")
    if n and synthetic is None:
        raise SystemExit("eval-speech: --ctc-synthetic-strings needs --synthetic DIR")
    return n


def speaker_manifests(strings: Path, out: Path, held: str | None = None) -> tuple[str, str]:
    """``train.csv`` split by speaker into ``strings-train.csv`` (all training speakers but
    one) and ``strings-valid.csv`` (that one: the speaker after the test speaker in
    alphabetical order, as the leave-one-speaker-out ``--validate speaker`` picks; its first
    strings, as many as the test speaker has, the same whatever ``--strings`` is), in
    ``out``; their paths. ``held``: that speaker named (`held_speaker` of the real voices'
    strings, so that a synthetic voice among the training strings is never the one)."""
    lines = (strings / "train.csv").read_text().splitlines()
    header, rows = lines[0], [line for line in lines[1:] if line]
    held = held_speaker(strings) if held is None else held
    paths = (out / "strings-train.csv", out / "strings-valid.csv")
    n_test = len((strings / "test.csv").read_text().splitlines()) - 1
    for path, keep in zip(paths, (False, True), strict=True):
        chosen = [row for row in rows if (row.rsplit(",", 1)[1] == held) == keep]
        path.write_text("\n".join([header, *(chosen[:n_test] if keep else chosen)]) + "\n")
    return str(paths[0]), str(paths[1])


def with_clips(train: Path, recordings: Path, out: Path) -> str:
    """``train`` (a strings manifest) and the isolated recordings in ``recordings``
    (``path,label,speaker``) of the speakers it holds, each transcribed as its digit's word,
    written to ``out``/``strings-clips-train.csv``; its path."""
    from rnnkit.tasks.speech_data import WORDS

    lines = train.read_text().splitlines()
    speakers = {line.rsplit(",", 1)[1] for line in lines[1:] if line}
    clips = [
        f"{path},{WORDS[int(label)]},{speaker}"
        for path, label, speaker in (
            line.split(",") for line in recordings.read_text().splitlines()[1:] if line
        )
        if speaker in speakers
    ]
    path = out / "strings-clips-train.csv"
    path.write_text("\n".join([*lines, *clips]) + "\n")
    return str(path)


def table(r: dict) -> str:
    c, loso, t, m = r["classify"], r["loso"], r["transcribe"], r["machine"]
    acc = {s: [f[s]["accuracy"] * 100 for f in loso["folds"].values()] for s in ("rnnkit", "torch")}
    speed = {s: [f[s]["seq_per_s"] for f in loso["folds"].values()] for s in ("rnnkit", "torch")}
    ratio = float(np.median([a / b for a, b in zip(speed["rnnkit"], speed["torch"], strict=True)]))
    per = ", ".join(
        f"{k} {v['rnnkit']['accuracy'] * 100:.1f} / {v['torch']['accuracy'] * 100:.1f}"
        for k, v in loso["folds"].items()
    )
    lines = [
        "| measure | rnnkit | PyTorch, same network | target |",
        "|---|---|---|---|",
        f"| digit accuracy, usual split (recordings 0-4 of each speaker) | "
        f"{c['test_accuracy'] * 100:.1f} % | | >= 98 % |",
        f"| leave one speaker out, mean accuracy (5 folds) | {np.mean(acc['rnnkit']):.1f} % | "
        f"{np.mean(acc['torch']):.1f} % | mean >= 90 % |",
        f"| leave one speaker out, worst fold | {min(acc['rnnkit']):.1f} % | "
        f"{min(acc['torch']):.1f} % | |",
        f"| digit strings of an unseen speaker, WER greedy / beam 8 | "
        f"{t['wer_greedy'] * 100:.1f} % / {t['wer_beam8'] * 100:.1f} % | | <= 10 % |",
        f"| same, greedy, words snapped to the digit lexicon (--lexicon) | "
        f"{t['wer_lexicon'] * 100:.1f} % | | <= 10 % |",
        f"| same, beam 8 through the lexicon's words only (--beam 8 --lexicon) | "
        f"{t['wer_lexicon_beam8'] * 100:.1f} % | | <= 10 % |",
        f"| same, CER greedy / beam 8 | {t['cer_greedy'] * 100:.1f} % / "
        f"{t['cer_beam8'] * 100:.1f} % | | |",
        f"| streaming transcript = offline greedy | {t['stream_same']} of "
        f"{t['stream_utterances']} utterances | | all |",
        f"| streaming compute per 10 ms frame, median / p99 | {t['frame_ms_median']:.3f} ms / "
        f"{t['frame_ms_p99']:.3f} ms | | far below {t['hop_ms']:.0f} ms |",
        "",
        f"Leave-one-speaker-out accuracy per held-out speaker (rnnkit / PyTorch): {per}. "
        f"Training throughput rnnkit / PyTorch on the same batches: {ratio:.2f}x (median over "
        f"folds). Budget per side and fold: {loso['params']['epochs']:g} epochs, patience "
        f"{loso['params']['patience']}, best validation loss kept.",
        "",
        f"Commands: `{c['command']}`; `{t['command']}` (test: {t['test_utterances']} "
        "utterances of the held-out speaker).",
        "",
        f"Where it ran: {m['cpu_model']}, {m['cores']} cores, AVX-512 "
        f"{'yes' if m['avx512'] else 'no'}, load average {m['load_average'][0]:.1f} at the start; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + "; "
        + ", ".join(f"{k}={v}" for k, v in m["threads"].items())
        + f"; commit {m['commit']}. {r['date']}, {r['minutes']:.0f} minutes.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=float, default=15, help="classification epochs (15)")
    ap.add_argument("--loso-epochs", type=float, default=12, help="per side and fold (12)")
    ap.add_argument("--ctc-epochs", type=float, default=40, help="transcriber epochs (40)")
    ap.add_argument("--stream", type=int, default=100, help="test utterances streamed (100)")
    ap.add_argument(
        "--strings",
        type=int,
        default=300,
        help="transcription: digit strings per training speaker, as 'rnnkit data fsdd "
        "--strings' (300; other counts in OUT/fsdd-sN; the test speaker's 300 are the same)",
    )
    ap.add_argument(
        "--gain",
        type=float,
        default=None,
        help="transcription: the training speakers' strings at random levels down to -G dB, "
        "as 'rnnkit data fsdd --gain' (its default, 20 since 2026-12-03; the strings in "
        "OUT/fsdd-sN-gG, and with 0 and 300 strings in OUT/fsdd)",
    )
    ap.add_argument(
        "--ctc-clips",
        type=_yes,
        default=False,
        help="transcription: the training speakers' isolated recordings join the training "
        "strings, each transcribed as its word (0)",
    )
    ap.add_argument("--quick", action="store_true", help="1 epoch each: a smoke test")
    ap.add_argument("--out", type=Path, default=None, help="default runs/eval-speech")
    ap.add_argument(
        "--parts", default="usual,loso,transcribe", help="which parts (usual,loso,transcribe)"
    )
    ap.add_argument(
        "--sides", default="rnnkit,torch", help="leave-one-speaker-out sides (rnnkit,torch)"
    )
    ap.add_argument(
        "--validate",
        choices=("split", "speaker"),
        default="split",
        help="leave-one-speaker-out validation: a stratified 10 %% of the training speakers, or "
        "the next speaker, trained on the other three (split)",
    )
    for name in AUGMENT_OPTIONS:
        ap.add_argument(
            "--" + name.replace("_", "-"),
            type=float if name == "vtlp" else int,
            default=None,
            help="leave one speaker out: as 'rnnkit train classify' (its audio default)",
        )
    ap.add_argument(
        "--speed",
        type=float,
        default=None,
        help="leave one speaker out: speed perturbation, as 'rnnkit train classify --speed' "
        "(its audio default)",
    )
    ap.add_argument(
        "--noise-snr",
        default=None,
        help="leave one speaker out: white noise at a fresh SNR in LO,HI dB per recording and "
        "epoch, as 'rnnkit train classify --noise-snr' (none)",
    )
    ap.add_argument(
        "--noise-color",
        default=None,
        help="leave one speaker out, with --noise-snr: the noise coloured, power ~ f^-B with "
        "B uniform in LO,HI, as 'rnnkit train classify --noise-color' (white)",
    )
    ap.add_argument(
        "--reverb",
        default=None,
        help="leave one speaker out: each training recording in a fresh synthetic room every "
        "epoch, RT60 uniform in LO,HI seconds, as 'rnnkit train classify --reverb' (none)",
    )
    ap.add_argument(
        "--features",
        choices=("mfcc", "logmel"),
        default=None,
        help="leave one speaker out: the frames both sides read, as 'rnnkit train classify "
        "--features' (its audio default)",
    )
    ap.add_argument(
        "--cepstra",
        type=int,
        default=None,
        help="leave one speaker out: MFCCs per frame, as 'rnnkit train classify --cepstra' "
        "(its audio default)",
    )
    for name in MODEL_OPTIONS[:-1]:
        ap.add_argument(
            "--" + name.replace("_", "-"),
            type=int if name in ("hidden", "layers", "patience") else float,
            default=None,
            help="leave one speaker out: the classifier's (the audio model's; patience: as "
            "'rnnkit train classify --patience', 0: never stop early)",
        )
    ap.add_argument(
        "--pooling",
        choices=("mean", "max", "meanmax", "attention"),
        default=None,
        help="leave one speaker out: the classifier's pooling over time, as 'rnnkit train "
        "classify --pooling' (its audio default; the PyTorch side has these four)",
    )
    ctc_types: dict[str, Callable[[str], Any]] = {
        "units": str,
        "norm": str,
        "select": str,
        "vtlp": float,
        "level": float,
        "speed": float,
        "noise_snr": str,
        "dropout": float,
        "bidirectional": _yes,
    }
    for name in CTC_OPTIONS:
        ap.add_argument(
            "--ctc-" + name.replace("_", "-"),
            type=ctc_types.get(name, int),
            default=None,
            help="transcription: as 'rnnkit train transcribe' (its default)",
        )
    ap.add_argument(
        "--ctc-validate",
        choices=("split", "speaker"),
        default="split",
        help="transcription: validation on a random 10 %% of the training speakers' strings, or "
        "on one training speaker's, trained on the other three (split)",
    )
    ap.add_argument(
        "--ctc-validate-gain",
        type=float,
        default=None,
        help="transcription with --ctc-validate speaker: also score the validation speaker's "
        "strings rebuilt with its speech DB decibels quieter under the same noise (a lower "
        "signal-to-noise ratio, as the test speaker's; never used to choose the epoch) (none)",
    )
    ap.add_argument(
        "--ensemble",
        type=int,
        default=1,
        help="leave one speaker out: models per side and fold, of consecutive seeds, their "
        "probabilities averaged (1)",
    )
    ap.add_argument(
        "--tta-vtlp",
        type=float,
        default=None,
        help="usual split and leave one speaker out: test-time VTLP spread, as 'rnnkit train "
        "classify --tta-vtlp' (its audio default)",
    )
    ap.add_argument(
        "--tta-warps",
        type=int,
        default=None,
        help="usual split and leave one speaker out: warp factors of test-time VTLP, as "
        "'rnnkit train classify --tta-warps' (its audio default)",
    )
    ap.add_argument(
        "--dump-proba",
        type=Path,
        default=None,
        help="leave one speaker out: write each side's probabilities per member and test-time "
        "view into DIR/SPEAKER-SIDE.npz (none)",
    )
    ap.add_argument(
        "--tta-pick",
        choices=("mean", "confident"),
        default=None,
        help="usual split and leave one speaker out: how the test-time views become one, as "
        "'rnnkit train classify --tta-pick' (its default; every pick is scored beside)",
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help="leave one speaker out: the first member's seed, for its initial weights, order and "
        f"warps (both sides; the data and folds stay the same) ({SEED})",
    )
    ap.add_argument("--recordings", type=Path, default=DATA, help=f"FSDD's recordings ({DATA})")
    ap.add_argument(
        "--synthetic",
        type=Path,
        default=None,
        help="leave one speaker out: FSDD-named recordings of more voices ('rnnkit data voices "
        "--out DIR') added to every fold's training set, both sides; never validated or tested "
        "on (none)",
    )
    ap.add_argument(
        "--ctc-synthetic-strings",
        type=int,
        default=None,
        help="transcription: digit strings per --synthetic voice added to the training strings "
        "('rnnkit data fsdd --extra-recordings DIR --extra-strings N'; the validation and test "
        f"strings stay the same files); 0: none ({SYNTHETIC_STRINGS} with --synthetic, the "
        "validated recipe; else 0)",
    )
    ap.add_argument(
        "--same-start",
        action="store_true",
        help="leave one speaker out: the PyTorch side starts each member from rnnkit's initial "
        "weights and draws rnnkit's dropout masks, so that only the engine differs (off: each "
        "side draws its own)",
    )
    ap.add_argument(
        "--speakers",
        type=lambda text: [t for t in text.split(",") if t],
        default=None,
        help="leave one speaker out: these test speakers' folds alone, comma-separated (all)",
    )
    ap.add_argument(
        "--speaker-norm",
        choices=("none", "cmvn", "cvn"),
        default="none",
        help="leave one speaker out: features normalised per speaker instead of per recording, "
        "from the speaker's own recordings (the test speaker's too: its audio, not its labels); "
        "cmvn: mean and deviation pooled over the speaker; cvn: each recording's mean removed, "
        "the deviation pooled (none)",
    )
    ap.add_argument("--tag", default="", help="leave one speaker out alone: loso-TAG.json (none)")
    ap.add_argument("--side", default=None, help=argparse.SUPPRESS)
    ap.add_argument("side_args", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.ctc_synthetic_strings = synthetic_strings(args.ctc_synthetic_strings, args.synthetic)
    sys.path.insert(0, str(ROOT / "src"))  # this checkout's rnnkit, as the sides' PYTHONPATH
    if args.side == "rnnkit":
        rnnkit_side(Path(args.side_args[0]), Path(args.side_args[1]))
        return
    if not args.recordings.is_dir():
        raise SystemExit(f"eval-speech: the data is missing: {args.recordings}")
    from rnnkit.tasks.speech_data import FsddConfig, prepare
    from rnnkit.training import log_to_stderr

    if args.gain is None:
        args.gain = FsddConfig().gain
    parts = set(args.parts.split(","))
    args.sides = args.sides.split(",")
    if args.quick:
        args.epochs = args.loso_epochs = args.ctc_epochs = 1
        args.stream = 5
    out = args.out or ROOT / "runs" / ("eval-speech-quick" if args.quick else "eval-speech")
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"date": datetime.date.today().isoformat(), "machine": machine()}
    print("where it runs: " + json.dumps(result["machine"]), file=sys.stderr)
    start = time.perf_counter()
    fsdd = out / "fsdd"
    if args.strings != 300 or args.gain:
        fsdd = out / f"fsdd-s{args.strings}{f'-g{args.gain:g}' if args.gain else ''}"

    def build(where: Path, **more: Any) -> None:  # `rnnkit data fsdd` with this run's options
        cfg = FsddConfig(
            recordings=str(args.recordings),
            out=str(where),
            strings=args.strings,
            gain=args.gain,
            seed=SEED,
            **more,
        )
        prepare(cfg, log_to_stderr)

    if not (fsdd / "classify" / "all.csv").is_file():
        build(fsdd)
        _all_manifest(fsdd)
    if "usual" in parts:
        tta = {k: getattr(args, k) for k in TTA_OPTIONS}
        result["classify"] = classify_usual(fsdd, out, args.epochs, tta)
        c = result["classify"]
        log_to_stderr(
            f"usual split: test accuracy {c['test_accuracy']:.4f} (test-time VTLP "
            f"{c['tta']}; plain features {c['plain_test_accuracy']:.4f})"
        )
    if "loso" in parts:
        with tempfile.TemporaryDirectory(prefix="eval-speech-") as tmp:
            result["loso"] = speaker_folds(fsdd, args, Path(tmp), log_to_stderr)
        result["loso"]["options"] = {
            k: getattr(args, k)
            for k in AUGMENT_OPTIONS + LOSO_AUGMENT + LOSO_FRONT + MODEL_OPTIONS + TTA_OPTIONS
        } | {"seed": args.seed}
        print(loso_table(result["loso"]))
    if "transcribe" in parts:
        options = {k: getattr(args, "ctc_" + k) for k in CTC_OPTIONS}
        plain, low_snr = None, None
        if args.ctc_validate == "speaker" and (args.gain or args.strings != 300):
            plain = out / "fsdd"  # the validation speaker's strings at its own level
            if not (plain / "strings" / "test.csv").is_file():
                prepare(
                    FsddConfig(
                        recordings=str(args.recordings), out=str(plain), gain=0.0, seed=SEED
                    ),
                    log_to_stderr,
                )
        if args.ctc_validate_gain is not None:
            if args.ctc_validate != "speaker":
                raise SystemExit("eval-speech: --ctc-validate-gain needs --ctc-validate speaker")
            low_snr = low_snr_strings(fsdd, out, args.ctc_validate_gain, args.recordings)
        strings_from = fsdd
        if args.ctc_synthetic_strings:  # a build of its own: LOSO reads fsdd's classify/
            strings_from = fsdd.with_name(f"{fsdd.name}-x{args.ctc_synthetic_strings}")
            if not (strings_from / "strings" / "train.csv").is_file():
                build(
                    strings_from,
                    extra_recordings=str(args.synthetic),
                    extra_strings=args.ctc_synthetic_strings,
                )
        result["transcribe"] = transcription(
            strings_from,
            out,
            args.ctc_epochs,
            args.stream,
            options,
            args.tag,
            args.ctc_validate,
            args.ctc_clips,
            plain,
            low_snr,
            held_speaker(fsdd / "strings") if args.ctc_validate == "speaker" else None,
        )
        t = result["transcribe"]
        t["strings"] = args.strings
        t["gain"] = args.gain
        t["synthetic"] = None if args.synthetic is None else str(args.synthetic)
        t["synthetic_strings"] = args.ctc_synthetic_strings
        t["validate_gain"] = args.ctc_validate_gain
        print(
            f"transcription: WER greedy {t['wer_greedy']:.3f}, beam 8 {t['wer_beam8']:.3f}, "
            f"lexicon {t['wer_lexicon']:.3f}, lexicon beam 8 {t['wer_lexicon_beam8']:.3f}; "
            f"CER {t['cer_greedy']:.3f}; "
            + "".join(
                f"{k} {v:.3f}; " for k, v in t.items() if k.startswith(("valid_wer", "low_snr"))
            )
            + f"stream = offline "
            f"{t['stream_same']}/{t['stream_utterances']}; {t['seconds'] / 60:.1f} min"
        )
        for way, scores in t["combined"].items():
            print(f"  {way}: " + "; ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    result["minutes"] = (time.perf_counter() - start) / 60
    if parts != {"usual", "loso", "transcribe"} or args.sides != ["rnnkit", "torch"]:
        name = f"{'-'.join(sorted(parts))}{'-' + args.tag if args.tag else ''}.json"
        (out / name).write_text(json.dumps(result, indent=1))
        print(f"{out / name}: {result['minutes']:.1f} minutes", file=sys.stderr)
        return
    text = table(result)
    (out / "speech.json").write_text(json.dumps(result, indent=1))
    (out / "speech.md").write_text(text + "\n")
    print(text)


def _yes(text: str) -> bool:
    """``--ctc-bidirectional 1`` / ``0`` (also yes/no, true/false)."""
    if text.lower() not in ("1", "0", "yes", "no", "true", "false"):
        raise argparse.ArgumentTypeError(f"expected 1 or 0 (yes or no), got {text!r}")
    return text.lower() in ("1", "yes", "true")


def _all_manifest(fsdd: Path) -> None:
    """``classify/all.csv``: every recording (the folds are made from it)."""
    rows: list[str] = []
    for part in ("train", "test"):
        lines = (fsdd / "classify" / f"{part}.csv").read_text().splitlines()
        rows += lines[1:] if rows else lines
    (fsdd / "classify" / "all.csv").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
