"""``train classify --features``: which frames an audio classifier reads (MFCCs or log-mel
energies, each with deltas), saved with the model so that evaluate and predict featurise as
training did; MFCCs by default; an error for text."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.files import safetensors_metadata
from rnnkit.io.checkpoint import load
from rnnkit.tasks.classify import (
    AUDIO_FEATURES,
    AUDIO_FEATURES_DEFAULT,
    ClassifyConfig,
    audio_front,
    front_end,
)
from test_speech_speed import two_pitch_folders


def test_the_front_end_follows_features_mfcc_by_default_and_text_has_none():
    assert audio_front(ClassifyConfig(), audio=True) == AUDIO_FEATURES[AUDIO_FEATURES_DEFAULT]
    assert AUDIO_FEATURES_DEFAULT == "mfcc" and AUDIO_FEATURES["mfcc"].n_mfcc == 13
    logmel = audio_front(ClassifyConfig(features="logmel"), audio=True)
    assert logmel is not None and logmel.n_mfcc == 0 and logmel.size == 3 * logmel.n_mels
    assert audio_front(ClassifyConfig(), audio=False) is None
    ten = audio_front(ClassifyConfig(cepstra=10), audio=True)
    assert ten is not None and ten.n_mfcc == 10 and ten.size == 30
    for cfg, message in (
        (ClassifyConfig(cepstra=27), "--cepstra: expected at most 26"),
        (ClassifyConfig(features="logmel", cepstra=10), "--cepstra: counts MFCCs"),
    ):
        with pytest.raises(InputError, match=message):
            audio_front(cfg, audio=True)
    with pytest.raises(InputError, match="--cepstra: chooses audio features"):
        audio_front(ClassifyConfig(cepstra=10), audio=False)
    with pytest.raises(InputError, match="--features: chooses audio features") as info:
        audio_front(ClassifyConfig(features="mfcc"), audio=False)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("features", [["logmel"], ["mfcc"], ["mfcc", "--cepstra", "8"]])
def test_a_model_keeps_its_features_for_evaluate_and_predict(tmp_path, capsys, features):
    two_pitch_folders(tmp_path / "train")
    model = tmp_path / "m.safetensors"
    train = str(tmp_path / "train")
    code = main(["train", "classify", "--train", train, "--epochs", "2", "--hidden", "8",
                 "--features", *features, "--tta-warps", "3", "--out", str(model)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    front = front_end(str(model))
    n_mfcc = int(features[2]) if len(features) > 1 else AUDIO_FEATURES[features[0]].n_mfcc
    assert front == replace(AUDIO_FEATURES[features[0]], n_mfcc=n_mfcc)
    extra = json.loads((safetensors_metadata(model) or {})["extra"])
    assert extra["run"]["features"] == features[0]
    assert load(str(model)).n_inputs_ == front.size  # the network reads frames of that size
    capsys.readouterr()
    assert main(["evaluate", str(model), "--test", train, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["accuracy"] >= 0
    wav = str(tmp_path / "train" / "low" / "0.wav")
    assert main(["predict", str(model), wav]) == 0
    assert wav in capsys.readouterr().out
