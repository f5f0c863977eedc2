"""WAV files in (RIFF, RIFX or RF64): PCM 8/16/24/32-bit integers or 32/64-bit floats, mono
or several channels (averaged), any rate from 4 to 192 kHz, resampled to the model's rate with
a polyphase filter (``scipy.signal.resample_poly``). Samples come out as float64 in [-1, 1].

Every problem is one `InputError` line naming the file: not a WAV file, an empty file, a
format scipy cannot read (e.g. compressed WAV), no samples, silence only. A file whose writer
stopped before it filled in the sizes (RIFF size 0, data size 0) is read to its end; a file cut
short of the size its header declares is read as far as it goes.
"""

from __future__ import annotations

import io
import warnings
from math import gcd
from pathlib import Path

import numpy as np

from ..errors import InputError

MIN_RATE, MAX_RATE = 4_000, 192_000
SILENCE = 1e-4  # peak amplitude below which a recording is taken as silence only


def read_wav(path: str | Path, rate: int | None = None, what: str = "audio") -> np.ndarray:
    """The samples of a WAV file as float64 in [-1, 1], channels averaged, resampled to ``rate``
    (None: as recorded; then use `wav_rate` for the rate)."""
    samples, file_rate = _read(Path(path), what)
    if rate is not None and rate != file_rate:
        samples = resample(samples, file_rate, rate)
    return samples


def wav_rate(path: str | Path, what: str = "audio") -> int:
    """The sampling rate a WAV file declares."""
    return _read(Path(path), what)[1]


def require_scipy() -> None:
    """scipy (the ``audio`` extra) or one line saying how to install it."""
    try:
        import scipy  # noqa: F401
    except ImportError:
        raise InputError(
            "audio needs scipy, which is not installed; pip install 'rnnkit[audio]'"
        ) from None


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """``samples`` from ``rate_in`` to ``rate_out`` Hz (polyphase, Kaiser window)."""
    require_scipy()
    from scipy.signal import resample_poly

    g = gcd(rate_in, rate_out)
    return np.asarray(resample_poly(samples, rate_out // g, rate_in // g), dtype=np.float64)


def pcm_to_float(data: np.ndarray) -> np.ndarray:
    """Integer or float samples as float64 in [-1, 1] (8-bit WAV is unsigned, centred at 128)."""
    if data.dtype == np.uint8:
        return (data.astype(np.float64) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float64) / float(-np.iinfo(data.dtype).min)
    return data.astype(np.float64)


def _read(path: Path, what: str) -> tuple[np.ndarray, int]:
    require_scipy()
    from scipy.io import wavfile

    name = repr(str(path))
    if path.is_dir():
        raise InputError(f"{what}: {name} is a folder; expected a .wav file")
    if not path.is_file():
        raise InputError(f"{what}: no such file {name}")
    if path.stat().st_size == 0:
        raise InputError(f"{what}: {name} is empty; expected a WAV file")
    with path.open("rb") as f:
        head = f.read(12)
    if head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":  # RF64: over 4 GB
        raise InputError(f"{what}: {name} is not a WAV file (no RIFF/WAVE header)")
    unfinished = _sizes_filled_in(path.read_bytes()) if head[4:8] == bytes(4) else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # chunks scipy skips (LIST, cue): not our concern
            rate, data = wavfile.read(path if unfinished is None else io.BytesIO(unfinished))
    except (ValueError, EOFError, OSError, IndexError, NameError) as exc:
        # NameError: scipy's reader loses its way in a chunk of odd size written without the
        # pad byte RIFF asks for, and fails on a variable it never set
        reason = " ".join(str(exc).split())[:120]
        if isinstance(exc, NameError):
            reason = "a chunk before the samples is malformed (odd size without padding?)"
        raise InputError(
            f"{what}: {name} is a WAV file in a format that cannot be read ({reason}); "
            "expected PCM 8/16/24/32-bit or 32/64-bit float"
        ) from None
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InputError(
            f"{what}: {name} has a sampling rate of {rate} Hz; expected {MIN_RATE} to {MAX_RATE}"
        )
    samples = pcm_to_float(np.asarray(data))
    if samples.ndim == 2:
        samples = samples.mean(axis=1)  # channels averaged
    if samples.size == 0:
        raise InputError(f"{what}: {name} holds no samples")
    if not np.all(np.isfinite(samples)):
        raise InputError(f"{what}: {name} holds NaN or infinite samples")
    if np.max(np.abs(samples)) < SILENCE:
        raise InputError(
            f"{what}: {name} is silence only (peak below {SILENCE:g} of full scale); "
            "expected a recording with sound"
        )
    return samples, int(rate)


def _sizes_filled_in(raw: bytes) -> bytes | None:
    """A WAV file whose writer never filled in its sizes (RIFF size 0: a recording stopped
    before its header was finished, or written to a pipe), with the RIFF size set to the
    file's and a data chunk of size 0 taken to the end of the file; None for RIFX."""
    if raw[:4] != b"RIFF":
        return None
    fixed = bytearray(raw)
    fixed[4:8] = (len(raw) - 8).to_bytes(4, "little")
    pos = 12
    while pos + 8 <= len(raw):
        size = int.from_bytes(raw[pos + 4 : pos + 8], "little")
        if raw[pos : pos + 4] == b"data":
            if size == 0:
                fixed[pos + 4 : pos + 8] = (len(raw) - pos - 8).to_bytes(4, "little")
            break
        pos += 8 + size + (size & 1)
    return bytes(fixed)
