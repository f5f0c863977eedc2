"""Feature frames of many WAV files, with the front end of a model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.text import visible_files
from ..errors import InputError
from .features import FrontEnd
from .norm import speaker_cmvn
from .wav import read_wav

AUDIO_SUFFIXES = (".wav",)


def is_audio_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def wav_paths(names: Sequence[str], what: str = "audio") -> list[str]:
    """``names`` with each folder replaced by the ``.wav`` files under it (sorted, hidden ones
    passed over, as in `rnnkit.data.text.visible_files`); a folder without any is one line."""
    out: list[str] = []
    for name in names:
        folder = Path(name)
        if not folder.is_dir():
            out.append(name)
            continue
        found = visible_files(folder, AUDIO_SUFFIXES)
        if not found:
            raise InputError(f"{what}: the folder {name!r} holds no .wav files")
        out += [str(p) for p in found]
    return out


def featurise(
    paths: Sequence[str | Path],
    front: FrontEnd,
    what: str = "audio",
    speakers: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """``(T_i, front.size)`` float32 features of each file (resampled to ``front.rate``); with
    ``front.norm == "speaker"`` normalised over each speaker's files (`speaker_cmvn`;
    ``speakers`` None: all the files are one speaker's)."""
    feats = [front.features(read_wav(p, front.rate, what)) for p in paths]
    return by_speaker(feats, front, speakers)


def by_speaker(
    feats: list[np.ndarray], front: FrontEnd, speakers: Sequence[str] | None
) -> list[np.ndarray]:
    """``feats`` normalised per speaker when ``front.norm == "speaker"``, else as they are."""
    return speaker_cmvn(feats, speakers) if front.norm == "speaker" else feats


def front_end_of(config: dict) -> FrontEnd:
    """The `FrontEnd` saved as a dict in a model's metadata."""
    known = set(FrontEnd.__dataclass_fields__)
    return FrontEnd(**{k: v for k, v in config.items() if k in known})
