"""Resuming an estimator's fit: exact continuation, and the checks that it is the same run."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rnnkit
import rnnkit.estimators.fitting as fitting
from rnnkit.cli import main
from rnnkit.errors import CheckpointError, InputError, RnnkitWarning
from test_classify import examples, write_rows

SMALL = dict(hidden_size=8, embedding_dim=8, dropout=0.3, lr=1e-2, patience=None, epochs=4)


def texts(n=96, seed=0):
    rows = examples(n, seed)
    return [r[0] for r in rows], [r[1] for r in rows]


def interrupt_at(monkeypatch, step):
    """Make the classifier's Trainer stop itself after ``step`` steps, as SIGINT would."""

    class Stopping(fitting.Trainer):
        def run(self):
            hook = self.on_step

            def stop(t):
                hook(t)
                if t.step == step:
                    t.request_stop()

            self.on_step = stop
            return super().run()

    monkeypatch.setattr(fitting, "Trainer", Stopping)


def weights(clf):
    return {k: v.copy() for k, v in clf.model_.state_dict().items()}


def test_interrupted_then_resumed_fit_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    X, y = texts()
    whole = rnnkit.SequenceClassifier(**SMALL).fit(X, y, out=tmp_path / "a.safetensors")
    with monkeypatch.context() as m:
        interrupt_at(m, 7)
        cut = rnnkit.SequenceClassifier(**SMALL).fit(X, y, out=tmp_path / "b.safetensors")
    assert cut.stopped_ == "interrupted" and cut.n_steps_ == 7
    assert whole.throughput_ > 0 and np.isfinite(whole.throughput_)  # sequences per second
    assert cut.n_steps_ < whole.n_steps_
    resumed = rnnkit.SequenceClassifier(**SMALL).fit(
        X, y, out=tmp_path / "b.safetensors", resume=True
    )
    assert resumed.n_steps_ == whole.n_steps_
    assert resumed.best_val_loss_ == pytest.approx(whole.best_val_loss_, rel=1e-6)
    a, b = weights(whole), weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_resume_refuses_another_run(tmp_path):
    X, y = texts()
    out = tmp_path / "m.safetensors"
    rnnkit.SequenceClassifier(**SMALL).fit(X, y, out=out)
    with pytest.raises(CheckpointError, match="hidden_size=8.*hidden_size=16.*cannot change"):
        rnnkit.SequenceClassifier(**(SMALL | {"hidden_size": 16})).fit(
            X, y, out=out, resume=True, force=True
        )
    with pytest.raises(CheckpointError, match=r"epochs=4.*epochs=6.*force=True"):
        rnnkit.SequenceClassifier(**(SMALL | {"epochs": 6})).fit(X, y, out=out, resume=True)
    X2, y2 = texts(seed=1)  # same words and classes, other examples
    with pytest.raises(CheckpointError, match="training data has changed"):
        rnnkit.SequenceClassifier(**SMALL).fit(X2, y2, out=out, resume=True)
    with pytest.warns(RnnkitWarning, match="training data has changed"):
        clf = rnnkit.SequenceClassifier(**(SMALL | {"epochs": 6})).fit(
            X2, y2, out=out, resume=True, force=True
        )
    assert clf.n_steps_ > 0
    with pytest.raises(InputError, match="resume=True needs out"):
        rnnkit.SequenceClassifier(**SMALL).fit(X, y, resume=True)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        rnnkit.SequenceClassifier(**SMALL).fit(X, y, out=tmp_path / "none.safetensors", resume=True)


def test_cli_resume(tmp_path, capsys):
    train = write_rows(tmp_path / "train.csv", [["text", "label"], *examples()])
    out = str(tmp_path / "m.safetensors")
    base = ["train", "classify", "--train", train, "--out", out, "--hidden", "8"]
    base += ["--embedding", "8", "--json"]
    assert main([*base, "--epochs", "2"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main([*base, "--epochs", "4", "--resume"]) == 2
    errors = [x for x in capsys.readouterr().err.splitlines() if x.startswith("rnnkit: error")]
    assert len(errors) == 1 and "epochs=2.0" in errors[0] and "--force" in errors[0]
    assert main([*base, "--epochs", "4", "--resume", "--force"]) == 0
    captured = capsys.readouterr()
    second = json.loads(captured.out.strip().splitlines()[-1])
    assert f"at step {first['steps']} of {second['steps']}" in captured.err
    assert second["steps"] == 2 * first["steps"]
    assert main([*base, "--resume", "--cv", "2"]) == 2
    assert "drop --cv" in capsys.readouterr().err
