"""Feature frames of many WAV files, with the front end of a model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .features import FrontEnd
from .wav import read_wav

AUDIO_SUFFIXES = (".wav",)


def is_audio_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def featurise(
    paths: Sequence[str | Path], front: FrontEnd, what: str = "audio"
) -> list[np.ndarray]:
    """``(T_i, front.size)`` float32 features of each file (resampled to ``front.rate``)."""
    return [front.features(read_wav(p, front.rate, what)) for p in paths]


def front_end_of(config: dict) -> FrontEnd:
    """The `FrontEnd` saved as a dict in a model's metadata."""
    known = set(FrontEnd.__dataclass_fields__)
    return FrontEnd(**{k: v for k, v in config.items() if k in known})
