"""Losses: central finite differences in float64, parity with PyTorch, masks, stability, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from numeric import numeric_grad
from rnnkit.errors import InputError, ShapeError
from rnnkit.losses import cross_entropy, log_softmax, mse, softmax

F = torch.nn.functional


def numerical_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar function ``f`` at ``x`` (float64)."""
    return numeric_grad(lambda: f(x), x, eps)


# -- softmax / log_softmax ----------------------------------------------------------------------
def test_softmax_matches_torch_and_sums_to_one():
    z = np.random.default_rng(0).normal(size=(3, 4, 5)) * 10
    for axis in (-1, 0, 1):
        np.testing.assert_allclose(softmax(z, axis), torch.softmax(torch.tensor(z), axis).numpy())
        np.testing.assert_allclose(
            log_softmax(z, axis), torch.log_softmax(torch.tensor(z), axis).numpy(), atol=1e-12
        )
    np.testing.assert_allclose(softmax(z).sum(-1), 1.0)


def test_softmax_stable_for_huge_logits():
    z = np.array([[1e4, -1e4, 0.0], [5e4, 5e4, 5e4]], dtype=np.float32)
    assert np.all(np.isfinite(softmax(z))) and np.all(np.isfinite(log_softmax(z)))
    np.testing.assert_allclose(softmax(z)[1], np.full(3, 1 / 3), rtol=1e-6)


# -- cross_entropy ------------------------------------------------------------------------------
def random_problem(shape=(4, 3), num_classes=5, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=shape + (num_classes,)) * 2
    targets = rng.integers(0, num_classes, size=shape)
    return rng, logits, targets


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("ignore_index", [None, 2])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_cross_entropy_matches_torch(reduction, ignore_index, smoothing):
    _, logits, targets = random_problem(seed=1)
    loss, dlogits = cross_entropy(
        logits, targets, ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing
    )

    z = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(
        z.reshape(-1, 5),
        torch.tensor(targets).reshape(-1),
        ignore_index=-100 if ignore_index is None else ignore_index,
        reduction=reduction,
        label_smoothing=smoothing,
    )
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(dlogits, z.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("smoothing", [0.1, 0.5])
def test_cross_entropy_with_label_smoothing_and_mask_matches_finite_differences(smoothing):
    _, logits, targets = random_problem(seed=3)
    rng = np.random.default_rng(4)
    mask = rng.uniform(size=targets.shape) > 0.3

    def f(x):
        return cross_entropy(x, targets, mask=mask, label_smoothing=smoothing)[0]

    _, dmasked = cross_entropy(logits, targets, mask=mask, label_smoothing=smoothing)
    np.testing.assert_allclose(dmasked, numerical_grad(f, logits.copy()), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_gradient_matches_finite_differences(reduction):
    rng, logits, targets = random_problem(shape=(3, 2), num_classes=4, seed=2)
    mask = rng.uniform(size=targets.shape) > 0.3
    targets[0, 0] = -1  # ignored below

    def f(z):
        return cross_entropy(z, targets, mask=mask, ignore_index=-1, reduction=reduction)[0]

    _, dlogits = cross_entropy(logits, targets, mask=mask, ignore_index=-1, reduction=reduction)
    np.testing.assert_allclose(dlogits, numerical_grad(f, logits.copy()), rtol=1e-6, atol=1e-9)


def test_cross_entropy_mask_excludes_positions():
    _, logits, targets = random_problem(seed=3)
    mask = np.zeros(targets.shape, dtype=bool)
    mask[:2] = True
    loss, dlogits = cross_entropy(logits, targets, mask=mask)
    ref_loss, ref_grad = cross_entropy(logits[:2], targets[:2])
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(dlogits[:2], ref_grad, rtol=1e-12)
    assert np.all(dlogits[2:] == 0)
    # changing the masked-out logits changes nothing
    logits2 = logits.copy()
    logits2[2:] += 100.0
    assert cross_entropy(logits2, targets, mask=mask)[0] == pytest.approx(loss, rel=1e-12)


def test_cross_entropy_nothing_counted_gives_zero():
    _, logits, targets = random_problem(seed=4)
    loss, dlogits = cross_entropy(logits, targets, mask=np.zeros(targets.shape))
    assert loss == 0.0 and dlogits.shape == logits.shape and not dlogits.any()
    loss, dlogits = cross_entropy(logits, np.full(targets.shape, 7), ignore_index=7)
    assert loss == 0.0 and not dlogits.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_stable_for_huge_logits(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype)
    targets = np.array([1, 0])
    loss, dlogits = cross_entropy(logits, targets)
    assert np.isfinite(loss) and np.all(np.isfinite(dlogits))
    assert dlogits.dtype == dtype
    # both targets are ~2e4 below the best logit: loss ~ (2e4 + 2e4 + log 2) / 2
    assert loss == pytest.approx((2e4 + 2e4 + np.log(2)) / 2, rel=1e-6)


def test_cross_entropy_float32_keeps_dtype_and_agrees_with_float64():
    _, logits, targets = random_problem(seed=5)
    loss32, d32 = cross_entropy(logits.astype(np.float32), targets)
    loss64, d64 = cross_entropy(logits, targets)
    assert d32.dtype == np.float32
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(d32, d64, rtol=1e-4, atol=1e-7)


def test_cross_entropy_errors():
    _, logits, targets = random_problem()
    with pytest.raises(ShapeError, match=r"cross_entropy: expected targets of shape \(4, 3\)"):
        cross_entropy(logits, targets[:, :2])
    with pytest.raises(InputError, match=r"cross_entropy: expected targets in \[0, 5\), got 5"):
        cross_entropy(logits, np.full(targets.shape, 5))
    with pytest.raises(InputError, match=r"targets in \[0, 5\), got -3"):
        cross_entropy(logits, np.full(targets.shape, -3), ignore_index=-100)
    with pytest.raises(InputError, match="cross_entropy: expected reduction 'mean' or 'sum'"):
        cross_entropy(logits, targets, reduction="max")
    with pytest.raises(ShapeError, match="cross_entropy: expected mask of shape"):
        cross_entropy(logits, targets, mask=np.ones(3))
    with pytest.raises(InputError, match="expected integer targets"):
        cross_entropy(logits, targets.astype(float))
    with pytest.raises(ValueError):  # both error classes are ValueErrors
        cross_entropy(logits, targets, reduction="none")
    with pytest.raises(InputError, match=r"expected label_smoothing in \[0, 1\), got 1.0"):
        cross_entropy(logits, targets, label_smoothing=1.0)


# -- mse ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_matches_torch(reduction):
    rng = np.random.default_rng(6)
    pred, target = rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2, 3))
    loss, dpred = mse(pred, target, reduction=reduction)
    p = torch.tensor(pred, requires_grad=True)
    ref = F.mse_loss(p, torch.tensor(target), reduction=reduction)
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(dpred, p.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_gradient_matches_finite_differences(reduction):
    rng = np.random.default_rng(7)
    pred, target = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 3))
    mask = (rng.uniform(size=(4, 2)) > 0.3).astype(np.float64)

    def f(x):
        return mse(x, target, mask=mask, reduction=reduction)[0]

    _, dpred = mse(pred, target, mask=mask, reduction=reduction)
    np.testing.assert_allclose(dpred, numerical_grad(f, pred.copy()), rtol=1e-6, atol=1e-9)


def test_mse_mask_excludes_positions_and_counts_elements():
    rng = np.random.default_rng(8)
    pred, target = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 3))
    mask = np.ones((4, 2), dtype=bool)
    mask[3] = False
    loss, dpred = mse(pred, target, mask=mask)
    ref = np.mean((pred[:3] - target[:3]) ** 2)  # mean over the 3*2*3 counted elements
    assert loss == pytest.approx(ref, rel=1e-12)
    assert not dpred[3].any()
    assert mse(pred, target, mask=np.zeros((4, 2))) == (0.0, pytest.approx(np.zeros_like(pred)))


def test_mse_float32_and_errors():
    pred = np.ones((2, 3), dtype=np.float32)
    loss, dpred = mse(pred, np.zeros((2, 3)))
    assert loss == pytest.approx(1.0) and dpred.dtype == np.float32
    with pytest.raises(ShapeError, match=r"mse: expected target of shape \(2, 3\)"):
        mse(pred, np.zeros((3, 2)))
    with pytest.raises(ShapeError, match="mse: expected mask of shape"):
        mse(pred, pred, mask=np.ones(3))
    with pytest.raises(InputError, match="mse: expected reduction"):
        mse(pred, pred, reduction="avg")
