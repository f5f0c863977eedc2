"""The moving average of the weights in `SequenceClassifier` (``ema=``, ``train classify
--ema``): what is kept is the average of the weights the steps produced, computed here by hand;
ensemble members average too; old checkpoints load without it; bad values are one-line errors;
and the PyTorch side of the speech benchmark (`benchmarks/sentiment_torch.py`) averages alike."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import rnnkit
import rnnkit.estimators.fitting as fitting
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.estimators.classifier import SequenceClassifier
from rnnkit.training import Trainer

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _toy(n: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = [(rng.standard_normal((6 + k % 4, 3)) + 1.2 * y[k]).astype(np.float32) for k in range(n)]
    return X, y


class Recording(Trainer):
    """The `Trainer`, keeping the trained (not averaged) weights after every step."""

    raw: list[dict] = []

    def _train_one_step(self) -> float:
        if not Recording.raw:
            Recording.raw.append(self.model.state_dict())  # the initial weights
        loss = super()._train_one_step()
        Recording.raw.append(self.model.state_dict())
        return loss


def _average(raw: list[dict], ema: float) -> dict:
    average = {k: v.astype(np.float64) for k, v in raw[0].items()}
    for t in range(len(raw) - 1):
        decay = min(ema, (1 + t) / (10 + t))
        for k in average:
            average[k] += (1 - decay) * (raw[t + 1][k] - average[k])
    return average


def test_the_kept_weights_are_the_moving_average_of_the_trained_ones(monkeypatch):
    X, y = _toy()
    monkeypatch.setattr(fitting, "Trainer", Recording)
    Recording.raw = []
    kwargs = dict(cell="gru", hidden_size=6, epochs=1, patience=None, dropout=0.0, seed=3)
    clf = SequenceClassifier(ema=0.9, **kwargs).fit(X, y, X[:8], y[:8])  # one evaluation: the end
    raw = Recording.raw
    assert len(raw) == clf.n_steps_ + 1 >= 3
    want = _average(raw, 0.9)
    kept = clf.model_.state_dict()
    for k in want:
        np.testing.assert_allclose(kept[k], want[k], rtol=1e-4, atol=1e-6)
        assert not np.allclose(kept[k], raw[-1][k], atol=1e-6)  # not the last weights
    Recording.raw = []
    plain = SequenceClassifier(**kwargs).fit(X, y, X[:8], y[:8])
    for k, v in plain.model_.state_dict().items():  # without it: the last weights, and the
        np.testing.assert_array_equal(v, Recording.raw[-1][k])  # same steps were taken
        np.testing.assert_array_equal(v, raw[-1][k])
    assert SequenceClassifier().ema == 0.0


def test_ensemble_members_average_and_the_setting_is_saved(tmp_path):
    X, y = _toy()
    kwargs = dict(cell="gru", hidden_size=6, epochs=2, dropout=0.0, seed=1)
    ens = SequenceClassifier(ema=0.95, members=2, **kwargs).fit(X, y, X[:8], y[:8])
    one = SequenceClassifier(ema=0.95, **kwargs | {"seed": 2}).fit(X, y, X[:8], y[:8])
    member = ens.model_.members[1].state_dict()  # what members=1, seed=seed+1 trains
    for k, v in one.model_.state_dict().items():
        np.testing.assert_array_equal(member[k], v)
    path = tmp_path / "e.safetensors"
    rnnkit.save(ens, path)
    back = rnnkit.load(path)
    assert back.ema == 0.95 and back.members == 2
    np.testing.assert_array_equal(back.predict_proba(X), ens.predict_proba(X))
    assert one.ema == 0.95
    from rnnkit.io.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    del ckpt.metadata["params"]["ema"]  # as written before it existed
    old = SequenceClassifier._from_checkpoint(ckpt, path)
    assert old.ema == 0.0
    np.testing.assert_array_equal(old.predict_proba(X), ens.predict_proba(X))


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, True, "0.9"])
def test_bad_ema_gives_a_one_line_error(bad):
    X, y = _toy(10)
    with pytest.raises(InputError, match=r"ema must be a number in \[0, 1\)") as info:
        SequenceClassifier(hidden_size=4, epochs=1, ema=bad).fit(X, y, X, y)
    assert "\n" not in str(info.value)


def test_train_classify_ema_reaches_the_model_and_bad_values_are_refused(tmp_path, capsys):
    rows = ["text,label"]
    rng = np.random.default_rng(0)
    for _ in range(40):
        word, label = ("good", "pos") if rng.integers(2) else ("bad", "neg")
        rows.append(f"the film was {word},{label}")
    train = tmp_path / "t.csv"
    train.write_text("\n".join(rows) + "\n")
    out = tmp_path / "m.safetensors"
    argv = ["train", "classify", "--train", str(train), "--out", str(out), "--hidden", "4",
            "--epochs", "1", "--min-count", "1"]  # fmt: skip
    assert main([*argv, "--ema", "0.99", "--json"]) == 0, capsys.readouterr().err
    assert rnnkit.load(out).ema == 0.99
    capsys.readouterr()
    for value in ("1", "-0.5", "x"):
        with pytest.raises(SystemExit) as info:
            main([*argv, "--force", "--ema", value])
        assert info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "argument --ema: expected" in err, err


def test_the_pytorch_side_keeps_the_same_moving_average():
    import torch

    sys.path.insert(0, str(BENCH))
    import sentiment_torch
    import speech_torch

    X, y = _toy()
    data = {"train": (X, y), "valid": (X[:8], y[:8]), "test": (X[:8], y[:8])}
    p = dict(cell="gru", hidden_size=5, num_layers=1, dropout=0.0, bidirectional=True,
             pooling="max", batch_size=8, lr=3e-3, weight_decay=0.0, clip=1.0, epochs=1,
             minutes=None, patience=None, seed=0)  # fmt: skip
    raw: list[dict] = []

    def record(opt, args, kwargs):  # after each optimizer step: the trained weights
        raw.append({k: v.detach().double().clone() for k, v in nets[-1].named_parameters()})

    from torch.optim.optimizer import register_optimizer_step_post_hook

    handle = register_optimizer_step_post_hook(record)
    nets = []
    try:
        for ema in (0.0, 0.9):
            torch.manual_seed(0)
            nets.append(speech_torch.Net(3, 2, p))
            if ema:
                raw.clear()
                raw.append({k: v.detach().double().clone() for k, v in nets[-1].named_parameters()})
            sentiment_torch.train(nets[-1], data, p | {"ema": ema})
    finally:
        handle.remove()
    average = {k: v.clone() for k, v in raw[0].items()}
    for t in range(len(raw) - 1):
        decay = min(0.9, (1 + t) / (10 + t))
        for k in average:
            average[k] += (1 - decay) * (raw[t + 1][k] - average[k])
    plain, averaged = (dict(n.named_parameters()) for n in nets)
    assert len(raw) == 1 + -(-len(X) // 8)
    for k in average:  # kept: the average; trained along the same steps as without it
        np.testing.assert_allclose(averaged[k].detach().double(), average[k], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(plain[k].detach().double(), raw[-1][k], rtol=1e-6, atol=1e-8)
        assert not torch.allclose(average[k], raw[-1][k], atol=1e-6)
