"""Test-time VTLP for transcription (`Transcriber(warps=K)`): the warp factors, streaming
features through a warped filterbank, the views' posteriors averaged, and the live decoder
still equal to the offline one with warps."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.audio import FrontEnd, StreamingFeatures
from rnnkit.audio.tta import warp_grid, warped_views
from rnnkit.errors import InputError
from rnnkit.estimators.transcriber import Transcriber
from rnnkit.estimators.transcriber_stream import LiveTranscriber
from test_speech import two_tone


def test_warp_grid_is_odd_symmetric_and_holds_one():
    assert warp_grid(1, 0.1).tolist() == [1.0]
    np.testing.assert_allclose(warp_grid(3, 0.1), [0.9, 1.0, 1.1])
    assert 1.0 in warp_grid(5, 0.2).tolist()
    for k, spread, message in ((2, 0.1, "odd number of warps"), (3, 0.0, "spread in")):
        with pytest.raises(InputError, match=message) as e:
            warp_grid(k, spread, "Transcriber")
        assert "\n" not in str(e.value) and str(e.value).startswith("Transcriber: ")


def test_streaming_features_with_a_warp_equal_the_whole_file():
    rng = np.random.default_rng(0)
    x, _ = two_tone(rng, 3)
    front = FrontEnd(norm="none")
    for warp in (0.9, 1.1):
        stream = StreamingFeatures(front, warp=warp)
        got, i = [], 0
        while i < len(x):
            n = int(rng.integers(1, 300))
            got.append(stream.push(x[i : i + n]))
            i += n
        got.append(stream.flush())
        whole = front.features(x, warp=warp)
        np.testing.assert_array_equal(np.concatenate(got), whole)
        assert not np.allclose(whole, front.features(x))  # the warp changed something
    assert [v.shape for v in warped_views(x, front, [0.9, 1.0])] == [whole.shape] * 2


@pytest.fixture(scope="module")
def warped_model():
    rng = np.random.default_rng(0)
    data = [two_tone(rng, int(rng.integers(1, 5))) for _ in range(50)]
    front = FrontEnd(norm="none")
    X = [front.features(x) for x, _ in data]
    y = [text for _, text in data]
    model = Transcriber(
        hidden_size=16, num_layers=1, stack=2, epochs=6, batch_size=8, lr=1e-2, patience=None,
        warps=3, warp_spread=0.1,
    ).fit(X[:40], y[:40], X[40:], y[40:])  # fmt: skip
    return model, front, data[40:]


def test_views_average_the_posteriors(warped_model):
    model, front, data = warped_model
    x = data[0][0]
    views = model.views(x, front)
    assert views.shape[0] == 3
    np.testing.assert_array_equal(views[1], front.features(x))  # the middle warp is 1
    each = [model.log_probs([v])[0] for v in views]
    (averaged,) = model.log_probs([views])
    # one batch of three against three of one: float32 rounding apart
    np.testing.assert_allclose(averaged, np.log(np.mean(np.exp(each), axis=0)), rtol=1e-5)
    assert not np.allclose(averaged, each[1])  # the warps changed the posteriors
    assert model.log_probs([views[1][None]])[0].tolist() == each[1].tolist()


def test_live_decoder_with_warps_equals_offline_greedy_on_the_views(warped_model):
    model, front, data = warped_model
    live = LiveTranscriber(model, front)
    offline = model.predict([model.views(x, front) for x, _ in data])
    assert any(offline)  # something is emitted, so the comparison says something
    rng = np.random.default_rng(1)
    for (x, _), expected in zip(data, offline, strict=True):
        got, i = [], 0
        while i < len(x):
            n = int(rng.integers(1, 400))
            got += live.push(x[i : i + n])
            i += n
        got += live.flush()
        assert "".join(c for c, _ in got) == expected
