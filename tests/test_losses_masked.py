"""Masked losses (BCE with logits, Gaussian NLL, pinball) and CTC: central finite differences in
float64, parity with PyTorch, padded steps that count nothing, stability, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from numeric import numeric_grad
from rnnkit.errors import InputError, ShapeError
from rnnkit.losses import (
    bce_with_logits,
    ctc_beam_decode,
    ctc_greedy_decode,
    ctc_loss,
    gaussian_nll,
    log_softmax,
    pinball,
)

F = torch.nn.functional


def numerical_grad(f, x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Central differences of the scalar function ``f`` at ``x`` (float64)."""
    return numeric_grad(lambda: f(x), x, eps)


def step_mask(rng, shape=(5, 3)):
    """A (T, B) mask of real weights, with some padded (zero) steps at the end of sequences."""
    mask = rng.uniform(0.5, 2.0, size=shape)
    mask[-2:, 0] = 0.0
    mask[-1, 2] = 0.0
    return mask


# -- bce_with_logits ----------------------------------------------------------------------------
def bce_problem(seed=0, shape=(5, 3, 4)):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=shape) * 3
    targets = (rng.uniform(size=shape) > 0.5).astype(np.float64)
    targets[0, 0, 0] = 0.3  # a soft label
    return rng, logits, targets, rng.uniform(0.5, 3.0, size=shape[-1:])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_matches_torch_with_pos_weight(reduction):
    _, logits, targets, pos_weight = bce_problem(1)
    for q in (None, pos_weight):
        loss, dlogits = bce_with_logits(logits, targets, pos_weight=q, reduction=reduction)
        z = torch.tensor(logits, requires_grad=True)
        ref = torch.nn.BCEWithLogitsLoss(
            pos_weight=None if q is None else torch.tensor(q), reduction=reduction
        )(z, torch.tensor(targets))
        ref.backward()
        assert loss == pytest.approx(ref.item(), rel=1e-12)
        np.testing.assert_allclose(dlogits, z.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_gradient_matches_finite_differences_with_mask(reduction):
    rng, logits, targets, pos_weight = bce_problem(2)
    mask = step_mask(rng)

    def f(z):
        return bce_with_logits(z, targets, mask, pos_weight, reduction)[0]

    _, dlogits = bce_with_logits(logits, targets, mask, pos_weight, reduction)
    np.testing.assert_allclose(dlogits, numerical_grad(f, logits.copy()), rtol=1e-6, atol=1e-8)


def test_bce_mask_is_a_weighted_mean_over_counted_elements():
    rng, logits, targets, _ = bce_problem(3)
    mask = step_mask(rng)
    loss, _ = bce_with_logits(logits, targets, mask=mask)
    per_element = bce_with_logits(logits, targets, reduction="sum", mask=np.ones((5, 3)))[0]
    assert per_element == pytest.approx(
        sum(bce_with_logits(logits[i], targets[i], reduction="sum")[0] for i in range(5))
    )
    w = np.broadcast_to(mask[..., None], logits.shape)
    ref = F.binary_cross_entropy_with_logits(
        torch.tensor(logits), torch.tensor(targets), reduction="none"
    ).numpy()
    assert loss == pytest.approx(np.sum(w * ref) / np.sum(w), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_stable_for_huge_logits(dtype):
    logits = np.array([1e4, -1e4, 1e4, -1e4], dtype=dtype)
    loss, dlogits = bce_with_logits(logits, np.array([1.0, 0.0, 0.0, 1.0]), reduction="sum")
    assert loss == pytest.approx(2e4, rel=1e-6) and dlogits.dtype == dtype
    np.testing.assert_allclose(dlogits, [0, 0, 1, -1], atol=1e-7)


# -- gaussian_nll -------------------------------------------------------------------------------
def gnll_problem(seed=0, var_shape=(5, 3, 2)):
    rng = np.random.default_rng(seed)
    mean, targets = rng.normal(size=(5, 3, 2)), rng.normal(size=(5, 3, 2))
    return rng, mean, rng.uniform(0.2, 2.0, size=var_shape), targets


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("var_shape", [(5, 3, 2), (5, 3), (5, 1, 2)])
def test_gaussian_nll_matches_torch(full, reduction, var_shape):
    _, mean, var, targets = gnll_problem(4, var_shape)
    var.flat[0] = 1e-9  # below eps: clamped, with the gradient passed through as torch's
    loss, dmean, dvar = gaussian_nll(mean, var, targets, full=full, eps=1e-3, reduction=reduction)
    m, v = torch.tensor(mean, requires_grad=True), torch.tensor(var, requires_grad=True)
    ref = torch.nn.GaussianNLLLoss(full=full, eps=1e-3, reduction=reduction)(
        m, torch.tensor(targets), v
    )
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(dmean, m.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(dvar, v.grad.numpy(), rtol=1e-10)
    assert dvar.shape == var.shape


@pytest.mark.parametrize("var_shape", [(5, 3, 2), (5, 3)])
def test_gaussian_nll_gradients_match_finite_differences_with_mask(var_shape):
    rng, mean, var, targets = gnll_problem(5, var_shape)
    mask = step_mask(rng)
    _, dmean, dvar = gaussian_nll(mean, var, targets, mask, full=True)
    num_mean = numerical_grad(lambda x: gaussian_nll(x, var, targets, mask, True)[0], mean.copy())
    num_var = numerical_grad(lambda v: gaussian_nll(mean, v, targets, mask, True)[0], var.copy())
    np.testing.assert_allclose(dmean, num_mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dvar, num_var, rtol=1e-6, atol=1e-8)


# -- pinball ------------------------------------------------------------------------------------
QUANTILES = np.array([0.1, 0.5, 0.9])


def pinball_problem(seed=0):
    rng = np.random.default_rng(seed)
    return rng, rng.normal(size=(5, 3, 3)), rng.normal(size=(5, 3))


def test_pinball_matches_its_definition():
    _, pred, targets = pinball_problem(6)
    loss, dpred = pinball(pred, targets, QUANTILES, reduction="sum")
    u = targets[..., None] - pred
    assert loss == pytest.approx(np.sum(np.maximum(QUANTILES * u, (QUANTILES - 1) * u)))
    np.testing.assert_array_equal(dpred, np.where(u > 0, -QUANTILES, 1 - QUANTILES))
    # the median column is half the absolute error
    assert pinball(pred[..., 1:2], targets, [0.5])[0] == pytest.approx(
        0.5 * np.mean(np.abs(u[..., 1]))
    )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_pinball_gradient_matches_finite_differences_with_mask(reduction):
    rng, pred, targets = pinball_problem(7)
    mask = step_mask(rng)

    def f(p):
        return pinball(p, targets, QUANTILES, mask, reduction)[0]

    _, dpred = pinball(pred, targets, QUANTILES, mask, reduction)
    np.testing.assert_allclose(dpred, numerical_grad(f, pred.copy()), rtol=1e-6, atol=1e-8)


def test_pinball_minimised_at_the_quantile():
    y = np.random.default_rng(8).normal(size=2001)
    for tau in (0.1, 0.5, 0.9):
        grid = np.linspace(-2.5, 2.5, 501)
        losses = [pinball(np.full((y.size, 1), c), y, [tau])[0] for c in grid]
        assert grid[int(np.argmin(losses))] == pytest.approx(np.quantile(y, tau), abs=0.02)


# -- padded steps count nothing (all element-wise losses) ---------------------------------------
def masked_calls(rng):
    """(name, function of (pred, targets), pred, targets): each loss with a (T, B) step mask."""
    mask = step_mask(rng)
    q = rng.uniform(0.5, 2.0, size=4)
    var = rng.uniform(0.2, 2.0, size=(5, 3, 4))
    return mask, [
        ("bce", lambda p, y: bce_with_logits(p, y, mask, q), (rng.uniform(size=(5, 3, 4)) > 0.5)),
        ("gnll", lambda p, y: gaussian_nll(p, var, y, mask)[:2], rng.normal(size=(5, 3, 4))),
        ("pinball", lambda p, y: pinball(p, y[..., 0], [0.2, 0.4, 0.6, 0.8], mask), None),
    ]


def test_padded_steps_contribute_nothing():
    rng = np.random.default_rng(9)
    mask, calls = masked_calls(rng)
    padded = mask == 0  # (T, B)
    for name, call, targets in calls:
        pred = rng.normal(size=(5, 3, 4))
        y = rng.normal(size=(5, 3, 4)) if targets is None else targets.astype(np.float64)
        loss, grad = call(pred, y)
        assert not grad[padded].any(), name
        # garbage at the padded steps: huge predictions, NaN targets (missing values)
        pred2, y2 = pred.copy(), y.copy()
        pred2[padded] = 1e6
        y2[padded] = np.nan
        loss2, grad2 = call(pred2, y2)
        assert loss2 == loss, name
        np.testing.assert_array_equal(grad2, grad, err_msg=name)


def test_gaussian_nll_padded_var_is_not_checked_and_changes_nothing():
    rng, mean, var, targets = gnll_problem(10)
    mask = step_mask(rng)
    loss, dmean, dvar = gaussian_nll(mean, var, targets, mask)
    var2 = var.copy()
    var2[mask == 0] = -5.0
    loss2, dmean2, dvar2 = gaussian_nll(mean, var2, targets, mask)
    assert loss2 == loss and not dvar2[mask == 0].any()
    np.testing.assert_array_equal(dmean2, dmean)
    np.testing.assert_array_equal(dvar2, dvar)


def test_nothing_counted_gives_zero():
    _, pred, targets = pinball_problem(11)
    zero = np.zeros((5, 3))
    assert pinball(pred, targets, QUANTILES, zero)[0] == 0.0
    loss, dmean, dvar = gaussian_nll(pred, np.ones_like(pred), pred, zero)
    assert loss == 0.0 and not dmean.any() and not dvar.any()
    loss, dlogits = bce_with_logits(pred, pred, zero)
    assert loss == 0.0 and not dlogits.any()


def test_float32_keeps_dtype_and_agrees_with_float64():
    _, logits, targets, q = bce_problem(12)
    l32, d32 = bce_with_logits(logits.astype(np.float32), targets, pos_weight=q)
    l64, d64 = bce_with_logits(logits, targets, pos_weight=q)
    assert d32.dtype == np.float32 and l32 == pytest.approx(l64, rel=1e-5)
    np.testing.assert_allclose(d32, d64, rtol=1e-4, atol=1e-7)
    _, mean, var, y = gnll_problem(12)
    l32, dm32, dv32 = gaussian_nll(mean.astype(np.float32), var.astype(np.float32), y)
    assert dm32.dtype == dv32.dtype == np.float32
    assert l32 == pytest.approx(gaussian_nll(mean, var, y)[0], rel=1e-5)
    assert pinball(mean.astype(np.float32), y[..., 0], [0.3, 0.7])[1].dtype == np.float32


def test_masked_loss_errors():
    _, pred, targets = pinball_problem(13)
    with pytest.raises(InputError, match=r"pinball: expected quantiles in \(0, 1\), got"):
        pinball(pred, targets, [0.1, 0.5, 1.0])
    with pytest.raises(ShapeError, match=r"pinball: expected quantiles of shape \(3,\)"):
        pinball(pred, targets, [0.5])
    with pytest.raises(ShapeError, match=r"pinball: expected targets of shape \(5, 3\)"):
        pinball(pred, pred, QUANTILES)
    nan_targets = targets.copy()
    nan_targets[0, 0] = np.nan
    with pytest.raises(InputError, match="pinball: expected targets without NaN"):
        pinball(pred, nan_targets, QUANTILES)
    with pytest.raises(ShapeError, match=r"bce_with_logits: expected targets of shape \(5, 3, 3\)"):
        bce_with_logits(pred, targets)
    with pytest.raises(ShapeError, match="bce_with_logits: expected pos_weight broadcastable"):
        bce_with_logits(pred, pred, pos_weight=np.ones(4))
    with pytest.raises(ShapeError, match="bce_with_logits: expected mask of shape"):
        bce_with_logits(pred, pred, mask=np.ones((3, 5)))
    with pytest.raises(InputError, match="gaussian_nll: expected var >= 0, got -1.0"):
        gaussian_nll(pred, -np.ones_like(pred), pred)
    with pytest.raises(ShapeError, match="gaussian_nll: expected var of shape"):
        gaussian_nll(pred, np.ones((5, 2, 3)), pred)
    with pytest.raises(InputError, match="gaussian_nll: expected reduction 'mean' or 'sum'"):
        gaussian_nll(pred, np.ones_like(pred), pred, reduction="none")


# -- ctc_loss -----------------------------------------------------------------------------------
def ctc_problem(seed=0, T=12, B=4, C=6, S=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(T, B, C)) * 2
    targets = rng.integers(1, C, size=(B, S))
    input_lengths = np.array([T, 7, 5, 9][:B])
    target_lengths = np.array([S, 3, 0, 2][:B])
    return logits, targets, input_lengths, target_lengths


def torch_ctc(log_probs, targets, input_lengths, target_lengths, **kwargs):
    lp = torch.tensor(log_probs, requires_grad=True)
    loss = F.ctc_loss(
        lp,
        torch.tensor(targets),
        torch.tensor(input_lengths),
        torch.tensor(target_lengths),
        **kwargs,
    )
    loss.sum().backward()
    return loss.detach().numpy(), lp.grad.numpy()


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("concatenated", [False, True])
def test_ctc_matches_torch(reduction, concatenated):
    logits, targets, il, tl = ctc_problem(14)
    lp = log_softmax(logits)
    targets[1, :3] = [2, 2, 3]  # a repeated label needs a blank between
    if concatenated:
        targets = np.concatenate([targets[b, : tl[b]] for b in range(len(tl))])
    loss, grad = ctc_loss(lp, targets, il, tl, blank=0, reduction=reduction)
    ref_loss, ref_grad = torch_ctc(lp, targets, il, tl, reduction=reduction)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-13)


def test_ctc_other_blank_matches_torch():
    logits, targets, il, tl = ctc_problem(15, C=5)
    targets[targets == 4] = 0  # the blank is 4: labels 0..3
    lp = log_softmax(logits)
    loss, grad = ctc_loss(lp, targets, il, tl, blank=4, reduction="sum")
    ref_loss, ref_grad = torch_ctc(lp, targets, il, tl, blank=4, reduction="sum")
    assert loss == pytest.approx(float(ref_loss), rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_impossible_alignment_as_torch(zero_infinity):
    logits, targets, il, tl = ctc_problem(16)
    lp = log_softmax(logits)
    targets[3, :2] = [3, 3]
    il[3] = 2  # two steps cannot hold "3 _ 3"
    loss, grad = ctc_loss(lp, targets, il, tl, reduction="none", zero_infinity=zero_infinity)
    ref_loss, ref_grad = torch_ctc(
        lp, targets, il, tl, reduction="none", zero_infinity=zero_infinity
    )
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-13, equal_nan=True)
    assert loss[3] == (0.0 if zero_infinity else np.inf)
    assert np.isnan(grad[:2, 3]).all() != zero_infinity
    mean, _ = ctc_loss(lp, targets, il, tl, reduction="mean", zero_infinity=zero_infinity)
    ref_mean, _ = torch_ctc(lp, targets, il, tl, reduction="mean", zero_infinity=zero_infinity)
    assert mean == pytest.approx(float(ref_mean), rel=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_ctc_gradient_matches_finite_differences(reduction):
    """Through log_softmax: the returned gradient is the one with respect to the logits."""
    logits, targets, il, tl = ctc_problem(17, T=6, B=3, C=4, S=3)
    il, tl = np.array([6, 4, 5]), np.array([3, 2, 0])
    targets[0] = [1, 1, 2]

    def f(z):
        return ctc_loss(log_softmax(z), targets, il, tl, reduction=reduction)[0]

    _, grad = ctc_loss(log_softmax(logits), targets, il, tl, reduction=reduction)
    np.testing.assert_allclose(grad, numerical_grad(f, logits.copy()), rtol=1e-6, atol=1e-8)
    # minus exp(log_probs): the derivative with respect to log_probs as free variables
    lp = log_softmax(logits)
    scale = np.ones(3) if reduction == "sum" else 1.0 / (3 * np.maximum(tl, 1))
    steps = np.arange(6)[:, None, None] < il[None, :, None]
    free = grad - np.where(steps, np.exp(lp) * scale[..., None], 0)
    num = numerical_grad(lambda x: ctc_loss(x, targets, il, tl, reduction=reduction)[0], lp.copy())
    np.testing.assert_allclose(free, num, rtol=1e-6, atol=1e-8)


def test_ctc_padded_steps_and_labels_contribute_nothing():
    logits, targets, il, tl = ctc_problem(18)
    lp = log_softmax(logits)
    loss, grad = ctc_loss(lp, targets, il, tl, reduction="none")
    for b in range(len(il)):
        assert not grad[il[b] :, b].any()
    lp2, targets2 = lp.copy(), targets.copy()
    for b in range(len(il)):
        lp2[il[b] :, b] = np.random.default_rng(b).normal(size=lp2[il[b] :, b].shape)
        targets2[b, tl[b] :] = 0  # padding labels, even the blank
    loss2, grad2 = ctc_loss(lp2, targets2, il, tl, reduction="none")
    np.testing.assert_array_equal(loss2, loss)
    np.testing.assert_array_equal(grad2, grad)
    # one sequence alone gives the same loss as in the batch
    alone, _ = ctc_loss(lp[: il[1], 1:2], targets[1:2], il[1:2], tl[1:2], reduction="none")
    assert alone[0] == loss[1]


def test_ctc_float32_keeps_dtype():
    logits, targets, il, tl = ctc_problem(19)
    lp = log_softmax(logits)
    loss32, grad32 = ctc_loss(lp.astype(np.float32), targets, il, tl)
    loss64, grad64 = ctc_loss(lp, targets, il, tl)
    assert grad32.dtype == np.float32 and loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(grad32, grad64, atol=1e-6)


def test_ctc_errors():
    logits, targets, il, tl = ctc_problem(20)
    lp = log_softmax(logits)
    with pytest.raises(InputError, match="ctc_loss: expected target_lengths <= input_lengths"):
        ctc_loss(lp, targets, il, np.array([4, 3, 6, 2]))
    with pytest.raises(InputError, match=r"ctc_loss: expected target labels in \[0, 6\) other"):
        ctc_loss(lp, np.zeros_like(targets), il, tl)
    with pytest.raises(ShapeError, match="ctc_loss: expected concatenated targets of length"):
        ctc_loss(lp, targets.ravel(), il, tl)
    with pytest.raises(ShapeError, match=r"ctc_loss: expected targets \(4, S >= 4\)"):
        ctc_loss(lp, targets[:, :2], il, tl)
    with pytest.raises(ShapeError, match="ctc_loss: expected input_lengths of 4 integers"):
        ctc_loss(lp, targets, il[:3], tl)
    with pytest.raises(InputError, match=r"ctc_loss: expected input_lengths in \[1, 12\]"):
        ctc_loss(lp, targets, il + 1, tl)
    with pytest.raises(InputError, match="ctc_loss: expected reduction 'none', 'sum' or 'mean'"):
        ctc_loss(lp, targets, il, tl, reduction="max")
    with pytest.raises(ShapeError, match=r"ctc_loss: expected log_probs \(T, B, C\)"):
        ctc_loss(lp[0], targets, il, tl)


# -- decoders -----------------------------------------------------------------------------------
def test_greedy_and_beam_decode():
    # blank 0; steps: a a _ a b b _ (length 7) -> "a a b"; padding past the length is ignored
    path = [1, 1, 0, 1, 2, 2, 0, 2]
    lp = np.log(np.full((8, 1, 3), 0.05))
    for t, c in enumerate(path):
        lp[t, 0, c] = np.log(0.9)
    assert ctc_greedy_decode(lp, np.array([7])) == [[1, 1, 2]]
    assert ctc_beam_decode(lp, np.array([7]), beam=4) == [[1, 1, 2]]
    assert ctc_greedy_decode(lp) == [[1, 1, 2, 2]]


def test_beam_decode_beats_best_path_when_the_best_path_is_not_the_best_label():
    # P(_) = 0.4, P(a) = 0.35, P(b) = 0.25 at both steps: the best path "_ _" gives "" (0.16),
    # but "a" has paths "a _", "_ a", "a a": 0.35 * 0.4 * 2 + 0.35^2 = 0.4025
    lp = np.log(np.array([[[0.4, 0.35, 0.25]], [[0.4, 0.35, 0.25]]]))
    assert ctc_greedy_decode(lp) == [[]]
    assert ctc_beam_decode(lp, beam=8) == [[1]]
