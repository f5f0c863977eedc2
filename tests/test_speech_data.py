"""``rnnkit data fsdd``: a speaker's first digit strings do not depend on how many are asked for,
so the test speaker's strings stay the same when the training speakers get more."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")

from rnnkit.tasks.speech_data import FIRST_STREAM, FsddConfig, prepare  # noqa: E402


def _recordings(folder: Path) -> Path:
    """Three speakers x ten digits of short tones, FSDD-named (``{digit}_{speaker}_0.wav``)."""
    from scipy.io import wavfile

    folder.mkdir()
    t = np.arange(400) / 8000
    for s, speaker in enumerate(("ann", "bob", "cat")):
        for digit in range(10):
            tone = 0.3 * np.sin(2 * np.pi * (200 + 50 * digit + 20 * s) * t)
            wavfile.write(
                folder / f"{digit}_{speaker}_0.wav", 8000, (tone * 32767).astype(np.int16)
            )
    return folder


def _strings(out: Path) -> dict[str, tuple[str, bytes]]:
    """Each string's file name: its transcript and its samples' bytes."""
    rows = (out / "strings" / "all.csv").read_text().splitlines()[1:]
    found = {}
    for row in rows:
        path, transcript, _ = row.split(",")
        found[Path(path).name] = (transcript, Path(path).read_bytes())
    return found


def test_more_training_strings_leave_the_first_ones_and_the_test_speaker_unchanged(tmp_path):
    recordings = _recordings(tmp_path / "rec")
    few, many = tmp_path / "few", tmp_path / "many"
    common = {"recordings": str(recordings), "test_speaker": "bob"}
    prepare(FsddConfig(out=str(few), strings=3, test_strings=4, **common))
    prepare(FsddConfig(out=str(many), strings=FIRST_STREAM + 5, test_strings=4, **common))
    a, b = _strings(few), _strings(many)
    assert len(a) == 3 + 4 + 3 and len(b) == 2 * (FIRST_STREAM + 5) + 4
    for name, value in a.items():  # every string of the small run, the test speaker's too
        assert b[name] == value, name
    test = (many / "strings" / "test.csv").read_text().splitlines()[1:]
    assert [Path(r.split(",")[0]).name for r in test] == [f"bob_{n}.wav" for n in range(4)]
    # the strings beyond the first stream are new ones, not repeats of the first
    assert b[f"ann_{FIRST_STREAM}.wav"][1] != b["ann_0.wav"][1]
    assert b[f"ann_{FIRST_STREAM}.wav"][1] != b[f"cat_{FIRST_STREAM}.wav"][1]


def test_the_test_speaker_count_is_its_own(tmp_path):
    recordings = _recordings(tmp_path / "rec")
    out = tmp_path / "out"
    result = prepare(
        FsddConfig(
            recordings=str(recordings), out=str(out), strings=2, test_strings=5, test_speaker="cat"
        )
    )
    test = (out / "strings" / "test.csv").read_text().splitlines()[1:]
    train = (out / "strings" / "train.csv").read_text().splitlines()[1:]
    assert result["strings"] == 9 and len(test) == 5 and len(train) == 4


def test_level_augmentation_leaves_the_test_speaker_and_the_words_alone(tmp_path):
    recordings = _recordings(tmp_path / "rec")
    plain, quiet = tmp_path / "plain", tmp_path / "quiet"
    common = {"recordings": str(recordings), "test_speaker": "bob", "strings": 4}
    prepare(FsddConfig(out=str(plain), gain=0.0, **common))
    prepare(FsddConfig(out=str(quiet), gain=20.0, **common))
    a, b = _strings(plain), _strings(quiet)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name][0] == b[name][0]  # the same words
        if name.startswith("bob_"):
            assert a[name][1] == b[name][1]  # the test speaker's strings untouched
    from scipy.io import wavfile

    def rms(out: Path, name: str) -> float:
        return float(np.sqrt(np.mean(wavfile.read(out / "strings" / name)[1] ** 2.0)))

    ratios = [rms(quiet, f"ann_{n}.wav") / rms(plain, f"ann_{n}.wav") for n in range(4)]
    assert all(0.09 < r < 1.01 for r in ratios) and min(ratios) < 0.9
