r"""Training-time augmentation against speaker variation: vocal tract length perturbation of the
mel filterbank (`vtlp_warp`, `WarpedEpochs`) and SpecAugment-style masks on feature batches
(`mask_batch`). Neither is applied at prediction.

**VTLP** (Jaitly & Hinton, 2013). A vocal tract ``alpha`` times shorter moves every formant up
by about ``alpha``; so each training utterance is featurised with its mel filters' edge
frequencies warped piecewise-linearly by a random ``alpha`` in ``[1 - v, 1 + v]``::

    f' = alpha f                                         f <= f0 = F_hi min(alpha, 1) / alpha
    f' = top - (top - F_hi min(alpha, 1)) / (top - f0) (top - f)      above f0

``top`` is the filterbank's upper edge (the Nyquist frequency by default) and
``F_hi = VTLP_BOUNDARY top``: the warp is a stretch below ``f0`` and maps ``[f0, top]``
linearly onto what is left, so the band stays the band. ``alpha = 1`` gives the filterbank
unchanged, hence the plain features. `WarpedEpochs` draws a fresh ``alpha`` per utterance and
epoch (from a generator seeded by ``(seed, epoch)``).

**Speed perturbation** (Ko et al., 2015). The waveform played ``rho`` times as fast:
resampled to ``n / rho`` samples at the same rate (`speed_change`), which shortens it and
raises every frequency, pitch included, by ``rho`` (VTLP moves the formants alone).
`WarpedEpochs` with ``speed=s`` also draws a fresh ``rho`` per utterance and epoch, uniform in
``[1 - s, 1 + s]`` in steps of ``1 / SPEED_STEPS`` (from its own stream, ``(seed,
SPEED_STREAM, epoch)``, so the VTLP factors stay those without it), and featurises the
resampled waveform: the lengths then change from epoch to epoch.

**Noise** (white, at a random signal-to-noise ratio). `WarpedEpochs` with ``noise=(lo, hi)``
adds to each (speed-changed) waveform white Gaussian noise of standard deviation
``rms(x) 10^(-snr / 20)``, ``snr`` uniform in ``[lo, hi]`` dB, drawn afresh per utterance and
epoch (from its own stream, ``(seed, NOISE_STREAM, epoch)``, so the other factors stay
put), before featurisation. ``rms(x)`` is the whole utterance's (gaps and the noise it already
holds included): a quiet voice under a fixed noise, as a new speaker may be recorded.
With ``colour=(lo, hi)`` the noise is coloured instead: its power spectrum falls as
``f^-beta``, ``beta`` uniform in ``[lo, hi]`` per utterance and epoch (0 white, 1 pink, 2
brown; `coloured_noise`), at the same total power, so the same SNR; rooms and microphones
mostly hum low (FSDD's own noise floors fall 15-20 dB from 0-300 Hz to 3-4 kHz), which white
noise does not imitate. The exponents come from their own stream, ``(seed, COLOUR_STREAM,
epoch)``, so white noise (``colour=None``) draws what it drew before.

**Reverberation** (a synthetic room). `WarpedEpochs` with ``reverb=(lo, hi)`` convolves each
(speed-changed) waveform, before the noise, with a room impulse response drawn per utterance
and epoch (`room_response`): the direct sound, then Gaussian noise whose amplitude decays by
60 dB in ``rt60`` seconds (Polack's statistical model of a diffuse tail), ``rt60`` uniform in
``[lo, hi]``, at a direct-to-reverberant energy ratio uniform in `REVERB_DRR` dB (a talker
near the microphone). The result keeps the utterance's length and mean power. Unlike a
microphone's fixed colouring, which the per-utterance cepstral mean removes, a tail longer
than the analysis window smears each frame into the next ones. Its own stream, ``(seed,
REVERB_STREAM, epoch)``.

**Masks** (SpecAugment, Park et al., 2019), on a padded time-major batch ``(T, B, F)`` of
normalised features (so 0 is the utterance's mean): per sequence, ``time_masks`` runs of
``t ~ U{0..time_width}`` steps (at most `TIME_RATIO` of its length) and ``feature_masks`` runs
of ``f ~ U{0..feature_width}`` channels set to 0. ``F`` is ``blocks`` equal blocks (for MFCCs
with deltas: the cepstra, their deltas and delta-deltas) and a feature mask hits the same
channels of every block. On MFCCs a feature mask hides cepstral coefficients (quefrencies)
rather than mel bands. The masks of step ``s`` come from a generator seeded by
``(seed, MASK_STREAM, s)``, so another engine reading this file draws the very same masks.

This file needs numpy only: `benchmarks/speech_torch.py` loads it by path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

try:
    from ..errors import InputError
except ImportError:  # loaded by path, outside the package (benchmarks/speech_torch.py)
    InputError = ValueError  # type: ignore[assignment,misc]

VTLP_BOUNDARY = 0.6  # F_hi as a fraction of the top edge: 4.8 kHz of 8 kHz at 16 kHz audio
TIME_RATIO = 0.2  # a time mask covers at most this fraction of its sequence
MASK_STREAM = 7  # the masks' random stream, apart from the batches' (seed, epoch)
SPEED_STREAM = 11  # the speed factors' random stream, apart from the VTLP factors' (the
# value of LEVEL_STREAM too: the classifier's speed and the transcriber's levels never meet)
SPEED_STEPS = 100  # speed factors are multiples of 1 / SPEED_STEPS
LEVEL_STREAM = 11  # the levels' random stream (`LevelShifted`)
NOISE_STREAM = 13  # the added noise's random stream (`WarpedEpochs` with ``noise``)
COLOUR_STREAM = 17  # the noise's spectral exponents (`WarpedEpochs` with ``colour``)
REVERB_STREAM = 19  # the rooms' random stream (`WarpedEpochs` with ``reverb``)
REVERB_DRR = (0.0, 10.0)  # direct-to-reverberant energy ratio, dB: a talker near the microphone
REVERB_MAX = 2.0  # the longest reverberation time accepted, seconds
COLOUR_FLOOR = 0.005  # coloured noise is flat below this fraction of the rate (40 Hz at 8 kHz)


def vtlp_warp(hz: np.ndarray, alpha: float, top: float) -> np.ndarray:
    """Frequencies ``hz`` (in ``[0, top]``) warped by ``alpha`` (module docstring)."""
    f = np.asarray(hz, dtype=np.float64)
    if alpha == 1.0:
        return f.copy()
    boundary = VTLP_BOUNDARY * top * min(alpha, 1.0)
    f0 = boundary / alpha
    above = top - (top - boundary) / (top - f0) * (top - f)
    return np.where(f <= f0, alpha * f, above)


def check_vtlp(v: float, where: str) -> float:
    """``v`` as a number in ``[0, 0.5)``, else a one-line error naming ``where``."""
    if not isinstance(v, (int, float)) or not 0 <= v < 0.5:
        raise InputError(
            f"{where}: vtlp must be a number in [0, 0.5) (the warp factor's spread around 1, "
            f"e.g. 0.1 for 0.9-1.1), got {v!r}"
        )
    return float(v)


def warp_factors(n: int, v: float, seed: int, epoch: int) -> np.ndarray:
    """``n`` warp factors uniform in ``[1 - v, 1 + v]`` for ``epoch`` (all 1 when ``v`` is 0)."""
    if v == 0:
        return np.ones(n)
    return np.random.default_rng([seed, epoch]).uniform(1.0 - v, 1.0 + v, n)


def check_speed(s: float, where: str) -> float:
    """``s`` as a number in ``[0, 0.5)``, else a one-line error naming ``where``."""
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s < 0.5:
        raise InputError(
            f"{where}: speed must be a number in [0, 0.5) (the speed factor's spread around 1, "
            f"e.g. 0.1 for 0.9-1.1), got {s!r}"
        )
    return float(s)


def speed_factors(n: int, s: float, seed: int, epoch: int) -> np.ndarray:
    """``n`` speed factors uniform in ``[1 - s, 1 + s]`` in steps of ``1 / SPEED_STEPS`` for
    ``epoch`` (all 1 when ``s`` is 0)."""
    reach = int(round(s * SPEED_STEPS))
    if reach == 0:
        return np.ones(n)
    rng = np.random.default_rng([seed, SPEED_STREAM, epoch])
    return (SPEED_STEPS + rng.integers(-reach, reach + 1, n)) / SPEED_STEPS


def speed_change(x: np.ndarray, rho: float) -> np.ndarray:
    """The waveform ``x`` played ``rho`` times as fast (module docstring): ``x`` resampled by
    ``1 / rho`` (``rho`` rounded to a multiple of ``1 / SPEED_STEPS``), at the same rate."""
    from scipy.signal import resample_poly

    k = int(round(rho * SPEED_STEPS))
    if k == SPEED_STEPS:
        return x
    g = int(np.gcd(k, SPEED_STEPS))
    return np.asarray(resample_poly(x, SPEED_STEPS // g, k // g), dtype=np.float64)


def checked_pair(
    value: Any, where: str, what: str, ok: Callable[[float, float], bool]
) -> tuple[float, float] | None:
    """``value`` (None, or ``(lo, hi)``: two finite numbers that ``ok(lo, hi)`` allows) as a
    tuple of floats, else the one-line error ``"{where}: {what}, got {value!r}"``."""
    if value is None:
        return None
    fine = isinstance(value, (tuple, list)) and len(value) == 2
    fine = fine and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value
    )
    if not fine or not ok(float(value[0]), float(value[1])):
        raise InputError(f"{where}: {what}, got {value!r}")
    return float(value[0]), float(value[1])


def check_noise_snr(snr: Any, where: str) -> tuple[float, float] | None:
    """``snr`` (None, or ``(lo, hi)`` decibels with ``lo <= hi``, both finite) as a tuple of
    floats, else a one-line error naming ``where``."""
    what = "noise_snr must be None or (lo, hi), two finite decibel values with lo <= hi"
    return checked_pair(snr, where, what + " (e.g. (5, 30))", lambda lo, hi: lo <= hi)


def coloured_noise(n: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of Gaussian noise whose power spectrum falls as ``f^-beta`` (0 white,
    1 pink, 2 brown), of unit mean power: white noise shaped by ``f^(-beta / 2)`` in the
    frequency domain, below ``COLOUR_FLOOR`` of the sampling rate held flat and the mean
    removed (so brown noise does not wander off)."""
    white = rng.standard_normal(n)
    if beta == 0.0 or n < 2:
        return white
    f = np.fft.rfftfreq(n)
    gain = np.maximum(f, COLOUR_FLOOR) ** (-beta / 2.0)
    gain[0] = 0.0
    y = np.fft.irfft(np.fft.rfft(white) * gain, n)
    power = float(np.mean(y * y))
    return y / np.sqrt(power) if power > 0 else white


def check_noise_colour(colour: Any, where: str) -> tuple[float, float] | None:
    """``colour`` (None, or ``(lo, hi)`` spectral exponents with ``0 <= lo <= hi <= 3``) as a
    tuple of floats, else a one-line error naming ``where``."""
    what = (
        "noise colour must be None or (lo, hi), spectral exponents with 0 <= lo <= hi <= 3 "
        "(0 white, 1 pink, 2 brown; e.g. (0, 2))"
    )
    return checked_pair(colour, where, what, lambda lo, hi: 0 <= lo <= hi <= 3)


def add_noise(
    x: np.ndarray, snr_db: float, rng: np.random.Generator, beta: float = 0.0
) -> np.ndarray:
    """``x`` plus Gaussian noise ``snr_db`` decibels below its mean power (the module
    docstring), white or, with ``beta``, coloured (`coloured_noise`); ``x`` itself unchanged,
    silence stays silence."""
    x = np.asarray(x, dtype=np.float64)
    sigma = float(np.sqrt(np.mean(x * x))) * 10.0 ** (-snr_db / 20.0) if len(x) else 0.0
    return x + sigma * coloured_noise(len(x), float(beta), rng)


def check_reverb(rt60: Any, where: str) -> tuple[float, float] | None:
    """``rt60`` (None, or ``(lo, hi)`` seconds with ``0 < lo <= hi <= REVERB_MAX``) as a tuple
    of floats, else a one-line error naming ``where``."""
    what = (
        "reverb must be None or (lo, hi), reverberation times in seconds with "
        f"0 < lo <= hi <= {REVERB_MAX:g} (e.g. (0.1, 0.5))"
    )
    return checked_pair(rt60, where, what, reverb_allowed)


def reverb_allowed(lo: float, hi: float) -> bool:
    """Whether ``(lo, hi)`` seconds is a reverberation-time range `WarpedEpochs` takes."""
    return 0 < lo <= hi <= REVERB_MAX


def room_response(rt60: float, drr_db: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A room's impulse response at ``rate`` Hz (module docstring): 1 (the direct sound), then
    ``rt60 * rate`` samples of Gaussian noise decaying by 60 dB over ``rt60`` seconds, of
    total energy ``10^(-drr_db / 10)``."""
    n = max(2, int(round(rt60 * rate)))
    t = np.arange(1, n) / rate
    tail = rng.standard_normal(n - 1) * np.exp(-3.0 * np.log(10.0) * t / rt60)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / float(np.sum(tail * tail)))
    return np.concatenate([[1.0], tail])


def reverberate(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``h``, cut to ``x``'s length and brought back to its mean power;
    silence stays silence."""
    from scipy.signal import fftconvolve

    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return x
    y = fftconvolve(x, h)[: len(x)]
    power, before = float(np.mean(y * y)), float(np.mean(x * x))
    return y * np.sqrt(before / power) if power > 0 else y


class WarpedEpochs:
    """The training recordings featurised afresh for each epoch with VTLP (and speed
    perturbation, and added noise): ``WarpedEpochs(samples, front, 0.1)(epoch)`` is a list of
    ``(T_i, front.size)`` features, utterance ``i`` warped by ``warp_factors(...)[i]``.
    Lengths do not change with the warp or the noise; with ``speed`` (module docstring) they
    do. ``noise``: ``(lo, hi)`` decibels, white noise at a random SNR in that range (module
    docstring); None: none. ``colour``: ``(lo, hi)``, the noise coloured with a spectral
    exponent drawn in that range (module docstring); None: white. ``front`` is a
    `rnnkit.audio.FrontEnd` (anything with ``features(samples, warp=)``)."""

    def __init__(
        self,
        samples: Sequence[np.ndarray],
        front: Any,
        vtlp: float,
        seed: int = 0,
        speed: float = 0.0,
        noise: tuple[float, float] | None = None,
        colour: tuple[float, float] | None = None,
        reverb: tuple[float, float] | None = None,
    ):
        self.samples = list(samples)
        self.front = front
        self.vtlp = check_vtlp(vtlp, "WarpedEpochs")
        self.speed = check_speed(speed, "WarpedEpochs")
        self.noise = check_noise_snr(noise, "WarpedEpochs")
        self.colour = check_noise_colour(colour, "WarpedEpochs")
        if self.colour is not None and self.noise is None:
            raise InputError("WarpedEpochs: colour colours the added noise; give noise too")
        self.reverb = check_reverb(reverb, "WarpedEpochs")
        self.seed = seed

    def factors(self, epoch: int) -> np.ndarray:
        return warp_factors(len(self.samples), self.vtlp, self.seed, epoch)

    def speeds(self, epoch: int) -> np.ndarray:
        return speed_factors(len(self.samples), self.speed, self.seed, epoch)

    def __call__(self, epoch: int) -> list[np.ndarray]:
        alphas, rhos = self.factors(epoch), self.speeds(epoch)
        played = [speed_change(x, float(r)) for x, r in zip(self.samples, rhos, strict=True)]
        if self.reverb is not None:
            played = self.rooms(played, epoch)
        if self.noise is not None:
            rng = np.random.default_rng([self.seed, NOISE_STREAM, epoch])
            snrs = rng.uniform(self.noise[0], self.noise[1], len(played))
            betas = np.zeros(len(played))
            if self.colour is not None:
                betas = np.random.default_rng([self.seed, COLOUR_STREAM, epoch]).uniform(
                    self.colour[0], self.colour[1], len(played)
                )
            played = [
                add_noise(x, float(snr), rng, float(b))
                for x, snr, b in zip(played, snrs, betas, strict=True)
            ]
        return [self.front.features(x, warp=float(a)) for x, a in zip(played, alphas, strict=True)]

    def rooms(self, played: list[np.ndarray], epoch: int) -> list[np.ndarray]:
        """Each waveform of ``epoch`` in its own room (``reverb``; module docstring)."""
        assert self.reverb is not None
        rng = np.random.default_rng([self.seed, REVERB_STREAM, epoch])
        rt60s = rng.uniform(self.reverb[0], self.reverb[1], len(played))
        drrs = rng.uniform(REVERB_DRR[0], REVERB_DRR[1], len(played))
        rate = int(self.front.rate)
        return [
            reverberate(x, room_response(float(t), float(d), rate, rng))
            for x, t, d in zip(played, rt60s, drrs, strict=True)
        ]

    def subset(self, index: Sequence[int]) -> WarpedEpochs:
        """The same, for the recordings ``index`` picks (factors drawn over those alone)."""
        picked = [self.samples[int(i)] for i in index]
        return WarpedEpochs(
            picked,
            self.front,
            self.vtlp,
            self.seed,
            self.speed,
            self.noise,
            self.colour,
            self.reverb,
        )


class LevelShifted:
    """Level augmentation: each training utterance heard at a random level, uniform within
    ``+-db`` decibels, drawn afresh each epoch (from a generator seeded by ``(seed,
    LEVEL_STREAM, epoch)``). A gain ``g`` dB multiplies every frame's power by ``10^(g/10)``,
    so it adds ``g ln(10) / 10`` to each log energy and to nothing else: the MFCCs' c0 (the log
    frame energy; ``n_mfcc > 0``) or every log-mel band (``n_mfcc = 0``), never the deltas.
    ``epochs(e)`` (or ``X`` when ``epochs`` is None) gives epoch ``e``'s features, which are
    shifted on copies. The model then cannot lean on how loud a voice was recorded."""

    def __init__(
        self,
        X: Sequence[np.ndarray],
        front: Any,
        db: float,
        seed: int = 0,
        epochs: Callable[[int], Sequence[np.ndarray]] | None = None,
    ):
        self.X = X
        self.columns = [0] if front.n_mfcc else list(range(front.n_mels))
        self.db = float(db)
        self.seed = seed
        self.epochs = epochs

    def shifts(self, n: int, epoch: int) -> np.ndarray:
        """The ``n`` utterances' log-energy shifts of ``epoch`` (natural log units)."""
        rng = np.random.default_rng([self.seed, LEVEL_STREAM, epoch])
        return rng.uniform(-self.db, self.db, n) * np.log(10.0) / 10.0

    def __call__(self, epoch: int) -> list[np.ndarray]:
        feats = self.epochs(epoch) if self.epochs is not None else self.X
        out = []
        for x, shift in zip(feats, self.shifts(len(feats), epoch), strict=True):
            y = np.array(x, copy=True)
            y[:, self.columns] += shift
            out.append(y)
        return out


def picked(
    X_epoch: Callable[[int], Sequence[Any]], index: np.ndarray
) -> Callable[[int], list[Any]]:
    """``X_epoch`` restricted to the examples ``index`` picks (one call of ``X_epoch`` per
    epoch)."""

    def epoch_inputs(epoch: int) -> list[Any]:
        whole = X_epoch(epoch)
        return [whole[int(i)] for i in index]

    return epoch_inputs


def check_masks(
    time_masks: Any,
    time_width: Any,
    feature_masks: Any,
    feature_width: Any,
    blocks: Any,
    where: str,
) -> None:
    """One-line errors for bad mask settings."""
    for name, value in (
        ("time_masks", time_masks),
        ("time_mask_width", time_width),
        ("feature_masks", feature_masks),
        ("feature_mask_width", feature_width),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InputError(f"{where}: {name} must be an integer >= 0, got {value!r}")
    if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) or blocks < 1:
        raise InputError(f"{where}: feature_blocks must be an integer >= 1, got {blocks!r}")


def mask_batch(
    x: np.ndarray,
    lengths: np.ndarray,
    seed: int,
    step: int,
    time_masks: int,
    time_width: int,
    feature_masks: int,
    feature_width: int,
    blocks: int = 1,
) -> np.ndarray:
    """A copy of the padded batch ``x`` ``(T, B, F)`` with the masks of ``step`` set to 0
    (module docstring); ``x`` itself unchanged. Raises InputError if ``F`` is not a multiple of
    ``blocks`` or ``feature_width`` is wider than a block."""
    T, B, F = x.shape
    if F % blocks:
        raise InputError(f"mask_batch: {F} features do not split into {blocks} equal blocks")
    block = F // blocks
    if feature_masks and feature_width > block:
        raise InputError(
            f"mask_batch: feature_mask_width {feature_width} is wider than a block of {block} "
            "features"
        )
    out = np.array(x, copy=True)
    if not (time_masks and time_width) and not (feature_masks and feature_width):
        return out
    rng = np.random.default_rng([seed, MASK_STREAM, step])
    for b in range(B):
        n = int(lengths[b])
        widest = min(time_width, int(TIME_RATIO * n))
        for _ in range(time_masks if time_width else 0):
            t = int(rng.integers(0, widest + 1))
            start = int(rng.integers(0, n - t + 1))
            out[start : start + t, b, :] = 0
        for _ in range(feature_masks if feature_width else 0):
            f = int(rng.integers(0, feature_width + 1))
            start = int(rng.integers(0, block - f + 1))
            for k in range(blocks):
                out[:n, b, k * block + start : k * block + start + f] = 0
    return out


def masker(
    seed: int,
    time_masks: int,
    time_width: int,
    feature_masks: int,
    feature_width: int,
    blocks: int = 1,
) -> Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None:
    """``f(x, lengths, step)``: `mask_batch` with these settings; None when they mask nothing."""
    if not (time_masks and time_width) and not (feature_masks and feature_width):
        return None

    def apply(x: np.ndarray, lengths: np.ndarray, step: int) -> np.ndarray:
        return mask_batch(
            x, lengths, seed, step, time_masks, time_width, feature_masks, feature_width, blocks
        )

    return apply
