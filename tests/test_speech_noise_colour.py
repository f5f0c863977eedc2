"""Coloured added noise (`rnnkit.audio.augment.coloured_noise`, `add_noise(beta=)`,
`WarpedEpochs(colour=)`, ``train classify --noise-color``): the spectrum falls as asked at
the asked SNR, white stays what it was, the exponents are drawn per recording and epoch, and
bad settings end in one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import welch

from rnnkit.audio import FrontEnd
from rnnkit.audio.augment import (
    WarpedEpochs,
    add_noise,
    check_noise_colour,
    coloured_noise,
)
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.files import safetensors_metadata
from rnnkit.tasks.classify import colour_of
from test_speech_speed import RATE, tone, two_pitch_folders


def slope(y: np.ndarray) -> float:
    """The log-log slope of ``y``'s power spectrum between 100 Hz and 3.5 kHz (at 8 kHz)."""
    f, p = welch(y, fs=RATE, nperseg=1024)
    band = (f >= 100) & (f <= 3500)
    return float(np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0])


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 2.0])
def test_coloured_noise_falls_as_f_to_the_minus_beta_at_unit_power(beta):
    y = coloured_noise(RATE * 8, beta, np.random.default_rng(0))
    assert np.mean(y * y) == pytest.approx(1.0, rel=0.03)
    assert slope(y) == pytest.approx(-beta, abs=0.1)


def test_add_noise_keeps_the_snr_when_coloured_and_white_stays_as_it_was():
    x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(40_000) / RATE)
    for beta in (1.0, 2.0):
        y = add_noise(x, 12.0, np.random.default_rng(1), beta)
        measured = 10 * np.log10(np.mean(x**2) / np.mean((y - x) ** 2))
        assert measured == pytest.approx(12.0, abs=0.2)
    # beta 0: exactly the white draw of before (the same generator state, the same samples)
    sigma = np.sqrt(np.mean(x**2)) * 10 ** (-12.0 / 20)
    expected = x + sigma * np.random.default_rng(2).standard_normal(len(x))
    np.testing.assert_array_equal(add_noise(x, 12.0, np.random.default_rng(2)), expected)
    np.testing.assert_array_equal(add_noise(x, 12.0, np.random.default_rng(2), 0.0), expected)


def test_warped_epochs_colour_the_noise_per_recording_and_epoch_reproducibly():
    front = FrontEnd(norm="none")
    samples = [tone(300.0, 0.4), tone(900.0, 0.3), tone(1500.0, 0.5)]
    white = WarpedEpochs(samples, front, 0.0, seed=4, noise=(10.0, 20.0))
    flat = WarpedEpochs(samples, front, 0.0, seed=4, noise=(10.0, 20.0), colour=(0.0, 0.0))
    for a, b in zip(white(0), flat(0), strict=True):
        np.testing.assert_array_equal(a, b)  # exponent 0 is the white noise, draw for draw
    brown = WarpedEpochs(samples, front, 0.0, seed=4, noise=(10.0, 20.0), colour=(2.0, 2.0))
    for a, b in zip(white(0), brown(0), strict=True):
        assert a.shape == b.shape and not np.allclose(a, b)
    mixed = WarpedEpochs(samples, front, 0.0, seed=4, noise=(10.0, 20.0), colour=(0.0, 2.0))
    first, again, later = mixed(1), mixed(1), mixed(2)
    for a, b, c in zip(first, again, later, strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)
    assert mixed.subset([2, 0]).colour == (0.0, 2.0)


def test_brown_noise_lifts_the_low_bands_against_the_high_ones_more_than_white_noise():
    """At one SNR, brown noise lifts the lowest mel bands of a high tone, against its highest
    bands, by more than white noise does (by 6 dB here): the colour is where the noise lands."""
    front = FrontEnd(norm="none", n_mfcc=0)
    x = [tone(1500.0, 1.0)]
    lifted = {}
    for name, colour in (("white", None), ("brown", (2.0, 2.0))):
        noisy = WarpedEpochs(x, front, 0.0, seed=0, noise=(10.0, 10.0), colour=colour)(0)[0]
        clean = front.features(x[0])
        gain = (noisy - clean)[:, : front.n_mels].mean(axis=0)
        lifted[name] = gain[:4].mean() - gain[-4:].mean()
    assert lifted["brown"] > lifted["white"] + 3.0


@pytest.mark.parametrize("bad", [(2.0, 1.0), (-0.5, 1.0), (0.0, 4.0), (1.0,), "0,2", (0, np.nan)])
def test_bad_colours_give_one_line_errors(bad):
    with pytest.raises(InputError, match="noise colour must be None or") as info:
        check_noise_colour(bad, "WarpedEpochs")
    assert "\n" not in str(info.value)


def test_colour_without_noise_and_malformed_text_are_refused():
    with pytest.raises(InputError, match="colour colours the added noise; give noise too"):
        WarpedEpochs([tone(300.0)], FrontEnd(), 0.0, colour=(0.0, 2.0))
    with pytest.raises(InputError, match="--noise-color: expected LO,HI: two spectral"):
        colour_of("2,x", (10.0, 20.0))
    with pytest.raises(InputError, match="give --noise-snr LO,HI too"):
        colour_of("0,2", None)
    assert colour_of(None, (10.0, 20.0)) is None
    assert colour_of("0,1.5", (10.0, 20.0)) == (0.0, 1.5)


def test_train_classify_colours_the_noise_when_asked(tmp_path, capsys):
    import rnnkit.tasks.classify as classify

    seen = []

    class Spy(WarpedEpochs):
        def __call__(self, epoch):
            seen.append(self.colour)
            return super().__call__(epoch)

    two_pitch_folders(tmp_path / "train")
    model = tmp_path / "m.safetensors"
    base = ["train", "classify", "--train", str(tmp_path / "train"), "--epochs", "2",
            "--hidden", "8", "--vtlp", "0", "--speed", "0", "--out", str(model)]  # fmt: skip
    real = classify.WarpedEpochs
    classify.WarpedEpochs = Spy
    try:
        assert main(base + ["--noise-snr", "10,20", "--noise-color", "0,2"]) == 0
    finally:
        classify.WarpedEpochs = real
    assert seen == [(0.0, 2.0)] * 2
    extra = json.loads((safetensors_metadata(model) or {})["extra"])
    assert extra["run"]["noise_color"] == "0,2" and extra["run"]["noise_snr"] == "10,20"
    for args, message in (
        (["--noise-color", "3,1"], "argument --noise-color: expected LO,HI: two spectral"),
        (["--noise-color", "0,2"], "--noise-color: colours the added noise; give --noise-snr"),
    ):
        try:
            code = main(base + ["--force"] + args)
        except SystemExit as exc:  # argparse's errors
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
        assert len([line for line in err.splitlines() if "error" in line.lower()]) == 1
