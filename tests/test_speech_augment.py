"""Augmentation against speaker variation (`rnnkit.audio.augment`): VTLP's warp and warped
filterbank, SpecAugment-style masks and their widths, augmentation in training only, and
one-line errors for bad settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from by_path import load_by_path
from rnnkit.audio import FrontEnd
from rnnkit.audio.augment import (
    TIME_RATIO,
    VTLP_BOUNDARY,
    WarpedEpochs,
    mask_batch,
    vtlp_warp,
    warp_factors,
)
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.estimators.classifier import SequenceClassifier

RATE = 8000


def speechlike(seconds: float = 0.6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    x = 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.2 * np.sign(np.sin(2 * np.pi * 120 * t))
    return x * np.hanning(len(t)) + 0.01 * rng.standard_normal(len(t))


# -- VTLP ------------------------------------------------------------------------------------
def test_vtlp_with_factor_one_gives_the_plain_features():
    x, front = speechlike(), FrontEnd()
    np.testing.assert_allclose(front.features(x, warp=1.0), front.features(x), atol=1e-6)
    plain = WarpedEpochs([x, speechlike(0.3, 1)], front, 0.0)(3)
    np.testing.assert_allclose(plain[1], front.features(speechlike(0.3, 1)), atol=1e-6)


@pytest.mark.parametrize("alpha", [0.9, 0.95, 1.05, 1.1])
def test_vtlp_warp_is_piecewise_linear_and_keeps_the_band(alpha):
    top = 4000.0
    f = np.linspace(0, top, 801)
    g = vtlp_warp(f, alpha, top)
    assert g[0] == 0 and g[-1] == pytest.approx(top)
    assert np.all(np.diff(g) > 0)  # monotone: the filters keep their order
    f0 = VTLP_BOUNDARY * top * min(alpha, 1) / alpha
    below = f <= f0
    np.testing.assert_allclose(g[below], alpha * f[below])
    slopes = np.diff(g[~below]) / np.diff(f[~below])
    np.testing.assert_allclose(slopes, slopes[0], rtol=1e-9)  # one line above the boundary


def test_a_warp_moves_the_filters_and_changes_the_features():
    front = FrontEnd()
    centre = lambda bank: (bank * np.arange(bank.shape[1])).sum(1) / bank.sum(1)  # noqa: E731
    plain, up, down = centre(front.bank()), centre(front.bank(1.1)), centre(front.bank(0.9))
    assert np.all(up[5:15] > plain[5:15]) and np.all(down[5:15] < plain[5:15])
    x = speechlike()
    assert np.abs(front.features(x, warp=1.1) - front.features(x)).max() > 0.05


def test_warped_epochs_draw_fresh_factors_each_epoch_in_range():
    a, b = warp_factors(500, 0.1, 0, 0), warp_factors(500, 0.1, 0, 1)
    assert 0.9 <= a.min() and a.max() <= 1.1 and a.std() > 0.04
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, warp_factors(500, 0.1, 0, 0))  # reproducible
    front = FrontEnd()
    epochs = WarpedEpochs([speechlike(), speechlike(0.4, 2)], front, 0.1, seed=3)
    e0, e1 = epochs(0), epochs(1)
    assert [len(f) for f in e0] == [len(f) for f in e1] == [59, 39]  # 0.6 s, 0.4 s
    assert np.abs(e0[0] - e1[0]).max() > 0
    np.testing.assert_allclose(e0[0], front.features(speechlike(), warp=epochs.factors(0)[0]))


# -- masks -----------------------------------------------------------------------------------
def test_masks_hit_the_configured_widths_and_only_valid_steps():
    T, B, F, blocks = 60, 6, 39, 3
    lengths = np.array([60, 50, 40, 30, 20, 6])
    x = np.ones((T, B, F), dtype=np.float32)
    for b, n in enumerate(lengths):
        x[n:, b] = 0  # padding
    widest_time, widest_feature = 0, 0
    for step in range(200):
        out = mask_batch(x, lengths, 0, step, 1, 8, 1, 3, blocks)
        assert np.array_equal(x[:, 0], np.ones((T, F)))  # the input is left alone
        for b, n in enumerate(lengths):
            rows = np.flatnonzero((out[:n, b] == 0).all(axis=1))
            cols = np.flatnonzero((out[:n, b] == 0).all(axis=0))
            assert len(rows) <= min(8, int(TIME_RATIO * n))  # one run, within the cap
            if len(rows):
                assert rows[-1] - rows[0] + 1 == len(rows)
            widest_time = max(widest_time, len(rows))
            assert len(cols) % blocks == 0 and len(cols) // blocks <= 3
            block = cols.reshape(blocks, -1) - 13 * np.arange(blocks)[:, None]
            assert (block == block[0]).all()  # the same coefficients in every block
            widest_feature = max(widest_feature, len(cols) // blocks)
            assert not out[n:, b].any()  # padding stays zero
    assert widest_time == 8 and widest_feature == 3  # the configured widths are reached
    same = mask_batch(x, lengths, 0, 7, 1, 8, 1, 3, blocks)
    np.testing.assert_array_equal(same, mask_batch(x, lengths, 0, 7, 1, 8, 1, 3, blocks))


def test_the_torch_side_loads_the_same_masks_by_path():
    path = Path(__file__).resolve().parent.parent / "src" / "rnnkit" / "audio" / "augment.py"
    module = load_by_path(path, "augment_by_path")
    x = np.random.default_rng(0).standard_normal((30, 4, 26)).astype(np.float32)
    lengths = np.array([30, 25, 20, 15])
    np.testing.assert_array_equal(
        module.mask_batch(x, lengths, 1, 5, 2, 5, 2, 2, 2),
        mask_batch(x, lengths, 1, 5, 2, 5, 2, 2, 2),
    )


# -- in training only --------------------------------------------------------------------
def _toy(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = [rng.standard_normal((12 + k % 5, 6)).astype(np.float32) + y[k] for k in range(n)]
    return X, y


def test_augmentation_is_off_at_prediction_and_on_in_training():
    X, y = _toy()
    kwargs = dict(hidden_size=8, epochs=2, patience=None, dropout=0.0, seed=1)
    masked = SequenceClassifier(time_masks=2, time_mask_width=3, feature_masks=1,
                                feature_mask_width=2, feature_blocks=2, **kwargs)  # fmt: skip
    shifted = [x + 0.5 for x in X]
    masked.fit(X, y, X[:8], y[:8], X_epoch=lambda e: shifted if e % 2 else X)
    plain = SequenceClassifier(**kwargs).fit(X, y, X[:8], y[:8])
    p = masked.predict_proba(X)
    assert np.abs(p - plain.predict_proba(X)).max() > 1e-4  # training saw other batches
    np.testing.assert_array_equal(p, masked.predict_proba(X))  # no random masks at prediction
    masked.set_params(time_masks=0, feature_masks=0)
    np.testing.assert_array_equal(p, masked.predict_proba(X))  # the settings play no part


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"time_masks": -1}, "time_masks must be an integer >= 0, got -1"),
        ({"time_mask_width": 2.5}, "time_mask_width must be an integer >= 0"),
        ({"feature_blocks": 0}, "feature_blocks must be an integer >= 1"),
        (
            {"feature_masks": 1, "feature_mask_width": 4, "feature_blocks": 2},
            "feature_mask_width 4 is wider than a block of 3",
        ),  # fmt: skip
        (
            {"feature_masks": 1, "feature_mask_width": 1, "feature_blocks": 4},
            "6 features do not split into 4 equal blocks",
        ),  # fmt: skip
    ],
)
def test_bad_mask_settings_give_one_line_errors(params, message):
    X, y = _toy(10)
    with pytest.raises(InputError, match=message) as info:
        SequenceClassifier(hidden_size=4, epochs=1, **params).fit(X, y, X, y)
    assert "\n" not in str(info.value)


def test_bad_vtlp_and_epoch_inputs_give_one_line_errors():
    with pytest.raises(InputError, match=r"vtlp must be a number in \[0, 0.5\)") as info:
        WarpedEpochs([speechlike()], FrontEnd(), 0.7)
    assert "\n" not in str(info.value)
    X, y = _toy(10)
    with pytest.raises(InputError, match="X_epoch\\(0\\) must hold 10 sequences"):
        SequenceClassifier(hidden_size=4, epochs=1).fit(X, y, X, y, X_epoch=lambda e: X[:-1])
    with pytest.raises(InputError, match="masks and X_epoch augment feature frames"):
        SequenceClassifier(hidden_size=4, epochs=1, time_masks=1, time_mask_width=1).fit(
            ["ab", "ba"] * 3, [0, 1] * 3
        )


def test_cli_rejects_bad_augmentation_values_in_one_line(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("text,label\n" + "good one,a\nbad one,b\n" * 6)
    out = str(tmp_path / "m.safetensors")
    base = ["train", "classify", "--train", str(tmp_path / "t.csv"), "--out", out]
    for args, message in (
        (["--vtlp", "0.6"], "argument --vtlp: expected a number in [0, 0.5), got '0.6'"),
        (["--time-masks", "-1"], "argument --time-masks: expected an integer >= 0"),
        (["--vtlp", "0.1"], "--vtlp: augments audio; --train holds text"),
        (["--speed", "0.6"], "argument --speed: expected a number in [0, 0.5), got '0.6'"),
        (["--speed", "0.1"], "--speed: augments audio; --train holds text"),
        (["--noise-snr", "30,5"], "argument --noise-snr: expected LO,HI: two decibel values"),
        (["--noise-snr", "10,30"], "--noise-snr: adds noise to audio; --train holds text"),
    ):
        try:
            code = main(base + args)
        except SystemExit as exc:  # argparse's errors
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
        assert len([line for line in err.splitlines() if "error" in line.lower()]) == 1


# -- the transcriber -------------------------------------------------------------------------
def two_words(rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
    """'lo' a 400 Hz tone, 'hi' a 1600 Hz tone, 80-120 ms each, short silences between."""
    words = rng.choice(["lo", "hi"], n).tolist()
    parts = [np.zeros(int(RATE * 0.05))]
    for w in words:
        t = np.arange(int(RATE * rng.uniform(0.08, 0.12))) / RATE
        tone = 0.5 * np.sin(2 * np.pi * (400 if w == "lo" else 1600) * t)
        parts += [tone, np.zeros(int(RATE * rng.uniform(0.04, 0.08)))]
    x = np.concatenate(parts)
    return x + 0.01 * rng.standard_normal(len(x)), " ".join(words)


def test_word_units_with_augmentation_learn_stream_and_reload(tmp_path):
    from rnnkit.estimators.transcriber import Transcriber
    from rnnkit.estimators.transcriber_stream import LiveTranscriber
    from rnnkit.io.checkpoint import load, save

    rng = np.random.default_rng(0)
    data = [two_words(rng, int(rng.integers(1, 5))) for _ in range(80)]
    front = FrontEnd(norm="none")
    X = [front.features(x) for x, _ in data]
    y = [text for _, text in data]
    warped = WarpedEpochs([x for x, _ in data[:60]], front, 0.05, seed=0)
    model = Transcriber(hidden_size=32, num_layers=1, stack=1, epochs=40, batch_size=8,
                        lr=1e-2, patience=None, units="word", time_masks=1, time_mask_width=2,
                        feature_masks=1, feature_mask_width=2, feature_blocks=3)  # fmt: skip
    model.fit(X[:60], y[:60], X[60:], y[60:], X_epoch=warped)
    assert model.alphabet_ == ("hi", "lo")
    assert model.score(X[60:], y[60:])["wer"] == 0.0
    live = LiveTranscriber(model, front)
    for (x, _), expected in zip(data[60:70], model.predict(X[60:70]), strict=True):
        got = live.push(x) + live.flush()
        assert model.separator.join(w for w, _ in got) == expected
    save(model, tmp_path / "w.safetensors")
    again = load(tmp_path / "w.safetensors")
    assert again.alphabet_ == ("hi", "lo") and again.predict(X[60:]) == model.predict(X[60:])
    with pytest.raises(InputError, match=r"has words \['mid'\] not in"):
        model.fit(X[:4], ["lo", "hi", "lo", "hi"], X[:1], ["mid"])


def test_transcriber_bad_settings_give_one_line_errors():
    from rnnkit.estimators.transcriber import Transcriber

    X, y = [np.zeros((10, 6), np.float32)] * 2, ["a", "b"]
    for params, message in (
        ({"units": "phone"}, "units must be 'char' or 'word', got 'phone'"),
        ({"feature_masks": -2}, "feature_masks must be an integer >= 0, got -2"),
    ):
        with pytest.raises(InputError, match=message) as info:
            Transcriber(epochs=1, **params).fit(X, y)
        assert "\n" not in str(info.value)


def test_x_epoch_is_called_once_per_epoch_with_the_internal_split():
    from rnnkit.estimators.transcriber import Transcriber

    X, y = _toy(20)
    calls: list[int] = []

    def epoch(e: int) -> list[np.ndarray]:
        calls.append(e)
        return X

    SequenceClassifier(hidden_size=4, epochs=2, patience=None).fit(X, y, X_epoch=epoch)
    assert calls == [0, 1]
    calls.clear()
    texts = ["ab" if k % 2 else "ba" for k in range(20)]
    Transcriber(hidden_size=4, num_layers=1, epochs=2, patience=None).fit(X, texts, X_epoch=epoch)
    assert calls == [0, 1]


def test_level_shift_moves_the_log_energy_alone_by_a_bounded_fresh_amount():
    from rnnkit.audio import FrontEnd
    from rnnkit.audio.augment import LevelShifted

    rng = np.random.default_rng(0)
    front = FrontEnd(norm="none")
    samples = [0.1 * rng.standard_normal(n) for n in (2000, 3000, 2500)]
    X = [front.features(x) for x in samples]
    shifted = LevelShifted(X, front, 20.0, seed=3)
    first, again, other = shifted(0), shifted(0), shifted(1)
    for x, y, z in zip(X, first, again, strict=True):
        np.testing.assert_array_equal(y, z)  # the same epoch, the same levels
        np.testing.assert_array_equal(y[:, 1:], x[:, 1:])  # cepstra and deltas untouched
        shift = y[:, 0] - x[:, 0]
        assert np.ptp(shift) < 1e-5 and abs(shift[0]) <= 20.0 * np.log(10) / 10 + 1e-5
    assert not np.allclose(first[0][:, 0], other[0][:, 0])  # fresh levels each epoch
    np.testing.assert_array_equal(X[0], front.features(samples[0]))  # shifted on copies
    # the shift is what a gain does to the features: 6 dB louder samples
    y = front.features(samples[0] * 10 ** (6 / 20))
    np.testing.assert_allclose(y[:, 0] - X[0][:, 0], 0.6 * np.log(10), atol=1e-6)
    np.testing.assert_allclose(y[:, 1:], X[0][:, 1:], atol=1e-6)


def test_level_shift_of_log_mel_features_moves_every_band():
    from rnnkit.audio import FrontEnd
    from rnnkit.audio.augment import LevelShifted

    front = FrontEnd(norm="none", n_mfcc=0)
    x = front.features(0.1 * np.random.default_rng(1).standard_normal(2000))
    (y,) = LevelShifted([x], front, 10.0, seed=0)(0)
    bands = y[:, : front.n_mels] - x[:, : front.n_mels]
    assert np.ptp(bands) < 1e-6 and abs(bands[0, 0]) > 0
    np.testing.assert_array_equal(y[:, front.n_mels :], x[:, front.n_mels :])


def test_train_transcribe_trains_on_level_shifted_warped_features_by_default(tmp_path):
    from scipy.io import wavfile

    from rnnkit.audio.augment import LevelShifted
    from rnnkit.tasks.transcribe import TranscribeConfig, training_epochs

    path = tmp_path / "a.wav"
    wavfile.write(path, RATE, (speechlike() * 32767).astype(np.int16))
    front = FrontEnd(norm="none")
    X = [front.features(speechlike())]
    made = training_epochs(X, [str(path)], front, TranscribeConfig())
    assert isinstance(made, LevelShifted) and isinstance(made.epochs, WarpedEpochs)
    assert made.db == TranscribeConfig().level > 0
    only_vtlp = training_epochs(X, [str(path)], front, TranscribeConfig(level=0.0))
    assert isinstance(only_vtlp, WarpedEpochs)
    only_level = training_epochs(X, [str(path)], front, TranscribeConfig(vtlp=0.0))
    assert isinstance(only_level, LevelShifted) and only_level.epochs is None
    assert training_epochs(X, [str(path)], front, TranscribeConfig(vtlp=0.0, level=0.0)) is None
