"""Per-speaker normalisation of feature frames (Kaldi's per-speaker CMVN): each feature's mean
and standard deviation over all frames of one speaker's recordings, so that a recording keeps
what sets it apart from the speaker's others (its word) while the speaker's voice and
microphone are taken out. `rnnkit.audio.FrontEnd` with ``norm="speaker"`` asks for it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError


def speaker_cmvn(feats: Sequence[np.ndarray], speakers: Sequence[str] | None) -> list[np.ndarray]:
    """Features ``(T_i, F)`` as read (``norm="speaker"`` or ``"none"``) normalised per speaker:
    each feature's mean over all frames of the recordings of ``speakers[i]``'s speaker
    subtracted and its standard deviation divided out (float64 sums, float32 out). ``speakers``
    None: all the recordings are one speaker's. Uses the recordings' audio, never labels."""
    if speakers is None:
        speakers = [""] * len(feats)
    if len(speakers) != len(feats):
        raise InputError(
            f"speaker_cmvn: {len(speakers)} speakers for {len(feats)} recordings; expected one each"
        )
    groups = np.asarray([str(s) for s in speakers])
    out: list[np.ndarray] = [np.empty((0, 0), np.float32)] * len(feats)
    for group in np.unique(groups):
        index = np.flatnonzero(groups == group).tolist()
        frames = np.concatenate([np.asarray(feats[i], np.float64) for i in index])
        mean, std = frames.mean(axis=0), np.maximum(frames.std(axis=0), 1e-5)
        for i in index:
            out[i] = ((np.asarray(feats[i], np.float64) - mean) / std).astype(np.float32)
    return out
