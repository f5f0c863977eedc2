"""Optimizers, clipping and schedules: parity with torch.optim, resume, in-place updates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnkit.errors import CheckpointError, InputError, ShapeError
from rnnkit.optim import SGD, Adagrad, Adam, AdamW, RMSprop, clip_grad_norm
from rnnkit.schedules import ConstantLR, CosineLR, StepLR, WarmupLR, apply_schedule

SHAPES = {"w": (3, 4), "b": (4,), "layer.v": (2, 2, 3)}


class Stub:
    """The smallest Module-like object: live parameter and gradient dicts."""

    def __init__(self, seed: int = 0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        self.params = {k: rng.normal(size=s).astype(dtype) for k, s in SHAPES.items()}
        self.grads = {k: np.zeros(s, dtype=dtype) for k, s in SHAPES.items()}

    def named_parameters(self):
        return dict(self.params)

    def named_grads(self):
        return dict(self.grads)


def gradient_sequence(n: int = 10, seed: int = 1):
    rng = np.random.default_rng(seed)
    # varied scales so that eps and weight decay matter in some steps
    steps = []
    for _ in range(n):
        steps.append(
            {k: rng.normal(size=s) * 10.0 ** rng.integers(-3, 2) for k, s in SHAPES.items()}
        )
    return steps


def set_grads(model: Stub, grads: dict) -> None:
    for k, g in grads.items():
        model.grads[k][...] = g  # in place, as layers accumulate


CASES = [
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    (Adam, torch.optim.Adam, dict()),
    (Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (
        Adam,
        torch.optim.Adam,
        dict(lr=0.01, betas=(0.3, 0.6)),
    ),  # torch.lerp_ takes its other rounding branch
    (AdamW, torch.optim.AdamW, dict()),
    (AdamW, torch.optim.AdamW, dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.3)),
    (RMSprop, torch.optim.RMSprop, dict()),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.5)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.01, centered=True, weight_decay=0.05)),
    (RMSprop, torch.optim.RMSprop, dict(lr=0.001, alpha=0.4, momentum=0.9, centered=True)),
    (Adagrad, torch.optim.Adagrad, dict()),
    (Adagrad, torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, eps=1e-6)),
    (Adagrad, torch.optim.Adagrad, dict(lr=0.1, initial_accumulator_value=0.5)),
]


def case_id(case):
    return case[0].__name__ + "-" + "-".join(f"{k}={v}" for k, v in case[2].items())


@pytest.mark.parametrize("ours, theirs, kwargs", CASES, ids=[case_id(c) for c in CASES])
def test_optimizer_matches_torch(ours, theirs, kwargs):
    model = Stub()
    ref = {k: torch.nn.Parameter(torch.tensor(v.copy())) for k, v in model.params.items()}
    opt = ours(model, **kwargs)
    ref_opt = theirs(list(ref.values()), foreach=False, **kwargs)
    identities = {k: id(v) for k, v in model.params.items()}
    before = {k: v.copy() for k, v in model.params.items()}

    for grads in gradient_sequence():
        set_grads(model, grads)
        for k, p in ref.items():
            p.grad = torch.tensor(grads[k])
        opt.step()
        ref_opt.step()
        for k, p in ref.items():
            np.testing.assert_allclose(model.params[k], p.detach().numpy(), rtol=1e-12, atol=0)

    # updated in place, and really moved
    assert {k: id(v) for k, v in model.params.items()} == identities
    assert all(not np.allclose(model.params[k], before[k]) for k in before)


def test_lr_changed_between_steps_matches_torch():
    model = Stub()
    ref = [torch.nn.Parameter(torch.tensor(v.copy())) for v in model.params.values()]
    opt, ref_opt = Adam(model, lr=0.01), torch.optim.Adam(ref, lr=0.01, foreach=False)
    schedule = CosineLR(0.01, total_steps=8, warmup_steps=3)
    for step, grads in enumerate(gradient_sequence()):
        set_grads(model, grads)
        for p, g in zip(ref, grads.values(), strict=True):
            p.grad = torch.tensor(g)
        ref_opt.param_groups[0]["lr"] = apply_schedule(opt, schedule, step)
        opt.step()
        ref_opt.step()
    for ours, theirs in zip(model.params.values(), ref, strict=True):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12, atol=0)


def test_tuple_params_and_float32():
    model = Stub(dtype=np.float32)
    opt = SGD((model.params, model.grads), lr=0.5, momentum=0.9)
    w = model.params["w"]
    set_grads(model, {k: np.ones(s) for k, s in SHAPES.items()})
    expected = w - 0.5
    opt.step()
    assert w.dtype == np.float32 and model.params["w"] is w
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    assert opt.buffers["momentum_buffer.w"].dtype == np.float32


@pytest.mark.parametrize("ours, theirs, kwargs", CASES, ids=[case_id(c) for c in CASES])
def test_state_dict_resume_is_exact(ours, theirs, kwargs):
    grads = gradient_sequence()
    straight = Stub()
    opt = ours(straight, **kwargs)
    for g in grads:
        set_grads(straight, g)
        opt.step()

    # run half, save (params + optimizer state), rebuild everything, load, run the rest
    first = Stub()
    opt1 = ours(first, **kwargs)
    for g in grads[:4]:
        set_grads(first, g)
        opt1.step()
    saved_params = {k: v.copy() for k, v in first.params.items()}
    saved_state = opt1.state_dict()
    assert isinstance(saved_state["step"], int) and isinstance(saved_state["lr"], float)

    resumed = Stub(seed=99)  # different initial values, overwritten below
    for k, v in saved_params.items():
        resumed.params[k][...] = v
    opt2 = ours(resumed, **{**kwargs, "lr": 123.0})  # the saved lr must win
    opt2.load_state_dict(saved_state)
    assert opt2.lr == opt1.lr and opt2.t == 4
    for g in grads[4:]:
        set_grads(resumed, g)
        opt2.step()
    for k in SHAPES:
        np.testing.assert_array_equal(resumed.params[k], straight.params[k])


def test_state_dict_is_a_copy_and_load_checks_it():
    model = Stub()
    opt = Adam(model)
    set_grads(model, gradient_sequence(1)[0])
    opt.step()
    state = opt.state_dict()
    assert state["optimizer"] == "Adam" and state["step"] == 1
    assert set(state["buffers"]) == {f"{b}.{k}" for b in ("exp_avg", "exp_avg_sq") for k in SHAPES}
    opt.step()
    assert not np.array_equal(state["buffers"]["exp_avg.w"], opt.buffers["exp_avg.w"])

    with pytest.raises(CheckpointError, match="AdamW: expected a AdamW state, got 'Adam'"):
        AdamW(model).load_state_dict(state)
    bad = {**state, "buffers": {**state["buffers"], "exp_avg.w": np.zeros((4, 3))}}
    with pytest.raises(CheckpointError, match=r"Adam: buffer 'exp_avg.w' expected shape \(3, 4\)"):
        opt.load_state_dict(bad)
    missing = {**state, "buffers": {k: v for k, v in state["buffers"].items() if k != "exp_avg.b"}}
    with pytest.raises(CheckpointError, match="Adam: missing buffer 'exp_avg.b'"):
        opt.load_state_dict(missing)


def test_hyperparameter_errors():
    model = Stub()
    with pytest.raises(InputError, match="SGD: expected lr >= 0, got -0.1"):
        SGD(model, lr=-0.1)
    with pytest.raises(InputError, match="SGD: nesterov requires momentum > 0"):
        SGD(model, lr=0.1, nesterov=True)
    with pytest.raises(InputError, match=r"Adam: expected betas\[1\] in \[0, 1\), got 1.0"):
        Adam(model, betas=(0.9, 1.0))
    with pytest.raises(InputError, match="AdamW: expected eps > 0, got 0"):
        AdamW(model, eps=0)
    with pytest.raises(InputError, match="RMSprop: expected alpha in"):
        RMSprop(model, alpha=1.5)
    with pytest.raises(InputError, match="Adagrad: expected lr_decay >= 0"):
        Adagrad(model, lr_decay=-1)
    with pytest.raises(InputError, match="SGD: expected a module"):
        SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ShapeError, match="SGD: expected gradient 'a' of shape"):
        SGD(({"a": np.zeros(3)}, {"a": np.zeros(4)}), lr=0.1)
    with pytest.raises(ShapeError, match="SGD: key 'b' is in only one"):
        SGD(({"a": np.zeros(3)}, {"a": np.zeros(3), "b": np.zeros(1)}), lr=0.1)


# -- clipping -----------------------------------------------------------------------------------
@pytest.mark.parametrize("max_norm", [0.5, 5.0, 1e3])
def test_clip_grad_norm_matches_torch(max_norm):
    model = Stub()
    set_grads(model, gradient_sequence(1, seed=3)[0])
    ref = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in SHAPES.values()]
    for p, g in zip(ref, model.grads.values(), strict=True):
        p.grad = torch.tensor(g.copy())
    before = {k: g.copy() for k, g in model.grads.items()}

    norm = clip_grad_norm(model, max_norm)
    ref_norm = torch.nn.utils.clip_grad_norm_(ref, max_norm)
    assert norm == pytest.approx(ref_norm.item(), rel=1e-12)
    for g, p in zip(model.grads.values(), ref, strict=True):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12)
    if norm <= max_norm:  # under the threshold nothing changes, bit for bit
        for k, g in model.grads.items():
            np.testing.assert_array_equal(g, before[k])
    else:
        total = math.sqrt(sum(float(np.sum(g * g)) for g in model.grads.values()))
        assert total == pytest.approx(max_norm, rel=1e-5)


def test_clip_grad_norm_dict_float32_and_nonfinite():
    grads = {"a": np.full(4, 3.0, dtype=np.float32), "b": np.full(1, 8.0, dtype=np.float32)}
    assert clip_grad_norm(grads, 1.0) == pytest.approx(10.0)  # sqrt(4 * 9 + 64)
    assert grads["a"].dtype == np.float32
    np.testing.assert_allclose(grads["a"], 0.3, rtol=1e-5)

    bad = {"a": np.array([1.0, np.inf]), "b": np.array([2.0])}
    assert math.isinf(clip_grad_norm(bad, 1.0))
    np.testing.assert_array_equal(bad["b"], [2.0])  # left for the caller to handle
    assert math.isnan(clip_grad_norm({"a": np.array([np.nan])}, 1.0))
    with pytest.raises(InputError, match="clip_grad_norm: expected max_norm > 0"):
        clip_grad_norm(grads, 0.0)


# -- schedules ----------------------------------------------------------------------------------
def test_constant_and_step_lr():
    assert [ConstantLR(0.3)(s) for s in (0, 10, 10**6)] == [0.3, 0.3, 0.3]
    sched = StepLR(1.0, step_size=3, gamma=0.5)
    assert [sched(s) for s in range(7)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_cosine_lr():
    lr, min_lr, warm, total = 0.1, 0.01, 4, 20
    sched = CosineLR(lr, total, min_lr=min_lr, warmup_steps=warm)
    warmup = [sched(s) for s in range(warm + 1)]
    assert warmup[0] == 0.0 and warmup[-1] == pytest.approx(lr)
    assert all(a < b for a, b in zip(warmup, warmup[1:], strict=False))
    assert sched(2) == pytest.approx(lr * 2 / warm)
    mid = warm + (total - warm) // 2  # half way through the decay: cos(pi/2) = 0
    assert sched(mid) == pytest.approx((lr + min_lr) / 2)
    q = (7 - warm) / (total - warm)
    assert sched(7) == pytest.approx(min_lr + (lr - min_lr) * (1 + math.cos(math.pi * q)) / 2)
    decay = [sched(s) for s in range(warm, total + 1)]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))
    assert sched(total) == min_lr and sched(total + 100) == min_lr
    assert CosineLR(1.0, 10)(0) == 1.0  # no warm-up: starts at lr
    with pytest.raises(InputError, match="CosineLR: expected warmup_steps"):
        CosineLR(1.0, 10, warmup_steps=10)
    with pytest.raises(InputError, match="CosineLR: expected min_lr"):
        CosineLR(1.0, 10, min_lr=2.0)


def test_cosine_lr_given_the_progress_of_a_time_budget():
    sched = CosineLR(0.1, min_lr=0.01, warmup_steps=4)  # no total_steps: the Trainer's minutes
    assert sched(2, 0.9) == pytest.approx(0.05)  # the warm-up counts steps, whatever the time
    assert sched(10, 0.5) == pytest.approx(0.055)
    assert sched(10, 1.5) == 0.01 and sched(4, -0.1) == pytest.approx(0.1)
    with pytest.raises(InputError, match="CosineLR: without total_steps, expected the progress"):
        sched(10)
    by_steps = CosineLR(0.1, 20, min_lr=0.01, warmup_steps=4)
    assert [by_steps(s) for s in range(25)] == [sched(s, (s - 4) / 16) for s in range(25)]


def test_warmup_lr_and_apply_schedule():
    sched = WarmupLR(0.2, warmup_steps=4)
    assert [sched(s) for s in range(6)] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.2])
    assert WarmupLR(0.2, 0)(0) == 0.2
    opt = SGD(Stub(), lr=1.0)
    assert apply_schedule(opt, sched, 2) == pytest.approx(0.1)
    assert opt.lr == pytest.approx(0.1)
