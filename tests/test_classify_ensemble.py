"""`SequenceClassifier(members=N)` and ``train classify --ensemble N``: each member is the
network its seed trains alone, the ensemble averages their probabilities, and one checkpoint
holds them all."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rnnkit
from rnnkit.cli import main
from rnnkit.errors import InputError
from rnnkit.models.ensemble import Ensemble

FAST = dict(hidden_size=8, dropout=0.2, lr=1e-2, patience=None, epochs=2, batch_size=16)


def sign_task(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = [rng.standard_normal((int(rng.integers(3, 9)), 2)).astype(np.float32) for _ in range(n)]
    return X, np.array([int(x[:, 0].sum() > 0) for x in X])


@pytest.fixture(scope="module")
def task():
    X, y = sign_task()
    Xv, yv = sign_task(30, seed=1)
    masks = dict(time_masks=1, time_mask_width=2, feature_masks=0)
    ens = rnnkit.SequenceClassifier(members=3, seed=4, **masks, **FAST).fit(X, y, Xv, yv)
    return ens, X, y, Xv, yv, masks


def test_each_member_is_the_network_its_seed_trains_alone(task):
    ens, X, y, Xv, yv, masks = task
    assert isinstance(ens.model_, Ensemble) and len(ens.model_) == 3
    for k, net in enumerate(ens.model_.members):
        alone = rnnkit.SequenceClassifier(seed=4 + k, **masks, **FAST).fit(X, y, Xv, yv)
        for key, w in alone.model_.named_parameters().items():
            np.testing.assert_array_equal(net.named_parameters()[key], w)
        member = rnnkit.SequenceClassifier(**FAST)
        member.classes_, member.input_, member.n_inputs_ = ens.classes_, "features", 2
        member.model_ = net
        np.testing.assert_allclose(
            member.predict_proba(Xv), alone.predict_proba(Xv), rtol=0, atol=1e-12
        )


def test_the_ensemble_averages_its_members_probabilities(task):
    ens, _, _, Xv, _, _ = task
    each = []
    for net in ens.model_.members:
        one = rnnkit.SequenceClassifier(**FAST)
        one.classes_, one.input_, one.n_inputs_, one.model_ = ens.classes_, "features", 2, net
        each.append(one.predict_proba(Xv))
    proba = ens.predict_proba(Xv)
    np.testing.assert_allclose(proba, np.mean(each, axis=0), rtol=0, atol=1e-12)
    assert not np.allclose(each[0], each[1])  # the members differ
    np.testing.assert_array_equal(ens.predict(Xv), ens.classes_[proba.argmax(1)])
    # the module's own output is the log of the same average
    from rnnkit.data.batches import pad

    x, lengths = pad(ens._encode(Xv, "t"), np.arange(len(Xv)))
    np.testing.assert_allclose(np.exp(ens.model_(x, lengths)), proba, rtol=1e-9, atol=1e-12)


def test_save_load_round_trip(task, tmp_path):
    ens, _, _, Xv, yv, _ = task
    path = tmp_path / "e.safetensors"
    rnnkit.save(ens, path)
    back = rnnkit.load(path)
    assert back.members == 3 and isinstance(back.model_, Ensemble)
    np.testing.assert_array_equal(back.predict_proba(Xv), ens.predict_proba(Xv))
    assert back.score(Xv, yv) == ens.score(Xv, yv)


def test_a_checkpoint_without_members_loads_as_one_network(tmp_path):
    X, y = sign_task(40)
    one = rnnkit.SequenceClassifier(**FAST).fit(X, y)
    path = tmp_path / "one.safetensors"
    rnnkit.save(one, path)
    from rnnkit.io.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    for name in ("members", "tta_vtlp", "tta_warps"):
        del ckpt.metadata["params"][name]  # as written before these existed
    old = rnnkit.SequenceClassifier._from_checkpoint(ckpt, path)
    assert (old.members, old.tta_vtlp, old.tta_warps) == (1, 0.0, 1)
    np.testing.assert_array_equal(old.predict_proba(X), one.predict_proba(X))


@pytest.mark.parametrize("members", [0, 1.5, True, "2"])
def test_bad_members_is_a_clear_error(members):
    X, y = sign_task(20)
    with pytest.raises(InputError, match="members must be an integer >= 1"):
        rnnkit.SequenceClassifier(members=members, **FAST).fit(X, y)


def test_cli_trains_evaluates_and_predicts_an_ensemble(tmp_path, capsys):
    rows = ["text,label"]
    rng = np.random.default_rng(0)
    for _ in range(60):
        word, label = ("good", "pos") if rng.integers(2) else ("bad", "neg")
        rows.append(f"the film was {word} {rng.choice(['a', 'b'])},{label}")
    train = tmp_path / "t.csv"
    train.write_text("\n".join(rows) + "\n")
    out = str(tmp_path / "e.safetensors")
    argv = ["train", "classify", "--train", str(train), "--out", out, "--hidden", "8"]
    code = main([*argv, "--epochs", "2", "--min-count", "1", "--ensemble", "2", "--json"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "val_accuracy" in json.loads(stdout.splitlines()[-1])
    model = rnnkit.load(out)
    assert model.members == 2 and len(model.model_) == 2
    assert main(["evaluate", out, "--test", str(train), "--json"]) == 0
    assert "accuracy" in json.loads(capsys.readouterr()[0].splitlines()[-1])
    lines = tmp_path / "l.txt"
    lines.write_text("the film was good\n")
    assert main(["predict", out, str(lines)]) == 0
    assert capsys.readouterr()[0].split("\t")[0] in ("pos", "neg")
