"""``eval_speech.py --same-start``: the PyTorch side of the speaker folds starts each member
from rnnkit's initial weights and draws rnnkit's dropout masks; trained on the same batches,
masks and budget, the two engines then end at the same model (float32, to rounding), so a
difference between the sides' scores in such a run is the engine's."""

from __future__ import annotations

import json

import numpy as np
import pytest

import rnnkit
from by_path import benchmark
from rnnkit.estimators.classifier import SequenceClassifier

torch = pytest.importorskip("torch")


def frames(n: int, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    y = rng.integers(0, 4, n)
    X = [(rng.standard_normal((int(rng.integers(5, 15)), 6)) + 0.3 * k) for k in y]
    return [x.astype(np.float32) for x in X], y


@pytest.mark.parametrize("pooling", ["max", "attention"])
def test_the_pytorch_side_from_rnnkits_start_ends_at_rnnkits_model(pooling, tmp_path):
    es, st = benchmark("eval_speech"), benchmark("speech_torch")
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    (X, y), (Xv, yv) = frames(96, rng), frames(24, rng)
    settings = dict(
        cell="gru", hidden_size=8, pooling=pooling, attention_size=5, dropout=0.5,
        time_masks=1, time_mask_width=3, feature_masks=1, feature_mask_width=2,
        feature_blocks=3, epochs=4, batch_size=16, patience=None, verbose=False,
    )  # fmt: skip
    params = SequenceClassifier(**settings).get_params() | {"ensemble": 2, "seed": 5}
    es.write_starts(params, 6, 4, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["start-5.npz", "start-6.npz"]
    data = {"train": (X, y), "valid": (Xv, yv), "test": (Xv, yv)}
    params["torch_start"] = str(tmp_path)
    json.dumps(params)  # the params file both sides read
    for seed in (5, 6):
        ours = SequenceClassifier(**settings, seed=seed).fit(X, y.tolist(), Xv, yv.tolist())
        p = params | {"seed": seed}
        net = st.Net(6, 4, p)
        st.start_from(net, tmp_path / f"start-{seed}.npz")
        assert isinstance(net.dropout, st.NumpyDropout)
        _, mask = st.augmentation({}, p)
        result = st.sentiment_torch.train(net, data, p, None, mask)
        assert result["steps"] == ours.n_steps_ == 24
        theirs = st.sentiment_torch.predict_proba(net, Xv)
        np.testing.assert_allclose(theirs, ours.predict_proba(Xv), rtol=0, atol=2e-5)
        moved = np.abs(ours.predict_proba(Xv) - 0.25).max()  # it learned something
        assert moved > 0.05


def test_the_sides_differ_without_the_same_start(tmp_path):
    """The control: PyTorch's own initial weights give another model from the same data."""
    st = benchmark("speech_torch")
    rng = np.random.default_rng(0)
    (X, y), (Xv, yv) = frames(48, rng), frames(12, rng)
    settings = dict(cell="gru", hidden_size=8, pooling="max", dropout=0.5, epochs=2,
                    batch_size=16, patience=None, verbose=False, seed=5)  # fmt: skip
    ours = SequenceClassifier(**settings).fit(X, y.tolist(), Xv, yv.tolist())
    p = ours.get_params()
    torch.manual_seed(5)
    net = st.Net(6, 4, p)
    st.sentiment_torch.train(net, {"train": (X, y), "valid": (Xv, yv)}, p)
    theirs = st.sentiment_torch.predict_proba(net, Xv)
    assert np.abs(theirs - ours.predict_proba(Xv)).max() > 1e-3


def test_dropout_other_than_a_half_draws_the_same_masks():
    """rnnkit keeps a unit when its draw is below 1 - p in float64: so does `NumpyDropout`."""
    st = benchmark("speech_torch")
    for p in (0.1, 0.3):
        ours = rnnkit.layers.Dropout(p, seed=9)
        x = np.ones((64, 50), dtype=np.float32)
        expected = [ours.forward_train(x)[0] for _ in range(3)]
        theirs = st.NumpyDropout(p, np.random.default_rng(9).bit_generator.state)
        theirs.train()
        got = [theirs(torch.from_numpy(x)).numpy() for _ in range(3)]
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_array_equal(a, b)


def test_several_layers_with_dropout_are_refused(tmp_path):
    """The recurrent layers' own dropout between layers is drawn by torch: not the same."""
    es = benchmark("eval_speech")
    params = SequenceClassifier(num_layers=2, dropout=0.3).get_params() | {"ensemble": 1}
    with pytest.raises(SystemExit, match="--layers 1 or --dropout 0"):
        es.write_starts(params, 6, 4, tmp_path)
    es.write_starts(params | {"dropout": 0.0}, 6, 4, tmp_path)  # no dropout: the same model
    assert (tmp_path / f"start-{params['seed']}.npz").exists()
