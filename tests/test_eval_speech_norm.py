"""``eval_speech.py --speaker-norm``: the leave-one-speaker-out features normalised per speaker
from the speaker's own recordings (Kaldi's per-speaker CMVN, or each recording's mean removed
and the deviation pooled over its speaker)."""

from __future__ import annotations

import numpy as np
import pytest

from by_path import benchmark


def recordings(rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    groups = np.array(["ann", "bob", "ann", "bob", "ann"])
    feats = [
        (rng.standard_normal((int(rng.integers(4, 12)), 3)) * (1 + k % 2) + 5 * k).astype(
            np.float32
        )
        for k in range(len(groups))
    ]
    return feats, groups


def test_cmvn_gives_each_speaker_zero_mean_and_unit_deviation_over_its_frames():
    module = benchmark("eval_speech")
    feats, groups = recordings(np.random.default_rng(0))
    out = module.speaker_normalised(feats, groups, "cmvn")
    for g in ("ann", "bob"):
        frames = np.concatenate([out[i] for i in np.flatnonzero(groups == g)]).astype(np.float64)
        np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=1e-5)
    # one recording's own mean is kept relative to its speaker's (unlike per-utterance CMVN)
    assert np.abs(out[0].mean(axis=0) - out[2].mean(axis=0)).min() > 0.5
    # a speaker's statistics use its own recordings alone: bob's do not move ann's features
    moved = [f if groups[i] == "ann" else f * 3 + 7 for i, f in enumerate(feats)]
    again = module.speaker_normalised(moved, groups, "cmvn")
    for i in np.flatnonzero(groups == "ann"):
        np.testing.assert_array_equal(again[i], out[i])


def test_cvn_removes_each_recordings_mean_and_pools_the_deviation_over_its_speaker():
    module = benchmark("eval_speech")
    feats, groups = recordings(np.random.default_rng(1))
    out = module.speaker_normalised(feats, groups, "cvn")
    for f, o in zip(feats, out, strict=True):
        np.testing.assert_allclose(o.mean(axis=0), 0.0, atol=1e-5)
        assert o.shape == f.shape and o.dtype == np.float32
    for g in ("ann", "bob"):
        frames = np.concatenate([out[i] for i in np.flatnonzero(groups == g)]).astype(np.float64)
        np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=1e-5)
    # pooled, not per recording: the recordings of a speaker keep their relative spread
    deviations = [out[i].std(axis=0) for i in np.flatnonzero(groups == "ann")]
    assert not np.allclose(deviations[0], deviations[1], atol=1e-3)


@pytest.mark.parametrize("mode", ["cmvn", "cvn"])
def test_a_constant_feature_does_not_divide_by_zero(mode):
    module = benchmark("eval_speech")
    feats = [np.ones((5, 2), np.float32), np.ones((3, 2), np.float32)]
    out = module.speaker_normalised(feats, np.array(["a", "a"]), mode)
    assert all(np.isfinite(o).all() for o in out)
