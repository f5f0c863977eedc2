"""Speech: the front end against python_speech_features and frame by frame against the whole
file, WAV reading and its errors, CTC decoding, a tiny transcriber that learns a two-tone
language to zero error and streams to the same transcript, and the audio commands."""

from __future__ import annotations

import io
import json
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from rnnkit.audio import FrontEnd, read_wav
from rnnkit.audio.wav import resample
from rnnkit.cli import main
from rnnkit.ctc_decode import ctc_beam_decode, ctc_greedy_decode
from rnnkit.errors import InputError
from rnnkit.estimators.transcriber import Transcriber
from rnnkit.estimators.transcriber_stream import LiveTranscriber
from rnnkit.metrics_text import edit_distance, error_rate

RATE = 8000


def speechlike(seconds: float = 0.9, seed: int = 0) -> np.ndarray:
    """A chirp with a vowel-like buzz and noise: every filter and every frame gets energy."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    x = 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.2 * np.sign(np.sin(2 * np.pi * 120 * t))
    return x * np.hanning(len(t)) + 0.01 * rng.standard_normal(len(t))


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE, dtype=np.int16) -> Path:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.round(samples * info.max), info.min, info.max).astype(dtype)
    else:
        data = samples.astype(dtype)
    wavfile.write(path, rate, data)
    return path


# -- the front end ---------------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [0.9, 0.31, 0.02])
def test_mfcc_and_deltas_match_python_speech_features(seconds):
    psf = pytest.importorskip("python_speech_features")  # the [test] extra installs it
    x = speechlike(seconds)
    ours = FrontEnd(norm="none").features(x).astype(np.float64)
    mfcc = psf.mfcc(x, RATE, winfunc=np.hamming, nfft=512)
    d1 = psf.delta(mfcc, 2)
    ref = np.hstack([mfcc, d1, psf.delta(d1, 2)])
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-4)


def test_log_mel_matches_python_speech_features():
    psf = pytest.importorskip("python_speech_features")
    x = speechlike()
    front = FrontEnd(n_mfcc=0, deltas=0, norm="none", n_mels=40)
    ref = np.log(psf.fbank(x, RATE, nfilt=40, nfft=512, winfunc=np.hamming)[0])
    np.testing.assert_allclose(front.features(x), ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("deltas", [0, 1, 2])
@pytest.mark.parametrize("seconds", [0.9, 0.03, 0.01])
def test_frame_by_frame_equals_the_whole_file(deltas, seconds):
    x = speechlike(seconds, seed=1)
    front = FrontEnd(norm="none", deltas=deltas)
    whole = front.features(x)
    rng = np.random.default_rng(deltas)
    stream, parts, i = front.stream(), [], 0
    while i < len(x):
        n = int(rng.integers(1, 250))
        parts.append(stream.push(x[i : i + n]))
        i += n
    parts.append(stream.flush())
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # and again after the flush: the stream starts over
    again = np.concatenate([stream.push(x), stream.flush()])
    np.testing.assert_array_equal(again, whole)


def test_utterance_normalisation_gives_zero_mean_unit_variance():
    f = FrontEnd().features(speechlike())
    np.testing.assert_allclose(f.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(f.std(axis=0), 1, atol=1e-3)


# -- WAV files -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32])
def test_wav_formats_read_to_the_same_samples(tmp_path, dtype):
    x = 0.5 * speechlike()
    if dtype == np.uint8:
        data = np.round(x * 127 + 128).astype(np.uint8)
        wavfile.write(tmp_path / "a.wav", RATE, data)
        tolerance = 1 / 100
    else:
        write_wav(tmp_path / "a.wav", x, dtype=dtype)
        tolerance = 1e-4
    np.testing.assert_allclose(read_wav(tmp_path / "a.wav"), x, atol=tolerance)


def test_24_bit_stereo_is_averaged(tmp_path):
    x = 0.5 * speechlike()
    pcm = np.round(x * (2**23 - 1)).astype(np.int32)
    stereo = np.stack([pcm, pcm // 2], axis=1)  # left and half as loud on the right
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in stereo.reshape(-1))
    with wave.open(str(tmp_path / "s.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(3)
        w.setframerate(RATE)
        w.writeframes(raw)
    np.testing.assert_allclose(read_wav(tmp_path / "s.wav"), 0.75 * x, atol=1e-5)


def test_resampling_to_the_model_rate(tmp_path):
    t = np.arange(16000) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    y = read_wav(write_wav(tmp_path / "h.wav", tone, rate=16000), rate=RATE)
    assert len(y) == 8000
    inner = slice(200, -200)
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / RATE)
    np.testing.assert_allclose(y[inner], expected[inner], atol=2e-3)
    np.testing.assert_allclose(resample(y, RATE, RATE), y)


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    silent = write_wav(tmp_path / "silent.wav", np.zeros(4000))
    buffer = io.BytesIO()  # a WAV header that declares a compressed format (code 0x55, MP3)
    buffer.write(b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little"))
    buffer.write((0x55).to_bytes(2, "little") + (1).to_bytes(2, "little"))
    buffer.write(RATE.to_bytes(4, "little") + (2 * RATE).to_bytes(4, "little"))
    buffer.write((2).to_bytes(2, "little") + (16).to_bytes(2, "little") + b"data" + bytes(4))
    mp3 = tmp_path / "mp3.wav"
    mp3.write_bytes(buffer.getvalue())
    return {
        "not WAV": (text, "not a WAV file"),
        "empty": (empty, "is empty"),
        "silence": (silent, "silence only"),
        "unsupported format": (mp3, "cannot be read"),
        "missing": (tmp_path / "nowhere.wav", "no such file"),
    }


@pytest.mark.parametrize("case", ["not WAV", "empty", "silence", "unsupported format", "missing"])
def test_bad_wav_files_give_one_line_naming_the_file(tmp_path, case):
    path, message = _bad_files(tmp_path)[case]
    with pytest.raises(InputError) as info:
        read_wav(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


# -- CTC decoding and error rates ------------------------------------------------------------
def test_beam_of_one_equals_greedy_on_confident_outputs():
    rng = np.random.default_rng(0)
    T, B, C = 40, 6, 5
    best = rng.integers(0, C, size=(T, B))
    p = np.full((T, B, C), 0.05 / (C - 1))
    np.put_along_axis(p, best[..., None], 0.95, axis=2)  # each step's likeliest class: 0.95
    lp = np.log(p)
    assert ctc_beam_decode(lp, beam=1) == ctc_greedy_decode(lp)
    assert any(len(s) > 5 for s in ctc_greedy_decode(lp))


def test_error_rates():
    assert edit_distance("kitten", "sitting") == 3
    assert error_rate(["one two three"], ["one too three four"]) == pytest.approx(2 / 3)
    assert error_rate(["ab"], ["b"], words=False) == pytest.approx(1 / 2)


# -- a tiny transcriber learns two tones -----------------------------------------------------
def two_tone(rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
    """'a' a 400 Hz tone, 'b' a 1600 Hz tone, 80-120 ms each, short silences between."""
    text = "".join(rng.choice(["a", "b"], n))
    parts = [np.zeros(int(RATE * 0.05))]
    for ch in text:
        t = np.arange(int(RATE * rng.uniform(0.08, 0.12))) / RATE
        tone = 0.5 * np.sin(2 * np.pi * (400 if ch == "a" else 1600) * t)
        parts += [tone, np.zeros(int(RATE * rng.uniform(0.04, 0.08)))]
    x = np.concatenate(parts)
    return x + 0.01 * rng.standard_normal(len(x)), text


@pytest.fixture(scope="module")
def two_tone_model():
    rng = np.random.default_rng(0)
    data = [two_tone(rng, int(rng.integers(1, 5))) for _ in range(80)]
    front = FrontEnd(norm="none")
    X = [front.features(x) for x, _ in data]
    y = [text for _, text in data]
    model = Transcriber(
        hidden_size=32, num_layers=1, stack=1, epochs=40, batch_size=8, lr=1e-2, patience=None
    ).fit(X[:60], y[:60], X[60:], y[60:])
    return model, front, data[60:], X[60:], y[60:]


def test_a_tiny_model_learns_the_two_tone_language_to_zero_error(two_tone_model):
    model, _, _, X, y = two_tone_model
    assert model.score(X, y) == {"cer": 0.0, "wer": 0.0}
    assert model.predict(X, beam=4) == y


@pytest.mark.parametrize("paced", [True, False])
def test_streaming_decoder_equals_offline_greedy(two_tone_model, paced):
    model, front, data, X, _ = two_tone_model
    live = LiveTranscriber(model, front, paced=paced)
    assert all(s.paced == paced for streams in live.member_streams for s in streams)
    offline = model.predict(X)
    rng = np.random.default_rng(3)
    for (x, _), expected in zip(data, offline, strict=True):
        got, i = [], 0
        while i < len(x):
            n = int(rng.integers(1, 400))
            got += live.push(x[i : i + n])
            i += n
        got += live.flush()
        assert "".join(c for c, _ in got) == expected
        times = [t for _, t in got]
        assert times == sorted(times) and all(0 < t <= len(x) / RATE + 0.05 for t in times)


# -- the commands ----------------------------------------------------------------------------
def _run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_classify_and_transcribe_audio_end_to_end(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(1)
    rows = ["path,label"]
    for label in ("a", "b"):
        (tmp_path / "byfolder" / label).mkdir(parents=True)
        for k in range(12):
            x, _ = two_tone(rng, 1) if label == "a" else two_tone(rng, 3)
            write_wav(tmp_path / "byfolder" / label / f"{k}.wav", x)
            rows.append(f"byfolder/{label}/{k}.wav,{label}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    model = str(tmp_path / "c.safetensors")
    folder = str(tmp_path / "byfolder")
    code, _, err = _run(["train", "classify", "--train", folder, "--epochs", "2", "--hidden",
                         "8", "--out", model], capsys)  # fmt: skip
    assert code == 0, err
    code, out, err = _run(["evaluate", model, "--test", str(tmp_path / "m.csv"), "--json"], capsys)
    assert code == 0, err
    assert '"accuracy"' in out.splitlines()[-1]
    wav = str(tmp_path / "byfolder" / "a" / "0.wav")
    code, out, err = _run(["predict", model, wav], capsys)
    assert code == 0 and out.startswith(wav + "\t"), err

    lines = ["path,transcript"]
    for k in range(16):
        x, text = two_tone(rng, 2)
        write_wav(tmp_path / f"u{k}.wav", x)
        lines.append(f"u{k}.wav,{text}")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    tmodel = str(tmp_path / "t.safetensors")
    code, _, err = _run(["train", "transcribe", "--train", str(tmp_path / "t.csv"),
                         "--epochs", "1", "--hidden", "8", "--layers", "1",
                         "--out", tmodel], capsys)  # fmt: skip
    assert code == 0, err
    code, out, err = _run(["transcribe", tmodel, str(tmp_path / "u0.wav"), "--beam", "2",
                           "--test", str(tmp_path / "t.csv"), "--json"], capsys)  # fmt: skip
    assert code == 0, err
    assert out.startswith(str(tmp_path / "u0.wav") + "\t") and '"wer"' in out.splitlines()[-1]
    code, out, err = _run(["stream", tmodel, "--audio", str(tmp_path / "u0.wav"), "--json"], capsys)
    assert code == 0, err
    report = json.loads(out.splitlines()[-1])
    assert report["frames"] > 10 and report["hop_ms"] == 10.0 and "per frame" in err
    raw = (np.round(two_tone(rng, 2)[0] * 32767)).astype("<i2").tobytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    code, out, err = _run(["stream", tmodel, "--audio", "-", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["frames"] == len(raw) // 2 // 80


def test_manifest_row_to_a_missing_file_names_the_line(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("path,label\nthere.wav,a\nnowhere.wav,b\n")
    write_wav(tmp_path / "there.wav", speechlike())
    code, _, err = _run(["train", "classify", "--train", str(tmp_path / "m.csv"),
                         "--out", str(tmp_path / "c.safetensors")], capsys)  # fmt: skip
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "line 3" in err and "nowhere.wav" in err


def test_a_bad_wav_in_a_folder_names_the_file(tmp_path, capsys):
    data = tmp_path / "data"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        write_wav(data / label / "ok.wav", speechlike())
    write_wav(data / "b" / "quiet.wav", np.zeros(3000))
    code, _, err = _run(["train", "classify", "--train", str(data),
                         "--out", str(tmp_path / "c.safetensors")], capsys)  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "quiet.wav" in err and "silence only" in err


def test_lexicon_snaps_words_to_the_nearest_training_word():
    model = Transcriber()
    model.words_ = ["eight", "seven", "three", "zero"]
    assert [model.nearest_word(w) for w in ("thre", "seve", "zro", "eight")] == [
        "three",
        "seven",
        "zero",
        "eight",
    ]
