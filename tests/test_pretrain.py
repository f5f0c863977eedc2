"""Language-model pretraining of a classifier (`rnnkit.estimators.pretrain`): the targets and
masks, the gradient against central differences, and that it learns."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from numeric import numeric_grad
from rnnkit.data.batches import pad
from rnnkit.estimators.pretrain import PretrainNet, PretrainObjective, lm_targets, pretrain

LENGTHS = np.array([4, 2, 3])


def test_targets_are_the_next_and_previous_tokens_inside_each_sequence():
    x = np.array([[1, 5, 2], [2, 6, 3], [3, 0, 4], [4, 0, 0]])  # (T=4, B=3), padded with 0
    (fwd, fmask), (bwd, bmask) = lm_targets(x, LENGTHS, outputs=5)  # ids >= 4: "other" (4)
    assert fwd[:3, 0].tolist() == [2, 3, 4] and fmask[:, 0].tolist() == [1, 1, 1, 0]
    assert fwd[0, 1] == 4 and fmask[:, 1].tolist() == [1, 0, 0, 0]  # 6 capped at 4
    assert bwd[1:3, 2].tolist() == [2, 3] and bmask[:, 2].tolist() == [0, 1, 1, 0]
    assert bmask[:, 1].tolist() == [0, 1, 0, 0]


@pytest.mark.parametrize("bidirectional", [False, True])
def test_pretraining_loss_gradient_matches_central_differences(bidirectional):
    emb = rnnkit.Embedding(9, 3, seed=0, dtype="float64")
    rnn = rnnkit.LSTM(3, 4, bidirectional=bidirectional, seed=1, dtype="float64")
    net = PretrainNet.around(emb, rnn, outputs=6)
    seqs = [np.array([1, 7, 2, 8]), np.array([3, 4]), np.array([5, 6, 1])]
    objective = PretrainObjective(net, seqs, seqs, batch_size=3, seed=0)
    index = np.arange(3)

    def loss():
        return objective._loss(seqs, index)[0]

    net.zero_grad()
    _, grads, backward, _ = objective._loss(seqs, index)
    backward(grads)
    analytic = net.named_grads()
    params = net.named_parameters()
    assert {k.split(".")[0] for k in params} >= {"embedding", "recurrent", "head0"}
    for key, p in params.items():
        np.testing.assert_allclose(
            analytic[key], numeric_grad(loss, p), atol=1e-7, rtol=1e-5, err_msg=key
        )


def test_pretraining_lowers_the_language_model_loss_and_trains_the_shared_layers():
    rng = np.random.default_rng(0)
    # a "grammar": each token is followed by the next one modulo 8, so the next token is
    # predictable from the current one; a model that learns it beats the uniform guess
    seqs = []
    for _ in range(200):
        start, n = int(rng.integers(1, 9)), int(rng.integers(3, 10))
        seqs.append(np.array([(start + k) % 8 + 1 for k in range(n)]))
    emb = rnnkit.Embedding(10, 8, seed=0)
    rnn = rnnkit.LSTM(8, 16, bidirectional=True, seed=1)
    before = emb.params["weight"].copy()
    untrained = PretrainObjective(PretrainNet.around(emb, rnn, 10), seqs, seqs, 32, 0).evaluate()
    after = pretrain(emb, rnn, seqs, seqs, 8, 32, 1e-2, 0, verbose=False)
    assert after < 0.5 * untrained
    assert not np.allclose(emb.params["weight"], before)


def test_classifier_with_pretraining_fits_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    words = ["a", "b", "c", "d", "e"]
    X = [" ".join(rng.choice(words, size=int(rng.integers(2, 8)))) for _ in range(160)]
    y = [int("a" in x.split()) for x in X]
    clf = rnnkit.SequenceClassifier(
        tokens="word", hidden_size=16, epochs=6, pretrain_epochs=2, lr=1e-2, patience=None
    ).fit(X, y)
    assert clf.score(X, y) >= 0.9
    rnnkit.save(clf, tmp_path / "c.safetensors")
    again = rnnkit.load(tmp_path / "c.safetensors")
    assert again.pretrain_epochs == 2
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_pad_is_time_major():  # the objective relies on pad's (T, B) layout
    x, lengths = pad([np.array([1, 2, 3]), np.array([4])], np.arange(2))
    assert x.shape == (3, 2) and lengths.tolist() == [3, 1]
