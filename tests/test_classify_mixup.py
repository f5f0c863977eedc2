"""Mixup in `SequenceClassifier` (``mixup=``, ``train classify --mixup``): the draw per step,
the mixed batch and loss against the same mixture computed by hand, training with it, and
one-line errors for bad settings."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.data.batches import pad
from rnnkit.errors import InputError
from rnnkit.estimators.classifier import SequenceClassifier
from rnnkit.estimators.classify_objective import ClassifyObjective, mixup_pairs
from rnnkit.losses import cross_entropy


def _toy(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = [rng.standard_normal((10 + k % 4, 5)).astype(np.float32) + 1.5 * y[k] for k in range(n)]
    return X, y


def test_mixup_draws_are_reproducible_and_fresh_per_step():
    lam, perm = mixup_pairs(3, 7, 0.4, 16)
    again = mixup_pairs(3, 7, 0.4, 16)
    assert lam == again[0] and np.array_equal(perm, again[1])
    assert 0 <= lam <= 1 and sorted(perm.tolist()) == list(range(16))
    lams = [mixup_pairs(3, s, 0.4, 16)[0] for s in range(200)]
    assert len(set(lams)) == 200 and min(lams) < 0.1 and max(lams) > 0.9  # Beta(0.4, 0.4)


def test_a_mixup_step_trains_on_the_mixed_batch_and_the_mixed_loss():
    X, y = _toy()
    clf = SequenceClassifier(hidden_size=6, epochs=1, mixup=0.4, dropout=0.0, seed=2)
    clf.fit(X, y, X, y)
    targets = np.asarray(y)
    objective = ClassifyObjective(clf.model_, (X, targets), (X, targets), 8, None, 2)
    objective.mixup = 0.4
    step = 3
    index = objective._batches(0)[step]
    x, lengths = pad(X, index)
    lam, perm = mixup_pairs(2, step, 0.4, len(index))
    mixed = (lam * x + (1 - lam) * x[:, perm]).astype(x.dtype)
    clf.model_.train()
    logits, _ = clf.model_.forward_train(mixed, np.maximum(lengths, lengths[perm]))
    yb = targets[index]
    expected = lam * cross_entropy(logits, yb)[0] + (1 - lam) * cross_entropy(logits, yb[perm])[0]
    loss, n = objective.train_step(step)
    assert n == len(index)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_mixup_changes_training_learns_and_is_off_by_default():
    X, y = _toy(60)
    kwargs = dict(hidden_size=8, epochs=4, patience=None, dropout=0.0, seed=1)
    plain = SequenceClassifier(**kwargs).fit(X, y, X[:10], y[:10])
    mixed = SequenceClassifier(mixup=0.4, **kwargs).fit(X, y, X[:10], y[:10])
    assert SequenceClassifier().mixup == 0.0
    assert np.abs(plain.predict_proba(X) - mixed.predict_proba(X)).max() > 1e-4
    assert mixed.score(X, y) > 0.8


@pytest.mark.parametrize("bad", [-0.1, 11, True, "0.2"])
def test_bad_mixup_gives_a_one_line_error(bad):
    X, y = _toy(10)
    with pytest.raises(InputError, match=r"mixup must be a number in \[0, 10\]") as info:
        SequenceClassifier(hidden_size=4, epochs=1, mixup=bad).fit(X, y, X, y)
    assert "\n" not in str(info.value)
