"""``rnnkit data voices``: synthetic speakers of the ten digits, as FSDD-named 8 kHz WAV files,
the same for the same seed; a missing synthesiser is a one-line error; ``data fsdd
--extra-recordings`` puts them into the classification training folders alone."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.tasks.speech_data import NAME, FsddConfig, prepare, scan
from rnnkit.tasks.speech_voices import VoicesConfig, generate, letters, trim


def _read(path: Path) -> tuple[int, np.ndarray]:
    from scipy.io import wavfile

    rate, pcm = wavfile.read(path)
    return rate, pcm


def test_espeak_words_are_readable_8khz_clips_of_a_spoken_length(tmp_path):
    summary = generate(
        VoicesConfig(out=str(tmp_path), voices=2, takes=1, engines="espeak-ng", seed=3)
    )
    files = sorted(tmp_path.glob("*.wav"))
    assert summary["files"] == len(files) == 20
    for file in files:
        rate, pcm = _read(file)
        assert rate == 8000 and pcm.dtype == np.int16 and pcm.ndim == 1
        assert 0.15 < len(pcm) / rate < 1.5, file.name  # a word, trimmed: FSDD's are 0.2-2 s
        assert np.abs(pcm).max() > 50  # not silence
    # the speech is in the middle: the trimmed ends (pads) are quieter than the whole
    rate, pcm = _read(files[0])
    x = pcm.astype(float)
    assert np.sqrt(np.mean(x[:40] ** 2)) < np.sqrt(np.mean(x**2))


def test_names_parse_as_fsdd_speakers_and_the_seed_fixes_the_files(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 0), (b, 0), (c, 1)):
        generate(VoicesConfig(out=str(out), voices=2, takes=1, engines="espeak-ng", seed=seed))
    found = scan(str(a))
    assert len(found) == 20 and {s for _, _, s, _ in found} == {"espaa", "espab"}
    assert sorted(d for _, d, s, _ in found if s == "espaa") == list(range(10))
    assert all(NAME.match(p.name) for p, _, _, _ in found)
    for file in a.glob("*.wav"):  # the same seed: the same bytes
        assert file.read_bytes() == (b / file.name).read_bytes(), file.name
    assert any(f.read_bytes() != (c / f.name).read_bytes() for f in a.glob("*.wav"))


def test_flite_voices_too(tmp_path):
    generate(VoicesConfig(out=str(tmp_path), voices=1, takes=1, engines="flite"))
    found = scan(str(tmp_path))
    assert len(found) == 10 and found[0][2] == "fliaa"
    rate, pcm = _read(found[0][0])
    assert rate == 8000 and 0.15 < len(pcm) / rate < 1.5


def test_a_missing_synthesiser_is_a_one_line_error_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    status = main(["data", "voices", "--engines", "flite", "--out", str(tmp_path / "v")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert "flite is not installed" in err[0] and "apt-get install espeak-ng flite" in err[0]
    assert not (tmp_path / "v").exists()


def test_voice_names_are_letters_and_distinct():
    names = [letters(k) for k in range(800)]
    assert names[:3] == ["aa", "ab", "ac"] and letters(26) == "ba"
    assert len(set(names)) == 800 and all(n.isalpha() for n in names)


def test_trim_keeps_the_sound_and_short_pads():
    x = np.zeros(8000)
    x[3040:5040] = np.sin(np.arange(2000) / 3)  # whole 10 ms frames
    y = trim(x, (80, 160))
    assert len(y) == 2000 + 80 + 160
    assert np.array_equal(y[80 : 80 + 2000], x[3040:5040])


def test_extra_recordings_go_into_classify_train_alone(tmp_path):
    from scipy.io import wavfile

    rec = tmp_path / "rec"
    rec.mkdir()
    tone = (3000 * np.sin(np.arange(2400) / 5)).astype(np.int16)
    for speaker in ("ann", "bob"):
        for digit in range(10):
            for index in (0, 7):
                wavfile.write(rec / f"{digit}_{speaker}_{index}.wav", 8000, tone)
    voices = tmp_path / "voices"
    generate(VoicesConfig(out=str(voices), voices=1, takes=1, engines="espeak-ng"))
    out = tmp_path / "out"
    cfg = FsddConfig(
        recordings=str(rec), out=str(out), test_speaker="bob", extra_recordings=str(voices)
    )
    result = prepare(cfg)
    assert result["extra_speakers"] == ["espaa"]
    assert result["classify_train"] == 2 * 10 + 10 and result["classify_test"] == 2 * 10
    assert (out / "classify" / "train" / "3" / "3_espaa_0.wav").exists()
    assert not any((out / "classify" / "test").rglob("*espaa*"))
    assert "espaa" not in (out / "strings" / "all.csv").read_text()
    clash = FsddConfig(
        recordings=str(rec), out=str(out), test_speaker="bob", extra_recordings=str(rec)
    )
    with pytest.raises(Exception, match="also one of --recordings' speakers"):
        prepare(clash)
    assert os.path.isdir(out)


def test_extra_strings_are_training_strings_and_leave_the_others_as_they_were(tmp_path):
    from scipy.io import wavfile

    from rnnkit.errors import InputError

    rec, more = tmp_path / "rec", tmp_path / "more"
    rec.mkdir()
    more.mkdir()
    rng = np.random.default_rng(0)
    for folder, speakers in ((rec, ("ann", "bob")), (more, ("zed",))):
        for speaker in speakers:
            for digit in range(10):
                x = 3000 * np.sin(np.arange(2400) * (digit + 1) / 40) + rng.normal(0, 50, 2400)
                wavfile.write(folder / f"{digit}_{speaker}_0.wav", 8000, x.astype(np.int16))
    plain, extra = tmp_path / "plain", tmp_path / "extra"
    common = {"recordings": str(rec), "test_speaker": "bob", "strings": 4, "test_strings": 3}
    prepare(FsddConfig(out=str(plain), **common))
    prepare(FsddConfig(out=str(extra), extra_recordings=str(more), extra_strings=5, **common))
    train = (extra / "strings" / "train.csv").read_text().splitlines()
    assert sum(line.endswith(",zed") for line in train) == 5
    assert (extra / "strings" / "test.csv").read_text().count(",zed") == 0
    for name in ("ann_0.wav", "ann_3.wav", "bob_0.wav", "bob_2.wav"):  # the same files
        assert (plain / "strings" / name).read_bytes() == (extra / "strings" / name).read_bytes()
    rows = [line.split(",") for line in train[1:] if line.endswith(",zed")]
    assert all(Path(p).is_file() and len(t.split()) >= 2 for p, t, _ in rows)
    with pytest.raises(InputError, match="--extra-strings: expected --extra-recordings"):
        prepare(FsddConfig(out=str(tmp_path / "x"), extra_strings=2, **common))


@pytest.mark.parametrize("engine", ["espeak-ng", "flite"])
def test_tempo_speeds_the_same_voices_up_and_leaves_the_rest_as_drawn(tmp_path, engine):
    def run(tempo: float, out: Path) -> dict:
        cfg = VoicesConfig(out=str(out), voices=2, takes=2, engines=engine, seed=5, tempo=tempo)
        return generate(cfg)

    plain, fast = run(1.0, tmp_path / "plain"), run(1.4, tmp_path / "fast")
    assert fast["tempo"] == 1.4 and plain["tempo"] == 1.0
    assert fast["seconds_median"] < 0.85 * plain["seconds_median"]  # shorter clips
    rows = [list(csv.DictReader((tmp_path / d / "voices.csv").open())) for d in ("plain", "fast")]
    for a, b in zip(*rows, strict=True):  # the same voices; only the rate differs
        rate = "speed" if engine == "espeak-ng" else "stretch"
        for key in a:
            if key != rate:
                assert a[key] == b[key], key
        ratio = float(b[rate]) / float(a[rate])
        assert ratio == pytest.approx(1.4 if rate == "speed" else 1 / 1.4, rel=2e-3)


def test_bad_tempo_is_a_one_line_error(tmp_path, capsys):
    for value in ("3", "0", "fast"):
        with pytest.raises(SystemExit) as info:
            main(["data", "voices", "--out", str(tmp_path), "--tempo", value])
        assert info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "argument --tempo: expected a factor in [0.5, 2]" in err, err
