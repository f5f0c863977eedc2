"""Speed perturbation of audio in training (`rnnkit.audio.augment.speed_change`,
`WarpedEpochs(speed=)`, ``train classify --speed``): the factors, what resampling does to
length and pitch, epoch inputs of other lengths, and one-line errors for bad settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from rnnkit.audio import FrontEnd
from rnnkit.audio.augment import (
    SPEED_STEPS,
    WarpedEpochs,
    speed_change,
    speed_factors,
    warp_factors,
)
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.estimators.classifier import SequenceClassifier
from rnnkit.files import safetensors_metadata
from rnnkit.tasks.classify import AUDIO_AUGMENT, ClassifyConfig, augmentation

RATE = 8000


def tone(hz: float, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return 0.5 * np.sin(2 * np.pi * hz * t)


def two_pitch_folders(root: Path) -> None:
    """``root/low`` and ``root/high``: six short 8 kHz tones each, of 300 and 1500 Hz, a little
    noise on them (for the audio classifier's command-line tests)."""
    rng = np.random.default_rng(0)
    for label, pitch in (("low", 300.0), ("high", 1500.0)):
        (root / label).mkdir(parents=True)
        for k in range(6):
            x = tone(pitch, rng.uniform(0.15, 0.25)) + 0.01 * rng.standard_normal(1)
            wavfile.write(root / label / f"{k}.wav", RATE, (x * 32767).astype("<i2"))


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[spectrum.argmax()])


def test_speed_factors_are_fresh_per_epoch_in_range_and_on_the_grid():
    a, b = speed_factors(500, 0.1, 0, 0), speed_factors(500, 0.1, 0, 1)
    assert 0.9 <= a.min() and a.max() <= 1.1 and a.std() > 0.04
    np.testing.assert_allclose(a * SPEED_STEPS, np.round(a * SPEED_STEPS))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, speed_factors(500, 0.1, 0, 0))  # reproducible
    np.testing.assert_array_equal(speed_factors(7, 0.0, 0, 3), np.ones(7))


@pytest.mark.parametrize("rho", [0.9, 0.95, 1.05, 1.1])
def test_speed_change_scales_length_and_pitch(rho):
    x = tone(1000.0)
    y = speed_change(x, rho)
    assert abs(len(y) - len(x) / rho) <= 1
    assert peak_hz(y) == pytest.approx(1000.0 * rho, abs=2 * RATE / len(y))
    assert speed_change(x, 1.0) is x


def test_warped_epochs_with_speed_change_lengths_and_keep_the_vtlp_factors():
    front = FrontEnd()
    samples = [tone(300.0, 0.6), tone(700.0, 0.4)]
    plain = WarpedEpochs(samples, front, 0.1, seed=3)
    fast = WarpedEpochs(samples, front, 0.1, seed=3, speed=0.1)
    np.testing.assert_array_equal(plain.factors(2), fast.factors(2))
    np.testing.assert_array_equal(plain.factors(2), warp_factors(2, 0.1, 3, 2))
    rhos = fast.speeds(2)
    got = fast(2)
    for x, f, a, r in zip(samples, got, fast.factors(2), rhos, strict=True):
        np.testing.assert_allclose(f, front.features(speed_change(x, r), warp=a))
    assert [len(f) for f in plain(2)] == [59, 39]
    lengths = [[len(f) for f in fast(e)] for e in range(6)]
    assert len({tuple(n) for n in lengths}) > 1  # the lengths change from epoch to epoch
    assert fast.subset([1]).speed == 0.1


def test_the_classifier_trains_on_epoch_inputs_of_other_lengths():
    rng = np.random.default_rng(0)
    y = np.arange(30) % 2
    X = [rng.standard_normal((12 + k % 5, 4)).astype(np.float32) + y[k] for k in range(30)]
    longer = [np.concatenate([x, x[:3]]) for x in X]
    calls: list[int] = []

    def epoch(e: int) -> list[np.ndarray]:
        calls.append(e)
        return longer if e % 2 else X

    clf = SequenceClassifier(hidden_size=4, epochs=2, patience=None).fit(X, y, X_epoch=epoch)
    assert calls == [0, 1] and clf.n_steps_ > 0
    with pytest.raises(InputError, match=r"X_epoch\(0\) must hold 30 sequences, as X") as info:
        SequenceClassifier(hidden_size=4, epochs=1).fit(X, y, X, y, X_epoch=lambda e: X[:-1])
    assert "\n" not in str(info.value)


def test_bad_speed_gives_one_line_errors():
    for bad in (0.5, -0.1, True, "0.1"):
        with pytest.raises(InputError, match=r"speed must be a number in \[0, 0.5\)") as info:
            WarpedEpochs([tone(300.0)], FrontEnd(), 0.1, speed=bad)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)
    # the CLI's --speed: tests/test_speech_augment.py, with the other augmentation options


def test_train_classify_on_audio_with_speed_records_it_in_the_model(tmp_path, capsys):
    two_pitch_folders(tmp_path / "train")
    model = tmp_path / "m.safetensors"
    code = main(["train", "classify", "--train", str(tmp_path / "train"), "--epochs", "2",
                 "--hidden", "8", "--speed", "0.1", "--out", str(model)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    extra = json.loads((safetensors_metadata(model) or {})["extra"])
    assert extra["run"]["speed"] == 0.1


def test_speed_is_on_for_audio_by_default_and_off_for_text():
    assert augmentation(ClassifyConfig(), audio=True)["speed"] == AUDIO_AUGMENT["speed"] > 0
    assert augmentation(ClassifyConfig(), audio=False)["speed"] == 0
    assert augmentation(ClassifyConfig(speed=0.0), audio=True)["speed"] == 0


def test_train_classify_adds_noise_to_each_epochs_recordings_when_asked(tmp_path, capsys):
    """``--noise-snr LO,HI``: the epochs' recordings are noisy at SNRs in the range (alone,
    without VTLP or speed), and the setting is recorded in the model; off by default."""
    import rnnkit.tasks.classify as classify

    seen = []

    class Spy(WarpedEpochs):
        def __call__(self, epoch):
            seen.append((self.noise, super().__call__(epoch)))
            return seen[-1][1]

    two_pitch_folders(tmp_path / "train")
    model = tmp_path / "m.safetensors"
    base = ["train", "classify", "--train", str(tmp_path / "train"), "--epochs", "2",
            "--hidden", "8", "--vtlp", "0", "--speed", "0", "--out", str(model)]  # fmt: skip
    real = classify.WarpedEpochs
    classify.WarpedEpochs = Spy
    try:
        assert main(base + ["--noise-snr", "10,20"]) == 0, capsys.readouterr().err
        noisy = list(seen)
        extra = json.loads((safetensors_metadata(model) or {})["extra"])
        assert extra["run"]["noise_snr"] == "10,20"
        seen.clear()
        assert main(base + ["--tta-warps", "1"]) == 0, capsys.readouterr().err
    finally:
        classify.WarpedEpochs = real
    assert not seen  # without VTLP, speed or noise the plain features are used
    assert [n for n, _ in noisy] == [(10.0, 20.0)] * 2  # both epochs
    first, second = noisy[0][1][0], noisy[1][1][0]
    assert first.shape == second.shape and not np.allclose(first, second)  # fresh noise
    extra = json.loads((safetensors_metadata(model) or {})["extra"])
    assert extra["run"]["noise_snr"] is None
