"""Composition (issue 19): `Sequential`, `Pool`, `Dropout`, `LayerNorm`, `Attention`,
`AttentionPool`: central finite differences in float64, parity with PyTorch, behaviour, errors."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from numeric import numeric_grad
from rnnkit import (
    Attention,
    AttentionPool,
    Dropout,
    Embedding,
    InputError,
    LayerNorm,
    Linear,
    Pool,
    Sequential,
    ShapeError,
)

LENGTHS = np.array([4, 1, 3])  # T = 4, B = 3: one full, one of a single step, one padded


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


@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_pool_meanmax_is_the_mean_then_the_max(lengths):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 5))
    pool = Pool("meanmax")
    w = rng.standard_normal((3, 10))
    check_module(
        pool, x.copy(), w, lambda x: pool(x, lengths), lambda x: pool.forward_train(x, lengths)
    )  # (finite differences move x by rounding: the checks below read an untouched copy)
    y = pool(x, lengths)
    assert y.shape == (3, 10)
    np.testing.assert_array_equal(y[:, :5], Pool("mean")(x, lengths))
    np.testing.assert_array_equal(y[:, 5:], Pool("max")(x, lengths))
    _, backward = pool.forward_train(x, lengths)
    _, back_mean = Pool("mean").forward_train(x, lengths)
    _, back_max = Pool("max").forward_train(x, lengths)
    np.testing.assert_allclose(
        backward(w), back_mean(w[:, :5]) + back_max(w[:, 5:]), rtol=0, atol=1e-15
    )


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
    both = torch.cat([mean, mx], dim=1).numpy()
    np.testing.assert_allclose(Pool("meanmax")(x, LENGTHS), both, atol=1e-12)


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


# -- Dropout ------------------------------------------------------------------------------------
def test_dropout_eval_is_identity_and_inference_never_drops():
    x = np.random.default_rng(7).standard_normal((5, 4, 6)).astype(np.float32)
    drop = Dropout(0.5, seed=0)
    np.testing.assert_array_equal(drop(x), x)
    model = Sequential(Linear(6, 6, seed=1), drop).eval()
    assert drop.training is False
    y, backward = model.forward_train(x)
    np.testing.assert_array_equal(y, model[0](x))
    model.train()
    assert drop.training is True
    assert not np.array_equal(model.forward_train(x)[0], model[0](x))


def test_dropout_variational_mask_is_the_same_at_every_step():
    x = np.ones((6, 5, 8))
    y, backward = Dropout(0.4, variational=True, seed=1).forward_train(x)
    assert y.dtype == np.float64
    assert set(np.unique(y)) <= {0.0, 1 / 0.6}
    assert (y == y[0]).all()  # one mask per sequence, shared over time
    assert (y[0] == 0).any() and (y[0] != 0).any()
    np.testing.assert_array_equal(backward(np.full_like(x, 2.0)), 2 * y)  # same mask back


@pytest.mark.parametrize("variational", [False, True])
def test_dropout_keeps_the_expected_value_like_torch(variational):
    torch = pytest.importorskip("torch")
    x = np.ones((4, 2000, 50))  # 400 000 elements (variational: 100 000 masks)
    y, _ = Dropout(0.3, variational=variational, seed=2).forward_train(x)
    ours_mean, ours_zero = y.mean(), (y == 0).mean()
    t = torch.nn.functional.dropout(torch.ones(4, 2000, 50, dtype=torch.float64), 0.3)
    assert abs(ours_mean - 1.0) < 0.01 and abs(t.mean().item() - 1.0) < 0.01
    assert abs(ours_zero - 0.3) < 0.01 and abs((t == 0).double().mean().item() - 0.3) < 0.01
    assert np.unique(y).tolist() == sorted(set(t.unique().tolist()))


def test_dropout_errors():
    with pytest.raises(InputError, match=r"Dropout: p must lie in \[0, 1\), got 1.0"):
        Dropout(1.0)
    with pytest.raises(ShapeError, match=r"variational dropout expects input of shape \(T, B, F"):
        Dropout(0.1, variational=True).forward_train(np.zeros((3, 4)))


# -- LayerNorm ----------------------------------------------------------------------------------
def test_layernorm_finite_differences():
    rng = np.random.default_rng(8)
    ln = LayerNorm(5, dtype="float64")
    ln.params["weight"][:] = rng.standard_normal(5)
    ln.params["bias"][:] = rng.standard_normal(5)
    x, w = rng.standard_normal((3, 2, 5)), rng.standard_normal((3, 2, 5))
    check_module(ln, x, w, ln, ln.forward_train)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layernorm_matches_torch_values_and_grads(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    x, dy = rng.standard_normal((2, 4, 3, 7)).astype(dtype)
    ln = LayerNorm(7, eps=1e-4, dtype=dtype)
    ln.params["weight"][:] = rng.standard_normal(7)
    ln.params["bias"][:] = rng.standard_normal(7)
    ref = torch.nn.LayerNorm(7, eps=1e-4, dtype=getattr(torch, dtype))
    ref.load_state_dict({k: torch.tensor(v) for k, v in ln.state_dict().items()})
    tx = torch.tensor(x, requires_grad=True)
    ty = ref(tx)
    ty.backward(torch.tensor(dy))
    y, backward = ln.forward_train(x)
    dx = backward(dy)
    tol = {"float32": 1e-5, "float64": 1e-12}[dtype]
    assert y.dtype == np.dtype(dtype) and dx.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=tol * 10)
    for key in ("weight", "bias"):
        np.testing.assert_allclose(ln.grads[key], getattr(ref, key).grad.numpy(), atol=tol * 10)


def test_layernorm_errors():
    with pytest.raises(ShapeError, match=r"LayerNorm: expected input of shape \(\.\.\., 4\), got"):
        LayerNorm(4)(np.zeros((2, 3)))
    with pytest.raises(InputError, match="LayerNorm: eps must be a positive number"):
        LayerNorm(4, eps=0)


# -- Attention ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_finite_differences_with_mask(kind):
    rng = np.random.default_rng(10)
    att = Attention(
        4, 4 if kind == "dot" else 3, kind=kind, attention_size=5, seed=0, dtype="float64"
    )
    K = att.key_size
    q, k = rng.standard_normal((3, 4)), rng.standard_normal((4, 3, K))
    mask = np.arange(4)[:, None] < LENGTHS[None, :]
    wc, wa = rng.standard_normal((3, K)), rng.standard_normal((4, 3))

    def loss():
        c, a = att(q, k, mask=mask)
        return float(np.sum(wc * c) + np.sum(wa * a))

    att.zero_grad()
    (c, a), backward = att.forward_train(q, k, mask=mask)
    dq, dk = backward(wc, wa)
    np.testing.assert_allclose(dq, numeric_grad(loss, q), atol=1e-7)
    np.testing.assert_allclose(dk, numeric_grad(loss, k), atol=1e-7)
    for key, p in att.named_parameters().items():
        np.testing.assert_allclose(att.grads[key], numeric_grad(loss, p), atol=1e-7)
    assert (a[~mask] == 0).all() and (dk[~mask] == 0).all()  # masked: weight exactly 0
    np.testing.assert_allclose(a.sum(axis=0), 1.0)
    (c2, a2), _ = att.forward_train(q, k, lengths=LENGTHS)  # lengths make the same mask
    np.testing.assert_array_equal(a2, a)


def test_attention_pool_finite_differences_and_weights():
    rng = np.random.default_rng(11)
    pool = AttentionPool(5, 3, seed=0, dtype="float64")
    x, w = rng.standard_normal((4, 3, 5)), rng.standard_normal((3, 5))
    check_module(pool, x, w, lambda x: pool(x, LENGTHS), lambda x: pool.forward_train(x, LENGTHS))
    a = pool.last_weights
    assert a.shape == (4, 3) and (a[1:, 1] == 0).all() and a[0, 1] == 1.0


def test_attention_errors():
    with pytest.raises(InputError, match="Attention: kind must be one of"):
        Attention(3, 3, kind="cosine")
    with pytest.raises(InputError, match="kind 'dot' needs query_size == key_size, got 3 and 4"):
        Attention(3, 4, kind="dot")
    att = Attention(3, 4)
    with pytest.raises(ShapeError, match=r"Attention: expected query of shape \(2, 3\), got"):
        att(np.zeros((2, 5)), np.zeros((6, 2, 4)))
    with pytest.raises(InputError, match="mask has no valid step for sequence 1"):
        att(np.zeros((2, 3)), np.zeros((6, 2, 4)), mask=np.eye(6, 2, dtype=bool) * [1, 0] > 0)


# -- composition: a graph wired from closures, and every module saved and loaded -----------------
class AttentiveClassifier(rnnkit.Module):
    """The pattern in `rnnkit.layers.sequential`'s docstring: no backward math of its own."""

    def __init__(self):
        super().__init__()
        self.encoder = Sequential(
            Embedding(7, 3, seed=0, dtype="float64"), rnnkit.LSTM(3, 4, seed=1, dtype="float64")
        )
        self.attend = Attention(4, 4, kind="general", seed=2, dtype="float64")
        self.head = Linear(4, 2, seed=3, dtype="float64")
        self.children = {"encoder": self.encoder, "attend": self.attend, "head": self.head}

    def __call__(self, ids, lengths):
        keys = self.encoder(ids, lengths)
        context, _ = self.attend(keys[-1], keys, lengths=lengths)
        return self.head(context)

    def forward_train(self, ids, lengths):
        keys, back_enc = self.encoder.forward_train(ids, lengths)  # (T, B, H)
        (context, _), back_att = self.attend.forward_train(keys[-1], keys, lengths=lengths)
        logits, back_head = self.head.forward_train(context)

        def backward(dlogits):
            dquery, dkeys = back_att(back_head(dlogits))
            dkeys[-1] += dquery  # keys[-1] was used twice: gradients add
            return back_enc(dkeys)

        return logits, backward


def test_graph_from_closures_finite_differences():
    model = AttentiveClassifier()
    ids = np.random.default_rng(12).integers(0, 7, (4, 3))
    w = np.random.default_rng(13).standard_normal((3, 2))
    check_module(
        model,
        ids,
        w,
        lambda ids: model(ids, LENGTHS),
        lambda ids: model.forward_train(ids, LENGTHS),
    )


def test_every_new_module_round_trips_through_save_and_load(tmp_path):
    model = Sequential(
        Linear(3, 6, seed=0),
        LayerNorm(6),
        Dropout(0.2, variational=True),
        rnnkit.LSTM(6, 4, seed=1),
        AttentionPool(4, 5, seed=2),
    )
    rnnkit.save(model, tmp_path / "m.safetensors")
    back = rnnkit.load(tmp_path / "m.safetensors")
    assert back.config == model.config
    x = np.random.default_rng(14).standard_normal((4, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(back(x, LENGTHS), model(x, LENGTHS))
    att = Attention(3, 4, kind="general", seed=3, dtype="float64")
    rnnkit.save(att, tmp_path / "a.safetensors")
    assert rnnkit.load(tmp_path / "a.safetensors").config == att.config


def test_time_distributed_chain_finite_differences():
    """Linear and LayerNorm on (T, B, F) act at every step; the chain ends in attention pooling."""
    model = Sequential(
        Linear(3, 5, seed=0, dtype="float64"),
        LayerNorm(5, dtype="float64"),
        Dropout(0.5, variational=True, seed=1),
        rnnkit.LSTM(5, 4, seed=2, dtype="float64"),
        AttentionPool(4, 3, seed=3, dtype="float64"),
        Linear(4, 2, seed=4, dtype="float64"),
    ).eval()  # dropout off, so the finite differences see the same function
    x = np.random.default_rng(15).standard_normal((4, 3, 3))
    w = np.random.default_rng(16).standard_normal((3, 2))
    check_module(
        model, x, w, lambda x: model(x, LENGTHS), lambda x: model.forward_train(x, LENGTHS)
    )


@pytest.mark.parametrize(
    "module",
    [
        Pool("max"),
        Pool("meanmax"),
        Dropout(0.3, variational=True, seed=0),
        LayerNorm(4),
        AttentionPool(4, 3, seed=0),
    ],
)
def test_float32_stays_float32(module):
    x = np.random.default_rng(17).standard_normal((5, 2, 4)).astype(np.float32)
    y, backward = module.forward_train(x)
    dx = backward(np.ones_like(y))
    assert y.dtype == np.float32 and dx.dtype == np.float32
    att = Attention(4, 4, kind="additive", seed=0)
    (c, a), back = att.forward_train(x[0], x)
    dq, dk = back(np.ones_like(c))
    assert {c.dtype, a.dtype, dq.dtype, dk.dtype} == {np.dtype(np.float32)}
