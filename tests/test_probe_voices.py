"""benchmarks/probe_voices.py: each speaker's mean clip length and pitch, from files named
``label_speaker_index.wav``."""

from __future__ import annotations

import numpy as np
import pytest

from by_path import benchmark

RATE = 8000


def _probe():
    return benchmark("probe_voices")


def _voiced(hz: float, seconds: float) -> np.ndarray:
    """A buzz at ``hz`` (a few harmonics, as a voice has), in int16."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * k * hz * t) / k for k in range(1, 5))
    return (x / np.abs(x).max() * 20000).astype(np.int16)


def test_lengths_and_pitches_per_speaker(tmp_path, capsys):
    from scipy.io import wavfile

    for index, seconds in enumerate([0.3, 0.5]):
        wavfile.write(tmp_path / f"1_low_{index}.wav", RATE, _voiced(110.0, seconds))
        wavfile.write(tmp_path / f"2_high_{index}.wav", RATE, _voiced(220.0, seconds + 0.2))
    _probe().main([str(tmp_path)])
    rows = {line.split()[1]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["low"][2] == "2" and rows["high"][2] == "2"
    assert float(rows["low"][3]) == pytest.approx(0.4, abs=0.01)
    assert float(rows["high"][3]) == pytest.approx(0.6, abs=0.01)
    assert float(rows["low"][5]) == pytest.approx(110, rel=0.03)
    assert float(rows["high"][5]) == pytest.approx(220, rel=0.03)


def test_bad_names_files_and_directories_are_one_line_errors(tmp_path):
    from scipy.io import wavfile

    wavfile.write(tmp_path / "one.wav", RATE, _voiced(110.0, 0.3))
    with pytest.raises(SystemExit, match=r"one\.wav: expected a name label_speaker_index\.wav"):
        _probe().main([str(tmp_path)])
    (tmp_path / "one.wav").unlink()
    (tmp_path / "1_bad_0.wav").write_text("not audio")
    with pytest.raises(SystemExit, match=r"1_bad_0\.wav") as error:
        _probe().main([str(tmp_path)])
    assert "\n" not in str(error.value)
    with pytest.raises(SystemExit, match="not a directory"):
        _probe().main([str(tmp_path / "missing")])
