"""Reverberation as augmentation (``train classify --reverb LO,HI``, `WarpedEpochs(reverb=)`):
the synthetic room's impulse response decays by 60 dB in the drawn reverberation time at the
drawn direct-to-reverberant ratio; a reverberated recording keeps its length and power; the
rooms are fresh every epoch and reproducible; bad ranges are one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.audio import FrontEnd
from rnnkit.audio.augment import WarpedEpochs, reverberate, room_response
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.files import safetensors_metadata
from test_speech_speed import two_pitch_folders

RATE = 8000


def schroeder_rt60(h: np.ndarray, rate: int) -> float:
    """The reverberation time measured from ``h``'s tail: Schroeder's backward-integrated
    energy, its -5 to -25 dB slope extrapolated to -60 dB (T20)."""
    energy = np.cumsum((h[1:] ** 2)[::-1])[::-1]
    db = 10 * np.log10(energy / energy[0])
    t = np.arange(len(db)) / rate
    fit = (db <= -5) & (db >= -25)
    slope = np.polyfit(t[fit], db[fit], 1)[0]
    return -60.0 / slope


@pytest.mark.parametrize("rt60", [0.1, 0.3, 0.8])
def test_the_room_decays_60_db_in_rt60(rt60):
    h = room_response(rt60, 5.0, RATE, np.random.default_rng(0))
    assert h[0] == 1.0 and len(h) == round(rt60 * RATE)
    assert 10 * np.log10(1.0 / np.sum(h[1:] ** 2)) == pytest.approx(5.0)  # the DRR
    assert schroeder_rt60(h, RATE) == pytest.approx(rt60, rel=0.15)


def test_reverberation_keeps_length_and_power_and_smears_in_time():
    rng = np.random.default_rng(1)
    x = np.zeros(4000)
    x[1000:1400] = np.sin(2 * np.pi * 440 * np.arange(400) / RATE)  # a 50 ms burst
    y = reverberate(x, room_response(0.4, 0.0, RATE, rng))
    assert y.shape == x.shape
    assert np.mean(y * y) == pytest.approx(np.mean(x * x))
    assert np.abs(y[:1000]).max() < 1e-9  # causal: nothing before the sound (FFT rounding)
    assert np.sqrt(np.mean(y[1600:2400] ** 2)) > 0.01  # the tail rings on after it
    assert not np.any(reverberate(np.zeros(50), room_response(0.2, 0.0, RATE, rng)))


def test_the_epochs_rooms_are_fresh_and_reproducible():
    rng = np.random.default_rng(2)
    samples = [rng.standard_normal(int(RATE * 0.3)) * 0.1 for _ in range(3)]
    front = FrontEnd()
    rooms = WarpedEpochs(samples, front, 0.0, seed=4, reverb=(0.2, 0.6))
    dry = WarpedEpochs(samples, front, 0.0, seed=4, noise=(30, 30))
    a, b = rooms(0), rooms(1)
    assert [x.shape for x in a] == [x.shape for x in dry(0)]
    assert not np.allclose(a[0], b[0])
    np.testing.assert_array_equal(
        a[0], WarpedEpochs(samples, front, 0.0, 4, reverb=(0.2, 0.6))(0)[0]
    )
    assert rooms.subset([1]).reverb == (0.2, 0.6)
    with pytest.raises(InputError, match="reverb"):
        WarpedEpochs(samples, front, 0.0, reverb=(0.0, 0.5))


def test_train_classify_reverb_is_recorded_and_checked(tmp_path, capsys):
    two_pitch_folders(tmp_path / "train")
    model = tmp_path / "m.safetensors"
    base = ["train", "classify", "--train", str(tmp_path / "train"), "--epochs", "1",
            "--hidden", "8", "--out", str(model)]  # fmt: skip
    assert main(base + ["--reverb", "0.1,0.4"]) == 0, capsys.readouterr().err
    extra = json.loads((safetensors_metadata(model) or {})["extra"])
    assert extra["run"]["reverb"] == "0.1,0.4"
    for bad in ("0,0.4", "0.5,0.1", "3,4", "x"):
        with pytest.raises(SystemExit):
            main(base + ["--reverb", bad, "--force"])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "--reverb" in err and "reverberation times" in err


def test_reverb_on_text_is_an_error(tmp_path, capsys):
    data = tmp_path / "t.csv"
    data.write_text("text,label\n" + "".join(f"good {i},pos\nbad {i},neg\n" for i in range(10)))
    code = main(["train", "classify", "--train", str(data), "--reverb", "0.1,0.3",
                 "--epochs", "1", "--out", str(tmp_path / "m.safetensors")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code != 0 and "--reverb" in err and "text" in err
