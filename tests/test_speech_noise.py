"""Speed perturbation and added noise for the transcriber (``train transcribe --speed``,
``--noise-snr``; `rnnkit.audio.augment.add_noise`, `WarpedEpochs(noise=)`): deterministic per
seed and epoch, they change the features, the lengths follow the speed alone, the transcripts
stay; a fixed level for one speaker in ``data fsdd`` (`prepare(levels=)`); one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.io import wavfile

from rnnkit.audio import FrontEnd
from rnnkit.audio.augment import WarpedEpochs, add_noise, check_noise_snr
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.estimators.transcriber import Transcriber
from rnnkit.files import safetensors_metadata
from rnnkit.tasks.speech_data import FsddConfig, prepare
from rnnkit.tasks.transcribe import TranscribeConfig, noise_of, training_epochs
from test_speech_data import _recordings, _strings

RATE = 8000


def words(rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
    """'lo' a 400 Hz tone, 'hi' a 1600 Hz tone, 80-120 ms each, short silences between."""
    said = rng.choice(["lo", "hi"], n).tolist()
    parts = [np.zeros(int(RATE * 0.05))]
    for w in said:
        t = np.arange(int(RATE * rng.uniform(0.08, 0.12))) / RATE
        parts += [0.5 * np.sin(2 * np.pi * (400 if w == "lo" else 1600) * t)]
        parts += [np.zeros(int(RATE * rng.uniform(0.04, 0.08)))]
    x = np.concatenate(parts)
    return x + 0.002 * rng.standard_normal(len(x)), " ".join(said)


def test_add_noise_hits_the_asked_snr_and_leaves_the_input_alone():
    rng = np.random.default_rng(0)
    x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(80_000) / RATE)
    for snr in (0.0, 10.0, 25.0):
        y = add_noise(x, snr, rng)
        measured = 10 * np.log10(np.mean(x**2) / np.mean((y - x) ** 2))
        assert measured == pytest.approx(snr, abs=0.1)
    assert np.array_equal(add_noise(np.zeros(100), 5.0, rng), np.zeros(100))  # silence stays


def test_noise_is_fresh_per_epoch_reproducible_per_seed_and_changes_only_the_features():
    front = FrontEnd(norm="none")
    rng = np.random.default_rng(1)
    samples = [words(rng, 3)[0] for _ in range(3)]
    plain = WarpedEpochs(samples, front, 0.0, seed=2)
    noisy = WarpedEpochs(samples, front, 0.0, seed=2, noise=(5.0, 10.0))
    a, b = noisy(0), noisy(1)
    for p, x, y in zip(plain(0), a, b, strict=True):
        assert p.shape == x.shape == y.shape  # noise keeps the lengths
        assert not np.allclose(p, x) and not np.allclose(x, y)
    again = WarpedEpochs(samples, front, 0.0, seed=2, noise=(5.0, 10.0))(0)
    for x, y in zip(a, again, strict=True):
        np.testing.assert_array_equal(x, y)  # the same seed and epoch: the same noise
    other = WarpedEpochs(samples, front, 0.0, seed=3, noise=(5.0, 10.0))(0)
    assert not np.allclose(a[0], other[0])
    # the VTLP and speed factors do not move when noise is added
    both = WarpedEpochs(samples, front, 0.1, seed=2, speed=0.1, noise=(5.0, 10.0))
    bare = WarpedEpochs(samples, front, 0.1, seed=2, speed=0.1)
    np.testing.assert_array_equal(both.factors(4), bare.factors(4))
    np.testing.assert_array_equal(both.speeds(4), bare.speeds(4))
    assert [len(f) for f in both(4)] == [len(f) for f in bare(4)]
    assert both.subset([0, 2]).noise == (5.0, 10.0)


def test_train_transcribe_builds_speed_and_noise_into_the_epochs(tmp_path):
    rng = np.random.default_rng(0)
    x, _ = words(rng, 4)
    path = tmp_path / "a.wav"
    wavfile.write(path, RATE, (x * 32767).astype(np.int16))
    front = FrontEnd(norm="none")
    X = [front.features(x)]
    cfg = TranscribeConfig(speed=0.1, noise_snr="5,20", level=0.0)
    made = training_epochs(X, [str(path)], front, cfg)
    assert isinstance(made, WarpedEpochs)
    assert made.speed == 0.1 and made.noise == (5.0, 20.0)
    assert len({len(made(e)[0]) for e in range(6)}) > 1  # speed changes the lengths
    np.testing.assert_array_equal(made(3)[0], made(3)[0])
    alone = training_epochs(X, [str(path)], front, TranscribeConfig(vtlp=0.0, speed=0.1, level=0))
    assert isinstance(alone, WarpedEpochs) and alone.vtlp == 0
    assert TranscribeConfig().speed == 0 and TranscribeConfig().noise_snr is None


def test_the_transcriber_trains_on_speed_perturbed_noisy_epochs_of_other_lengths():
    rng = np.random.default_rng(0)
    front = FrontEnd(norm="none")
    pairs = [words(rng, int(rng.integers(1, 4))) for _ in range(24)]
    samples, texts = [p[0] for p in pairs], [p[1] for p in pairs]
    X = [front.features(s) for s in samples]
    epochs = WarpedEpochs(samples, front, 0.0, seed=0, speed=0.1, noise=(10.0, 30.0))
    lengths = {tuple(len(f) for f in epochs(e)) for e in range(3)}
    assert len(lengths) > 1  # the epochs' lengths differ from each other (and from X's)
    model = Transcriber(hidden_size=8, epochs=2, patience=None, seed=0)
    model.fit(X, texts, X_epoch=epochs)
    assert model.n_steps_ > 0
    assert len(model.predict(X[:3])) == 3


def test_a_fixed_level_for_one_speaker_scales_its_strings_alone(tmp_path):
    recordings = _recordings(tmp_path / "rec")
    plain, quiet = tmp_path / "plain", tmp_path / "quiet"
    common = {"recordings": str(recordings), "test_speaker": "bob", "strings": 3, "gain": 0.0}
    prepare(FsddConfig(out=str(plain), **common))
    prepare(FsddConfig(out=str(quiet), **common), levels={"cat": -6.0})
    a, b = _strings(plain), _strings(quiet)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name][0] == b[name][0]  # the same words
        if not name.startswith("cat_"):
            assert a[name][1] == b[name][1]  # the other speakers' strings untouched

    def samples(out, name: str) -> np.ndarray:
        return wavfile.read(out / "strings" / name)[1].astype(np.float64) / 32767

    g = 10 ** (-6 / 20)
    for n in range(3):
        # x = s + noise, y = g s + noise: the same clips, gaps and noise draws, the speech
        # alone 6 dB quieter, so (y - g x) / (1 - g) is the noise, at data fsdd's level
        x, y = samples(plain, f"cat_{n}.wav"), samples(quiet, f"cat_{n}.wav")
        assert len(x) == len(y)
        noise = (y - g * x) / (1 - g)
        assert np.std(noise) == pytest.approx(FsddConfig().noise, rel=0.1)
        assert np.std(y - noise) == pytest.approx(g * np.std(x - noise), rel=0.02)


@pytest.mark.parametrize("bad", [(10.0, 5.0), (1.0,), "5,10", (1.0, float("nan")), (True, 3)])
def test_bad_noise_snr_gives_one_line_errors(bad):
    with pytest.raises(InputError, match="noise_snr must be None or") as info:
        check_noise_snr(bad, "WarpedEpochs")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=r"--noise-snr: expected LO,HI"):
        noise_of("30,5")


def word_manifest(folder, seed: int, n: int) -> None:
    """``folder/m.csv``: ``n`` recordings of two words each (`words`), as a transcription
    manifest."""
    rng = np.random.default_rng(seed)
    rows = ["path,transcript"]
    for k in range(n):
        x, text = words(rng, 2)
        wavfile.write(folder / f"{k}.wav", RATE, (x * 32767).astype(np.int16))
        rows.append(f"{k}.wav,{text}")
    (folder / "m.csv").write_text("\n".join(rows) + "\n")


def test_train_transcribe_records_speed_and_noise_in_the_model(tmp_path, capsys):
    word_manifest(tmp_path, 0, 8)
    model = tmp_path / "t.safetensors"
    code = main(["train", "transcribe", "--train", str(tmp_path / "m.csv"), "--epochs", "1",
                 "--hidden", "8", "--speed", "0.1", "--noise-snr", "5,30",
                 "--out", str(model)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    run = json.loads((safetensors_metadata(model) or {})["extra"])["run"]
    assert run["speed"] == 0.1 and run["noise_snr"] == "5,30"


def test_train_transcribe_norm_utterance_is_saved_and_refuses_to_stream(tmp_path, capsys):
    from rnnkit.io.checkpoint import load

    word_manifest(tmp_path, 1, 6)
    model = tmp_path / "t.safetensors"
    code = main(["train", "transcribe", "--train", str(tmp_path / "m.csv"), "--epochs", "1",
                 "--hidden", "8", "--norm", "utterance", "--out", str(model)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert load(model).norm == "utterance"
    code = main(["stream", str(model), "--audio", str(tmp_path / "0.wav")])
    err = capsys.readouterr().err
    assert code == 2 and "needs the whole recording" in err and len(err.strip().splitlines()) == 1
