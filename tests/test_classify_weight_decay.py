"""`rnnkit train classify --weight-decay W`: AdamW's decoupled weight decay reaches the
classifier (saved with the model), shrinks the weights it is given, and a negative value is a
one-line error."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.estimators.classifier import SequenceClassifier
from rnnkit.io.checkpoint import load
from rnnkit.tasks.classify import ClassifyConfig, estimator
from test_speech_classify_defaults import write_tones


def test_the_option_reaches_the_estimator_and_the_checkpoint(tmp_path, capsys):
    assert estimator(ClassifyConfig()).weight_decay == 0.0
    assert estimator(ClassifyConfig(weight_decay=0.25), audio=True).weight_decay == 0.25
    write_tones(tmp_path / "train")
    model = tmp_path / "m.safetensors"
    code = main(["train", "classify", "--train", str(tmp_path / "train"), "--epochs", "1",
                 "--hidden", "8", "--weight-decay", "0.25", "--out", str(model)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert load(str(model)).weight_decay == 0.25


def test_decay_shrinks_the_weights():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    X = [(rng.standard_normal((8, 3)) + k).astype(np.float32) for k in y]
    norms = []
    for decay in (0.0, 5.0):
        clf = SequenceClassifier(cell="gru", hidden_size=6, epochs=4, lr=0.01, patience=None,
                                 weight_decay=decay, dropout=0.0, seed=0)  # fmt: skip
        clf.fit(X, y.tolist())
        norms.append(sum(float(np.sum(v**2)) for v in clf.model_[0].params.values()))
    assert norms[1] < 0.9 * norms[0]


def test_a_negative_decay_is_a_one_line_error(tmp_path, capsys):
    write_tones(tmp_path / "train")
    with pytest.raises(SystemExit):
        main(["train", "classify", "--train", str(tmp_path / "train"), "--weight-decay", "-1"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--weight-decay" in err and "-1" in err
