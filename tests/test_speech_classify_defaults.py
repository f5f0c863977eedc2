"""`rnnkit train classify` picks its network by what --train holds: the audio defaults
(bidirectional GRU 256, max pooling) for .wav files, the text defaults (LSTM 64, mean pooling)
for text; options given on the command line win over both."""

from __future__ import annotations

import numpy as np
from scipy.io import wavfile

from rnnkit.cli import main
from rnnkit.io.checkpoint import load
from rnnkit.tasks.classify import AUDIO_MODEL, TEXT_MODEL, ClassifyConfig, estimator

RATE = 8000


def test_the_network_defaults_depend_on_the_input():
    audio = estimator(ClassifyConfig(), audio=True)
    text = estimator(ClassifyConfig(), audio=False)
    assert (audio.cell, audio.hidden_size, audio.pooling) == ("gru", 256, "max")
    assert (text.cell, text.hidden_size, text.pooling) == ("lstm", 64, "mean")
    assert AUDIO_MODEL != TEXT_MODEL
    given = ClassifyConfig(cell="lstm", hidden=16, pooling="mean")
    for audio_input in (True, False):
        clf = estimator(given, audio=audio_input)
        assert (clf.cell, clf.hidden_size, clf.pooling) == ("lstm", 16, "mean")


def test_help_states_both_defaults(capsys):
    try:
        main(["train", "classify", "--help"])
    except SystemExit:
        pass
    text = " ".join(capsys.readouterr().out.split())
    assert "lstm for text, gru for audio" in text
    assert "64 for text, 256 for audio" in text
    assert "mean for text, max for audio" in text


def write_tones(folder):
    """Two labels of short noisy tones, six .wav files each."""
    rng = np.random.default_rng(0)
    for label, pitch in (("low", 300.0), ("high", 1500.0)):
        (folder / label).mkdir(parents=True)
        for k in range(6):
            t = np.arange(int(RATE * rng.uniform(0.15, 0.25))) / RATE
            x = 0.4 * np.sin(2 * np.pi * pitch * t) + 0.01 * rng.standard_normal(len(t))
            wavfile.write(folder / label / f"{k}.wav", RATE, (x * 32767).astype("<i2"))


def test_training_on_wav_folders_without_flags_saves_the_audio_network(tmp_path, capsys):
    write_tones(tmp_path / "train")
    model = tmp_path / "m.safetensors"
    code = main(["train", "classify", "--train", str(tmp_path / "train"), "--epochs", "1",
                 "--out", str(model)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    clf = load(str(model))
    assert (clf.cell, clf.hidden_size, clf.pooling) == ("gru", 256, "max")
    assert clf.time_masks == 2 and clf.feature_masks == 2  # and the augmentation's defaults


def test_a_model_keeps_the_hidden_size_it_was_trained_with(tmp_path, capsys):
    """The default applies when training only: a checkpoint of another size (as the GRU 128 of
    the audio default before 2026-12-03) loads and evaluates with its own."""
    write_tones(tmp_path / "train")
    model = tmp_path / "m.safetensors"
    code = main(["train", "classify", "--train", str(tmp_path / "train"), "--epochs", "1",
                 "--hidden", "8", "--out", str(model)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert load(str(model)).hidden_size == 8
    capsys.readouterr()
    code = main(["evaluate", str(model), "--test", str(tmp_path / "train")])
    assert code == 0, capsys.readouterr().err
