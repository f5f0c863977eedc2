"""``rnnkit data voices``: synthetic speakers of the ten digit words, named as FSDD's recordings.

Each voice is a seeded draw of a speech synthesiser and its settings: espeak-ng (an English
accent, a voice variant, a pitch and a speed) or flite (one of its voices, a duration stretch
and a mean pitch), and a level and a noise floor. Each take of a word is synthesised afresh
with a small jitter of pitch and speed around the voice's own, resampled to 8 kHz, trimmed of
leading and trailing silence to a short pad (FSDD's clips are trimmed so), scaled to the
voice's level and given its noise floor. The files are ``OUT/{digit}_{voice}_{take}.wav``
(8 kHz, mono, 16-bit; the voice named by letters only, ``espab``, ``flicd``, as FSDD's
``{digit}_{speaker}_{index}.wav`` parser wants), so that the folder reads as more FSDD
speakers (``rnnkit data fsdd --extra-recordings OUT``); ``OUT/manifest.csv`` lists them
(``path,label,speaker``: ``rnnkit evaluate --test`` reads it) and ``OUT/voices.csv`` each
voice's settings.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.wav import read_wav
from ..config import option, positive_int
from ..errors import InputError
from .speech_data import RATE, WORDS

ENGINES = ("espeak-ng", "flite")
PREFIX = {"espeak-ng": "esp", "flite": "fli"}
INSTALL = "apt-get install espeak-ng flite"
# espeak-ng's English accents of its own voice files (the mbrola ones need mbrola installed)
ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-gb-x-rp",
    "en-029",
    "en-us-nyc",
)
# its voice variants (``espeak-ng --voices=variant``) that sound human: no robots, no whispers
VARIANTS = (
    *(f"m{k}" for k in range(1, 8)),
    *(f"f{k}" for k in range(1, 6)),
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "david",
    "edward",
    "john",
    "paul",
    "robert",
    "linda",
    "steph",
)
# flite's voices and the range of mean pitch (Hz) each is drawn from
FLITE = {
    "kal": (85, 140),
    "kal16": (85, 140),
    "awb": (90, 150),
    "rms": (80, 135),
    "slt": (150, 230),
}
FRAME = RATE // 100  # 10 ms frames for the silence trim
TRIM_DB = 50.0  # a frame is silence below the loudest frame's RMS by this much (35 cut the weak
# onsets of the synthesisers at 8 kHz: espeak-ng's "th" of three at -37 dB, flite's "s" at -48)


def tempo_factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.5 <= value <= 2.0:
        raise argparse.ArgumentTypeError(f"expected a factor in [0.5, 2], got {text!r}")
    return value


@dataclass(frozen=True)
class VoicesConfig:
    """One ``rnnkit data voices`` run; each field is also its option."""

    out: str = option("runs/voices", help="the folder to write the WAV files into")
    voices: int = option(20, help="synthetic voices (speakers)", type=positive_int)
    takes: int = option(5, help="recordings of each digit per voice", type=positive_int)
    seed: int = option(0, help="random seed (the same seed gives the same files)")
    engines: str = option(
        "espeak-ng,flite",
        help="the synthesisers to draw voices from, comma-separated (espeak-ng, flite)",
    )
    tempo: float = option(
        1.0,
        help="how many times as fast the voices speak: espeak-ng's words a minute (drawn from "
        "120-190) multiplied by it and flite's duration stretch (0.85-1.35) divided by it; the "
        "rest of each voice is drawn as with 1 (FSDD's speakers' clips last 0.35-0.52 s on "
        "average, the voices' at 1 about 0.6 s)",
        type=tempo_factor,
    )


def engines_of(text: str) -> list[str]:
    """The ``--engines`` list, checked: known names, each installed."""
    names = [e.strip() for e in text.split(",") if e.strip()]
    if not names:
        raise InputError("--engines: expected espeak-ng and/or flite, got nothing")
    for name in names:
        if name not in ENGINES:
            raise InputError(f"--engines: unknown engine {name!r} (expected espeak-ng, flite)")
        if shutil.which(name) is None:
            raise InputError(f"data voices: {name} is not installed ({INSTALL})")
    return sorted(set(names), key=names.index)


def letters(k: int) -> str:
    """``k`` written in the letters a-z, at least two of them (0: ``aa``, 27: ``bb``)."""
    out = ""
    while True:
        k, r = divmod(k, 26)
        out = chr(ord("a") + r) + out
        if k == 0 and len(out) >= 2:
            return out


def draw_voice(
    rng: np.random.Generator, engines: list[str], index: int, tempo: float = 1.0
) -> dict[str, Any]:
    """One voice's settings: its engine and name, the engine's settings, level and noise;
    ``tempo`` scales its rate after the draws (the same draws for every tempo)."""
    engine = engines[int(rng.integers(len(engines)))]
    voice: dict[str, Any] = {"name": PREFIX[engine] + letters(index), "engine": engine}
    if engine == "espeak-ng":
        voice["accent"] = ACCENTS[int(rng.integers(len(ACCENTS)))]
        voice["variant"] = VARIANTS[int(rng.integers(len(VARIANTS)))]
        voice["pitch"] = round(float(rng.uniform(20, 80)), 1)  # -p, 0-99 (50 its default)
        voice["speed"] = round(float(rng.uniform(120, 190)) * tempo, 1)  # -s, words a minute
    else:
        name = sorted(FLITE)[int(rng.integers(len(FLITE)))]
        voice["flite_voice"] = name
        voice["f0"] = round(float(rng.uniform(*FLITE[name])), 1)  # int_f0_target_mean, Hz
        voice["stretch"] = round(float(rng.uniform(0.85, 1.35)) / tempo, 3)  # duration_stretch
    voice["level_db"] = round(
        float(rng.uniform(-44, -22)), 1
    )  # RMS, dB of full scale (FSDD's span)
    voice["snr_db"] = round(float(rng.uniform(25, 45)), 1)  # noise floor below the speech
    return voice


def synthesise(voice: dict, word: str, rng: np.random.Generator, tmp: Path) -> np.ndarray:
    """One take of ``word`` in ``voice``: the pitch and speed jittered by a few per cent,
    samples at 8 kHz (float, full scale 1), before trimming and levelling."""
    pitch_jitter, speed_jitter = rng.uniform(-0.06, 0.06, 2)
    wav = tmp / "take.wav"
    if voice["engine"] == "espeak-ng":
        pitch = int(np.clip(round(voice["pitch"] * (1 + pitch_jitter)), 0, 99))
        speed = int(round(voice["speed"] * (1 + speed_jitter)))
        cmd = ["espeak-ng", "-v", f"{voice['accent']}+{voice['variant']}"]
        cmd += ["-p", str(pitch), "-s", str(speed), "-w", str(wav), word]
    else:
        f0 = voice["f0"] * (1 + pitch_jitter)
        stretch = voice["stretch"] * (1 - speed_jitter)
        cmd = ["flite", "-voice", voice["flite_voice"], "--setf", f"int_f0_target_mean={f0:.2f}"]
        cmd += ["--setf", f"duration_stretch={stretch:.4f}", "-t", word, "-o", str(wav)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not wav.is_file():
        raise InputError(
            f"data voices: {cmd[0]} failed on {word!r} (status {proc.returncode}): "
            + (proc.stderr.strip().splitlines() or ["no message"])[-1]
        )
    samples = read_wav(wav, RATE, cmd[0])
    wav.unlink()
    return samples


def trim(x: np.ndarray, pad: tuple[int, int]) -> np.ndarray:
    """``x`` from its first to its last frame within `TRIM_DB` of its loudest, with ``pad``
    samples kept (or silence added) before and after."""
    n = len(x) // FRAME
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * FRAME].reshape(n, FRAME) ** 2, axis=1))
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (-TRIM_DB / 20))
    start, end = loud[0] * FRAME - pad[0], (loud[-1] + 1) * FRAME + pad[1]
    before, after = max(0, -start), max(0, end - len(x))
    return np.concatenate([np.zeros(before), x[max(0, start) : end], np.zeros(after)])


def take(voice: dict, word: str, rng: np.random.Generator, tmp: Path) -> np.ndarray:
    """One finished take: synthesised, trimmed to short pads, at the voice's level (+-2 dB)
    with its noise floor; 16-bit samples."""
    x = synthesise(voice, word, rng, tmp)
    x = trim(x, (int(rng.integers(40, 400)), int(rng.integers(40, 400))))  # 5-50 ms
    rms = float(np.sqrt(np.mean(x**2))) or 1.0
    level = 10 ** ((voice["level_db"] + rng.uniform(-2, 2)) / 20)
    x = x * (level / rms)
    x = x + level * 10 ** (-voice["snr_db"] / 20) * rng.standard_normal(len(x))
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def generate(cfg: VoicesConfig, log: Any = None) -> dict[str, Any]:
    """Write the voices (module docstring); a summary of what was written."""
    from scipy.io import wavfile

    engines = engines_of(cfg.engines)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    voices, rows = [], [("path", "label", "speaker")]
    durations = []
    with tempfile.TemporaryDirectory(prefix="rnnkit-voices-") as tmp:
        for v in range(cfg.voices):
            rng = np.random.default_rng([cfg.seed, v])
            voice = draw_voice(rng, engines, v, cfg.tempo)
            voices.append(voice)
            for digit, word in enumerate(WORDS):
                for t in range(cfg.takes):
                    pcm = take(
                        voice, word, np.random.default_rng([cfg.seed, v, digit, t]), Path(tmp)
                    )
                    file = out / f"{digit}_{voice['name']}_{t}.wav"
                    wavfile.write(file, RATE, pcm)
                    rows.append((str(file.resolve()), str(digit), voice["name"]))
                    durations.append(len(pcm) / RATE)
            if log:
                settings = {k: v for k, v in voice.items() if k not in ("name", "engine")}
                log(f"voice {v + 1}/{cfg.voices} {voice['name']} ({voice['engine']}): {settings}")
    _write_csv(out / "manifest.csv", rows)
    keys = sorted({k for v in voices for k in v}, key=lambda k: (k not in ("name", "engine"), k))
    _write_csv(out / "voices.csv", [keys, *([v.get(k, "") for k in keys] for v in voices)])
    return {
        "out": str(out),
        "voices": cfg.voices,
        "takes": cfg.takes,
        "tempo": cfg.tempo,
        "files": len(rows) - 1,
        "engines": {e: sum(v["engine"] == e for v in voices) for e in engines},
        "seconds_median": float(np.median(durations)),
        "seconds_min": float(np.min(durations)),
        "seconds_max": float(np.max(durations)),
    }


def _write_csv(path: Path, rows: list) -> None:
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
