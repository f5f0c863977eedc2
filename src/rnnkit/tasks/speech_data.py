"""``rnnkit data fsdd``: the Free Spoken Digit Dataset laid out for classification and for CTC.

FSDD's recordings are ``{digit}_{speaker}_{index}.wav`` (8 kHz, mono, 16-bit). From them:

- ``OUT/classify/{train,test}/<digit>/``: one folder per label (symbolic links to the
  recordings), and ``OUT/classify/{train,test}.csv`` manifests (``path,label,speaker``): the
  dataset's usual split, recordings 0-4 of each speaker for testing, 5-49 for training;
- ``OUT/strings/``: digit-string utterances, each 2 to 7 clips of one speaker joined by short
  random silences with a little white noise (``OUT/strings/<speaker>_<n>.wav``), with their
  transcripts ("four one seven") in ``OUT/strings/all.csv`` (``path,transcript,speaker``), and
  ``train.csv``/``test.csv`` with ``--test-speaker``'s utterances held out: transcription by a
  model that never heard that speaker.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.wav import read_wav
from ..config import nonneg_float, nonneg_int, option, positive_int
from ..errors import InputError

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
RATE = 8000
FIRST_STREAM = 300  # strings per speaker from the one stream of the first version
# the default of --gain: the training speakers' strings at random levels down to -20 dB, since
# 2026-12-03, chosen on a held-out training speaker at its own level and 4 dB quieter (README,
# "Speed, noise and level for the transcriber")
GAIN = 20.0


@dataclass(frozen=True)
class FsddConfig:
    """One ``rnnkit data fsdd`` run; each field is also its option."""

    recordings: str = option(
        "../shared/data/speech/fsdd/recordings", help="FSDD's recordings folder"
    )
    out: str = option("runs/fsdd", help="the folder to write into")
    strings: int = option(
        300,
        help="digit-string utterances per training speaker (the first 300 of each are the same "
        "whatever this is)",
        type=positive_int,
    )
    test_strings: int = option(
        300,
        help="digit-string utterances of --test-speaker (the first 300 are the same whatever "
        "--strings is)",
        type=positive_int,
    )
    min_digits: int = option(2, help="fewest clips in an utterance", type=positive_int)
    max_digits: int = option(7, help="most clips in an utterance", type=positive_int)
    max_gap: float = option(0.25, help="longest silence between clips, seconds", type=nonneg_float)
    noise: float = option(
        0.002, help="standard deviation of the added white noise (full scale 1)", type=nonneg_float
    )
    test_speaker: str = option("theo", help="the speaker whose strings are held out for testing")
    perturb: float = option(
        0.15,
        help="speed perturbation of the training speakers' clips: each played up to this "
        "fraction faster or slower (pitch and formants move with it, as another voice's "
        "would; Ko et al. 2015); the test speaker's are left as recorded; 0: none",
        type=nonneg_float,
    )
    gain: float = option(
        GAIN,
        help="level augmentation of the training speakers' strings: each one's speech scaled "
        "by a random gain, uniform in decibels from -G to 0, before the noise is added (so "
        "quieter voices, at a lower signal to noise ratio, are heard in training); the test "
        "speaker's are left as recorded; 0: none",
        type=nonneg_float,
    )
    seed: int = option(0, help="random seed")
    extra_recordings: str = option(
        "",
        help="a folder of more FSDD-named recordings ({digit}_{speaker}_{index}.wav, e.g. from "
        "'rnnkit data voices'), every one added to classify/train (never to classify/test) "
        "and, with --extra-strings, the speaker of more training strings; empty: none",
        metavar="DIR",
    )
    extra_strings: int = option(
        0,
        help="digit-string utterances per --extra-recordings speaker, added to "
        "strings/train.csv alone (built as a training speaker's: --perturb, --gain); the real "
        "speakers' strings stay the same files; 0: none",
        type=nonneg_int,
    )


def scan(folder: str, what: str = "--recordings") -> list[tuple[Path, int, str, int]]:
    """``(path, digit, speaker, index)`` of every FSDD-named WAV file in ``folder``."""
    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"{what}: no such folder {folder!r}")
    found = []
    for file in sorted(path.iterdir()):
        m = NAME.match(file.name)
        if m:
            found.append((file.resolve(), int(m[1]), m[2], int(m[3])))
    if not found:
        raise InputError(
            f"{what}: {folder!r} holds no files named {{digit}}_{{speaker}}_{{index}}.wav"
        )
    return found


def prepare(
    cfg: FsddConfig, log: Any = None, levels: dict[str, float] | None = None
) -> dict[str, Any]:
    """Write the layout (module docstring). ``levels`` (Python only): ``{speaker: dB}``, that
    speaker's strings played at a fixed gain before the noise is added (on top of ``--gain``;
    the same clips, gaps and noise as without it), e.g. a validation voice at a lower
    signal-to-noise ratio (`benchmarks/eval_speech.py --ctc-validate-gain`)."""
    if cfg.min_digits > cfg.max_digits:
        raise InputError(
            f"--min-digits {cfg.min_digits} is more than --max-digits {cfg.max_digits}"
        )
    found = scan(cfg.recordings)
    speakers = sorted({s for _, _, s, _ in found})
    if cfg.test_speaker not in speakers:
        raise InputError(f"--test-speaker: {cfg.test_speaker!r} is not one of {speakers}")
    extra = scan(cfg.extra_recordings, "--extra-recordings") if cfg.extra_recordings else []
    clash = sorted({s for _, _, s, _ in extra} & set(speakers))
    if clash:
        raise InputError(
            f"--extra-recordings: speaker {clash[0]!r} is also one of --recordings' speakers"
        )
    if cfg.extra_strings and not extra:
        raise InputError("--extra-strings: expected --extra-recordings too (whose speakers)")
    out = Path(cfg.out)
    n_classify = _classify_layout(found, out / "classify", extra)
    if log:
        log(f"classification: {n_classify['train']} training, {n_classify['test']} test files")
    rows = _strings(found, speakers, out / "strings", cfg, log, levels or {}, extra)
    return {
        "classify_train": n_classify["train"],
        "classify_test": n_classify["test"],
        "strings": len(rows),
        "speakers": speakers,
        "extra_speakers": sorted({s for _, _, s, _ in extra}),
        "out": str(out),
    }


def _classify_layout(found: list, out: Path, extra: list | None = None) -> dict[str, int]:
    counts = {"train": 0, "test": 0}
    manifests = {}
    for part in counts:
        for digit in range(10):
            (out / part / str(digit)).mkdir(parents=True, exist_ok=True)
        manifests[part] = [("path", "label", "speaker")]
    placed = [(r, "test" if r[3] < 5 else "train") for r in found] + [
        (r, "train") for r in extra or []
    ]
    for (path, digit, speaker, _), part in placed:
        link = out / part / str(digit) / path.name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(path, link)
        manifests[part].append((str(path), str(digit), speaker))
        counts[part] += 1
    for part, rows in manifests.items():
        _write_csv(out / f"{part}.csv", rows)
    return counts


def _strings(
    found: list,
    speakers: list[str],
    out: Path,
    cfg: FsddConfig,
    log: Any,
    levels: dict[str, float] | None = None,
    extra: list | None = None,
) -> list:
    """The digit strings of every speaker. Its first `FIRST_STREAM` come from one random stream
    over the speakers in order (the layout of the first version), drawn whatever the counts, so
    they never change with ``--strings`` or ``--test-strings``; more come from a stream of the
    speaker's own, seeded by ``(seed, 1 + its place in the order)``. ``levels``: `prepare`'s.
    Then ``cfg.extra_strings`` of each ``extra`` speaker (`scan`'s tuples), training strings
    from streams of their own (``(seed, 1000 + place)``), so the others stay as they were."""
    from scipy.io import wavfile

    out.mkdir(parents=True, exist_ok=True)
    first = np.random.default_rng(cfg.seed)
    gains = np.random.default_rng([cfg.seed, 0])  # apart, so the first stream stays put
    rows: list[tuple[str, ...]] = []
    for place, speaker in enumerate(speakers):
        clips = [(p, d) for p, d, s, _ in found if s == speaker]
        audio = {p: read_wav(p, RATE, "--recordings") for p, _ in clips}
        count = cfg.test_strings if speaker == cfg.test_speaker else cfg.strings
        perturb = cfg.perturb if speaker != cfg.test_speaker else 0.0
        gain = cfg.gain if speaker != cfg.test_speaker else 0.0
        more = np.random.default_rng([cfg.seed, 1 + place])
        more_gains = np.random.default_rng([cfg.seed, 0, 1 + place])
        for n in range(max(count, FIRST_STREAM)):
            rng = first if n < FIRST_STREAM else more
            # the levels of the first strings from one stream too, of the rest the speaker's own,
            # so that the first strings keep their levels whatever --strings is
            level = gains if n < FIRST_STREAM else more_gains
            decibels = -level.uniform(0.0, gain) if gain else 0.0
            decibels += (levels or {}).get(speaker, 0.0)
            signal, picks = _utterance(clips, audio, rng, cfg, perturb, 10 ** (decibels / 20))
            if n >= count:
                continue  # drawn only to keep the first stream where it was
            pcm = np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)
            file = out / f"{speaker}_{n}.wav"
            wavfile.write(file, RATE, pcm)
            rows.append((str(file.resolve()), " ".join(WORDS[d] for d in picks), speaker))
        if log:
            log(f"strings: {count} utterances of {speaker}")
    voices = sorted({s for _, _, s, _ in extra or []}) if cfg.extra_strings else []
    for place, speaker in enumerate(voices):
        clips = [(p, d) for p, d, s, _ in extra or [] if s == speaker]
        audio = {p: read_wav(p, RATE, "--extra-recordings") for p, _ in clips}
        rng = np.random.default_rng([cfg.seed, 1000 + place])
        for n in range(cfg.extra_strings):
            scale = 10 ** (-rng.uniform(0.0, cfg.gain) / 20) if cfg.gain else 1.0
            signal, picks = _utterance(clips, audio, rng, cfg, cfg.perturb, scale)
            pcm = np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)
            file = out / f"{speaker}_{n}.wav"
            wavfile.write(file, RATE, pcm)
            rows.append((str(file.resolve()), " ".join(WORDS[d] for d in picks), speaker))
    if voices and log:
        log(f"strings: {cfg.extra_strings} utterances of each of {len(voices)} extra voices")
    header = ("path", "transcript", "speaker")
    _write_csv(out / "all.csv", [header, *rows])
    _write_csv(out / "train.csv", [header, *(r for r in rows if r[2] != cfg.test_speaker)])
    _write_csv(out / "test.csv", [header, *(r for r in rows if r[2] == cfg.test_speaker)])
    return rows


def _utterance(
    clips: list,
    audio: dict,
    rng: np.random.Generator,
    cfg: FsddConfig,
    perturb: float,
    scale: float = 1.0,
) -> tuple[np.ndarray, list[int]]:
    """One digit string: its samples (float, full scale 1; the speech times ``scale``, then
    the noise) and its digits."""
    k = int(rng.integers(cfg.min_digits, cfg.max_digits + 1))
    picks = [clips[int(i)] for i in rng.integers(0, len(clips), k)]
    pieces = [_silence(rng, 0.05, 0.3)]
    for j, (p, _) in enumerate(picks):
        pieces.append(_speed(audio[p], rng, perturb))
        end = j == len(picks) - 1
        pieces.append(_silence(rng, 0.05, 0.3) if end else _silence(rng, 0.02, cfg.max_gap))
    signal = scale * np.concatenate(pieces)
    signal = signal + cfg.noise * rng.standard_normal(len(signal))
    return signal, [d for _, d in picks]


STEPS = 20  # speed factors in steps of 1/20


def _speed(x: np.ndarray, rng: np.random.Generator, perturb: float) -> np.ndarray:
    """``x`` played at a random speed within ``1 +- perturb`` (in steps of 1/20): resampled by
    ``STEPS / down``, kept at the same rate."""
    from ..audio.wav import resample

    reach = int(round(perturb * STEPS))
    down = STEPS + int(rng.integers(-reach, reach + 1)) if reach else STEPS
    return x if down == STEPS else resample(x, down, STEPS)


def _silence(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    return np.zeros(int(RATE * rng.uniform(low, high)))


def _write_csv(path: Path, rows: list) -> None:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
