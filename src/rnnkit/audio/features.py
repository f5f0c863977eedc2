r"""Speech features: log-mel filterbank energies and MFCCs with deltas, for a whole recording
(`FrontEnd.features`) or frame by frame as the samples arrive (`StreamingFeatures`), with the
same numbers either way.

The recipe is python_speech_features' (J. Lyons, 2013), which tests/test_speech.py uses as
the oracle (to 1e-6 and better)::

    y[n]      = x[n] - a x[n-1]                        pre-emphasis, a = 0.97 (y[0] = x[0])
    frame t   = y[t h : t h + w] * window              w = 25 ms, h = 10 ms; the last frame is
                                                       zero-padded; a Hamming window
    P_t(k)    = |rfft(frame t, n_fft)_k|^2 / n_fft     power spectrum
    E_t       = sum_k P_t(k)                           frame energy
    M_t(m)    = log(sum_k P_t(k) H_m(k))               log-mel: triangles H_m evenly spaced on
                                                       the mel scale 2595 log10(1 + f/700)
    C_t(n)    = DCT-II(M_t, orthonormal)_n (1 + L/2 sin(pi n / L)),  n < n_mfcc, L = 22 (lifter)
    C_t(0)    = log E_t                                MFCC: c0 replaced by the log energy
    d_t       = sum_{i=1..N} i (c_{t+i} - c_{t-i}) / (2 sum i^2)    deltas, N = 2, frames beyond
                                                       either end taken equal to the end frame

A frame of output is ``[C_t, d_t, dd_t]`` (``deltas=2``): 39 numbers for 13 coefficients.
Per-utterance normalisation (``norm="utterance"``) subtracts each feature's mean over the
recording and divides by its standard deviation; it needs the whole recording, so a live stream
uses ``norm="none"`` and the model's own fixed statistics (`rnnkit.estimators.transcriber`).
Per-speaker normalisation (``norm="speaker"``, Kaldi's per-speaker CMVN) uses each feature's
mean and standard deviation over all frames of one speaker's recordings instead
(`rnnkit.audio.norm`); ``features`` then gives the frames unnormalised and
`rnnkit.audio.files.featurise` groups the recordings by speaker.

Frame by frame, a delta needs ``N`` frames after its own: `StreamingFeatures` gives frame
``t`` once frame ``t + N * deltas`` is in (40 ms late at the defaults), and `flush` pads the
end as the whole-file path does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np

from ..errors import InputError
from .augment import vtlp_warp

EPS = np.finfo(np.float64).eps  # in place of a zero power, as python_speech_features


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int, n_fft: int, rate: int, low: float, high: float, warp: float = 1.0
) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` triangles on FFT bins ``floor((n_fft + 1) f / rate)`` of
    ``n_mels + 2`` points evenly spaced in mel from ``low`` to ``high`` Hz; ``warp``: those
    frequencies first warped by VTLP's factor (`rnnkit.audio.augment.vtlp_warp`)."""
    points = np.linspace(hz_to_mel(low), hz_to_mel(high), n_mels + 2)
    hz = vtlp_warp(mel_to_hz(points), warp, high)
    bins = np.floor((n_fft + 1) * hz / rate).astype(np.int64)
    bank = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        left, centre, right = bins[m], bins[m + 1], bins[m + 2]
        for k in range(left, centre):
            bank[m, k] = (k - left) / (centre - left)  # rising edge
        for k in range(centre, right):
            bank[m, k] = (right - k) / (right - centre)  # falling edge
    return bank


NORMS = ("utterance", "speaker", "none")  # FrontEnd.norm


@dataclass(frozen=True)
class FrontEnd:
    """How a recording becomes feature frames (the module docstring's recipe); saved with every
    audio model, so prediction featurises as training did."""

    rate: int = 8000
    window: float = 0.025  # seconds
    hop: float = 0.010  # seconds
    n_fft: int = 512
    n_mels: int = 26
    n_mfcc: int = 13  # 0: log-mel energies instead of MFCCs
    preemphasis: float = 0.97
    lifter: int = 22
    deltas: int = 2  # 0, 1 (deltas) or 2 (and delta-deltas)
    delta_width: int = 2
    low: float = 0.0
    high: float | None = None  # None: rate / 2
    norm: str = "utterance"  # or "none", or "speaker" (`speaker_cmvn` over many recordings)
    hamming: bool = field(default=True)

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise InputError(
                f"FrontEnd: norm must be 'utterance', 'speaker' or 'none', got {self.norm!r}"
            )
        if self.deltas not in (0, 1, 2):
            raise InputError(f"FrontEnd: deltas must be 0, 1 or 2, got {self.deltas}")
        if self.frame_length > self.n_fft:
            raise InputError(
                f"FrontEnd: a {self.window} s window is {self.frame_length} samples at "
                f"{self.rate} Hz, more than n_fft={self.n_fft}"
            )

    @property
    def frame_length(self) -> int:
        return int(round(self.window * self.rate))

    @property
    def frame_step(self) -> int:
        return int(round(self.hop * self.rate))

    @property
    def base_size(self) -> int:
        return self.n_mfcc or self.n_mels

    @property
    def size(self) -> int:
        """Numbers per output frame."""
        return self.base_size * (1 + self.deltas)

    @cached_property
    def _bank(self) -> np.ndarray:
        return self.bank()

    def bank(self, warp: float = 1.0) -> np.ndarray:
        """The mel filterbank, its frequencies warped by ``warp`` (VTLP; 1: none)."""
        high = self.high if self.high is not None else self.rate / 2
        return mel_filterbank(self.n_mels, self.n_fft, self.rate, self.low, high, warp)

    @cached_property
    def _window(self) -> np.ndarray:
        n = self.frame_length
        return np.hamming(n) if self.hamming else np.ones(n)

    @cached_property
    def _lift(self) -> np.ndarray:
        n = np.arange(self.n_mfcc)
        if not self.lifter:
            return np.ones(self.n_mfcc)
        return 1.0 + (self.lifter / 2.0) * np.sin(np.pi * n / self.lifter)

    # -- whole recordings ------------------------------------------------------------------
    def n_frames(self, n_samples: int) -> int:
        """Frames of a recording of ``n_samples``: 1 + ceil((n - w) / h), at least 1."""
        w, h = self.frame_length, self.frame_step
        return 1 if n_samples <= w else 1 + -(-(n_samples - w) // h)

    def frames(self, samples: np.ndarray) -> np.ndarray:
        """``(T, w)`` pre-emphasised frames, the end zero-padded to a whole frame."""
        y = emphasise(np.asarray(samples, dtype=np.float64), self.preemphasis, 0.0)
        T, w, h = self.n_frames(len(y)), self.frame_length, self.frame_step
        padded = np.concatenate([y, np.zeros((T - 1) * h + w - len(y))])
        index = np.arange(w)[None, :] + h * np.arange(T)[:, None]
        return padded[index]

    def base(self, frames: np.ndarray, warp: float = 1.0) -> np.ndarray:
        """``(T, base_size)`` MFCCs (or log-mel energies) of pre-emphasised frames ``(T, w)``;
        ``warp``: through the filterbank warped by that VTLP factor (training only)."""
        from scipy.fft import dct

        spectrum = np.fft.rfft(frames * self._window, self.n_fft)
        power = (spectrum.real**2 + spectrum.imag**2) / self.n_fft  # (T, n_fft/2 + 1)
        # not `power @ bank.T`: BLAS sums in an order that depends on the number of rows, and
        # a frame must come out the same whether computed alone (streaming) or with others
        bank = self._bank if warp == 1.0 else _warped_bank(self, warp)
        mel = np.sum(power[:, None, :] * bank[None, :, :], axis=2)  # (T, n_mels)
        log_mel = np.log(np.where(mel == 0.0, EPS, mel))  # (T, n_mels)
        if not self.n_mfcc:
            return log_mel
        cep = dct(log_mel, type=2, axis=1, norm="ortho")[:, : self.n_mfcc] * self._lift
        energy = power.sum(axis=1)
        cep[:, 0] = np.log(np.where(energy == 0.0, EPS, energy))  # c0: log frame energy
        return cep

    def features(self, samples: np.ndarray, warp: float = 1.0) -> np.ndarray:
        """``(T, size)`` float32 features of a whole recording (samples at ``rate``);
        ``warp``: a VTLP factor for a training copy (`rnnkit.audio.augment`; 1: none)."""
        base = self.base(self.frames(samples), warp)
        parts = [base]
        for _ in range(self.deltas):
            parts.append(delta(parts[-1], self.delta_width))
        out = np.concatenate(parts, axis=1)
        if self.norm == "utterance":
            out = (out - out.mean(axis=0)) / np.maximum(out.std(axis=0), 1e-5)
        return out.astype(np.float32)

    def stream(self) -> StreamingFeatures:
        return StreamingFeatures(self)


@lru_cache(maxsize=16)
def _warped_bank(front: FrontEnd, warp: float) -> np.ndarray:
    """``front.bank(warp)``, kept for the few fixed warps of test-time views and streams."""
    return front.bank(warp)


def emphasise(x: np.ndarray, a: float, previous: float) -> np.ndarray:
    """``y[n] = x[n] - a x[n-1]`` with ``x[-1] = previous``."""
    if a == 0 or len(x) == 0:
        return x.copy()
    return x - a * np.concatenate([[previous], x[:-1]])


def delta(feat: np.ndarray, N: int) -> np.ndarray:
    """Regression deltas over ``2N + 1`` frames, the ends repeated (module docstring)."""
    padded = np.pad(feat, ((N, N), (0, 0)), mode="edge")
    weights = np.arange(-N, N + 1, dtype=np.float64)
    T = len(feat)
    out = np.zeros_like(feat, dtype=np.float64)
    for j, w in enumerate(weights):
        if w:
            out += w * padded[j : j + T]
    return out / (2 * np.sum(np.arange(1, N + 1) ** 2))


class _StreamingDelta:
    """Deltas frame by frame: frame t's delta once frame t + N is in; `flush` repeats the last."""

    def __init__(self, N: int) -> None:
        self.N = N
        self.weights = np.arange(-N, N + 1, dtype=np.float64)
        self.denominator = 2 * np.sum(np.arange(1, N + 1) ** 2)
        self.buffer: deque[np.ndarray] = deque()

    def push(self, frame: np.ndarray) -> list[np.ndarray]:
        if not self.buffer:
            self.buffer.extend([frame] * self.N)  # the start repeated
        self.buffer.append(frame)
        return self._ready()

    def flush(self) -> list[np.ndarray]:
        if not self.buffer:
            return []
        self.buffer.extend([self.buffer[-1]] * self.N)  # the end repeated
        out = self._ready()
        self.buffer.clear()
        return out

    def _ready(self) -> list[np.ndarray]:
        out = []
        while len(self.buffer) >= 2 * self.N + 1:
            window = list(self.buffer)[: 2 * self.N + 1]
            total = np.zeros_like(window[0], dtype=np.float64)
            for w, f in zip(self.weights, window, strict=True):
                if w:
                    total += w * f  # in `delta`'s order, so the sums round alike
            out.append(total / self.denominator)
            self.buffer.popleft()
        return out


class StreamingFeatures:
    """`FrontEnd` features as samples arrive: ``push(samples)`` returns the frames now complete
    ``(n, size)``, ``flush()`` the rest at the end of the stream. Concatenated, they equal
    ``FrontEnd(norm="none").features`` of the whole recording (with ``norm="utterance"`` the
    frames come out unnormalised: normalising needs the whole recording); ``warp``: through
    the filterbank warped by that VTLP factor, as ``features(samples, warp=)``."""

    def __init__(self, front: FrontEnd, warp: float = 1.0) -> None:
        self.front = front
        self.warp = float(warp)
        self.reset()

    def reset(self) -> None:
        self._previous = 0.0  # the last raw sample, for pre-emphasis
        self._pending = np.zeros(0)  # pre-emphasised samples not yet in a whole frame
        self._seen = 0  # samples pushed
        self._emitted = 0  # frames computed
        self._deltas = [_StreamingDelta(self.front.delta_width) for _ in range(self.front.deltas)]
        self._waiting: list[deque[np.ndarray]] = [deque() for _ in range(self.front.deltas)]

    def push(self, samples: np.ndarray) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float64).reshape(-1)
        if len(x):
            y = emphasise(x, self.front.preemphasis, self._previous)
            self._previous = float(x[-1])
            self._pending = np.concatenate([self._pending, y])
            self._seen += len(x)
        w, h = self.front.frame_length, self.front.frame_step
        n = 0 if len(self._pending) < w else 1 + (len(self._pending) - w) // h
        if n == 0:
            return np.zeros((0, self.front.size), dtype=np.float32)
        index = np.arange(w)[None, :] + h * np.arange(n)[:, None]
        frames = self._pending[index]
        self._pending = self._pending[n * h :]
        self._emitted += n
        return self._through_deltas(self.front.base(frames, self.warp), last=False)

    def flush(self) -> np.ndarray:
        """The frames left at the end of the stream (the last zero-padded); then `reset`."""
        missing = self.front.n_frames(self._seen) - self._emitted if self._seen else 0
        base = np.zeros((0, self.front.base_size))
        if missing > 0:
            w, h = self.front.frame_length, self.front.frame_step
            padded = np.concatenate([self._pending, np.zeros((missing - 1) * h + w)])
            index = np.arange(w)[None, :] + h * np.arange(missing)[:, None]
            base = self.front.base(padded[index], self.warp)
        out = self._through_deltas(base, last=True)
        self.reset()
        return out

    def _through_deltas(self, base: np.ndarray, last: bool) -> np.ndarray:
        """Base frames through the delta stages; the rows ``[c, d, dd]`` now complete. Level
        ``k`` frames wait in ``_waiting[k]`` until the last level's frame of the same time is
        out."""
        level: list[np.ndarray] = list(base)
        for k, stage in enumerate(self._deltas):
            self._waiting[k].extend(level)
            out: list[np.ndarray] = []
            for f in level:
                out += stage.push(f)
            if last:
                out += stage.flush()
            level = out
        rows = [np.concatenate([*(q.popleft() for q in self._waiting), f]) for f in level]
        return np.asarray(rows, dtype=np.float32).reshape(-1, self.front.size)
