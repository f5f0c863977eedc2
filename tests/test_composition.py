"""Composition (issue 19): `Sequential`, `Pool`, `Dropout`, `LayerNorm`, `Attention`,
`AttentionPool`: central finite differences in float64, parity with PyTorch, behaviour, errors."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit import Embedding, InputError, Linear, Pool, Sequential, ShapeError

LENGTHS = np.array([4, 1, 3])  # T = 4, B = 3: one full, one of a single step, one padded


def numeric_grad(f, arr: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``f()`` with respect to ``arr`` (changed in place)."""
    g = np.zeros_like(arr)
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + eps
        up = f()
        arr[i] = old - eps
        down = f()
        arr[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


def check_module(module, x, weight, call, run_train, atol=1e-7):
    """Finite differences of ``sum(weight * call(x))`` against the analytic backward: the
    input gradient and every parameter gradient."""
    module.zero_grad()
    y, backward = run_train(x)
    dx = backward(weight)

    def loss():
        return float(np.sum(weight * call(x)))

    if dx is not None:
        np.testing.assert_allclose(dx, numeric_grad(loss, x), atol=atol, rtol=1e-5)
    grads = module.named_grads()
    for key, p in module.named_parameters().items():
        np.testing.assert_allclose(grads[key], numeric_grad(loss, p), atol=atol, rtol=1e-5)
    return y


# -- Pool ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["last", "mean", "max"])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_pool_finite_differences(mode, lengths):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5))
    pool = Pool(mode)
    w = rng.standard_normal((3, 5))
    y = check_module(
        pool, x, w, lambda x: pool(x, lengths), lambda x: pool.forward_train(x, lengths)
    )
    assert y.shape == (3, 5) and y.dtype == np.float64


def test_pool_values_match_torch_masked_ops():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 5))
    t = torch.tensor(x)
    mask = torch.arange(4)[:, None] < torch.tensor(LENGTHS)[None, :]  # (T, B)
    mean = (t * mask[..., None]).sum(0) / mask.sum(0)[:, None]
    mx = t.masked_fill(~mask[..., None], float("-inf")).max(0).values
    last = t[torch.tensor(LENGTHS) - 1, torch.arange(3)]
    np.testing.assert_allclose(Pool("mean")(x, LENGTHS), mean.numpy(), atol=1e-12)
    np.testing.assert_allclose(Pool("max")(x, LENGTHS), mx.numpy(), atol=0)
    np.testing.assert_allclose(Pool("last")(x, LENGTHS), last.numpy(), atol=0)


def test_pool_last_bidirectional_equals_h_n():
    lstm = rnnkit.LSTM(3, 4, bidirectional=True, seed=0, dtype="float64")
    x = np.random.default_rng(2).standard_normal((4, 3, 3))
    y, (h_n, _) = lstm(x, lengths=LENGTHS)
    pooled = Pool("last", bidirectional=True)(y, LENGTHS)
    np.testing.assert_allclose(pooled, np.concatenate([h_n[0], h_n[1]], axis=1), atol=1e-12)


def test_pool_errors():
    with pytest.raises(InputError, match="Pool: mode must be one of"):
        Pool("sum")
    with pytest.raises(ShapeError, match=r"Pool: expected input of shape \(T, B, F\), got"):
        Pool("mean")(np.zeros((3, 4)))
    with pytest.raises(InputError, match=r"Pool: lengths must lie in \[1, 4\]"):
        Pool("mean")(np.zeros((4, 3, 2)), [0, 1, 2])


# -- Sequential ---------------------------------------------------------------------------------
def small_classifier(dtype="float64", seed=0):
    return Sequential(
        Embedding(7, 3, seed=seed, dtype=dtype),
        rnnkit.LSTM(3, 4, bidirectional=True, seed=seed + 1, dtype=dtype),
        Pool("mean"),
        Linear(8, 2, seed=seed + 2, dtype=dtype),
    )


def test_sequential_finite_differences_with_lengths():
    model = small_classifier()
    ids = np.random.default_rng(3).integers(0, 7, (4, 3))
    w = np.random.default_rng(4).standard_normal((3, 2))
    y = check_module(
        model,
        ids,
        w,
        lambda ids: model(ids, LENGTHS),
        lambda ids: model.forward_train(ids, LENGTHS),
    )
    assert y.shape == (3, 2)
    assert list(model.state_dict())[:2] == ["0.weight", "1.weight_ih_l0"]


def test_sequential_inference_equals_training_forward_and_hand_composition():
    model = small_classifier(dtype="float32")
    ids = np.random.default_rng(5).integers(0, 7, (4, 3))
    y_train, _ = model.forward_train(ids, LENGTHS)
    h, _ = model[1](model[0](ids), lengths=LENGTHS)
    by_hand = model[3](model[2](h, LENGTHS))
    np.testing.assert_allclose(model(ids, LENGTHS), by_hand, rtol=1e-6)
    np.testing.assert_allclose(y_train, by_hand, rtol=1e-6)
    assert y_train.dtype == np.float32


def test_sequential_save_load_round_trip(tmp_path):
    model = small_classifier(dtype="float32", seed=10)
    rnnkit.save(model, tmp_path / "m.safetensors")
    back = rnnkit.load(tmp_path / "m.safetensors")
    assert isinstance(back, Sequential) and back.config == model.config
    ids = np.random.default_rng(6).integers(0, 7, (4, 3))
    np.testing.assert_array_equal(back(ids, LENGTHS), model(ids, LENGTHS))


def test_sequential_errors():
    with pytest.raises(InputError, match="Sequential: expected at least one module"):
        Sequential()
    with pytest.raises(InputError, match="got int at index 1"):
        Sequential(Linear(2, 2), 3)
    with pytest.raises(InputError, match="has batch_first=True"):
        Sequential(rnnkit.GRU(2, 2, batch_first=True))
