"""Run one random configuration through rnnkit and torch.nn; report the worst relative error.

Shared by the parity tests and ``scripts/parity_sweep.py``. Relative error of an array is
``max|a - b| / max(max|b|, 1e-12)`` (normwise, so values near zero do not inflate it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import rnnkit

MODES = ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")


@dataclass(frozen=True)
class Config:
    mode: str
    input_size: int
    hidden_size: int
    num_layers: int
    bias: bool
    batch_first: bool
    bidirectional: bool
    T: int
    B: int
    lengths: bool  # variable lengths through pack_padded_sequence, unsorted
    with_state: bool  # pass an initial state
    dtype: str


def random_config(rng: np.random.Generator, dtype: str) -> Config:
    return Config(
        mode=str(rng.choice(MODES)),
        input_size=int(rng.integers(1, 9)),
        hidden_size=int(rng.integers(1, 9)),
        num_layers=int(rng.integers(1, 4)),
        bias=bool(rng.random() < 0.8),
        batch_first=bool(rng.random() < 0.5),
        bidirectional=bool(rng.random() < 0.5),
        T=int(rng.integers(1, 9)),
        B=int(rng.integers(1, 6)),
        lengths=bool(rng.random() < 0.5),
        with_state=bool(rng.random() < 0.6),
        dtype=dtype,
    )


def make_layer(cfg: Config, seed: int) -> rnnkit.Recurrent:
    kw = dict(
        num_layers=cfg.num_layers,
        bias=cfg.bias,
        batch_first=cfg.batch_first,
        bidirectional=cfg.bidirectional,
        seed=seed,
        dtype=cfg.dtype,
    )
    if cfg.mode.startswith("RNN"):
        nl = "relu" if cfg.mode == "RNN_RELU" else "tanh"
        return rnnkit.RNN(cfg.input_size, cfg.hidden_size, nonlinearity=nl, **kw)
    cls = rnnkit.LSTM if cfg.mode == "LSTM" else rnnkit.GRU
    return cls(cfg.input_size, cfg.hidden_size, **kw)


def rel_err(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))


def run_config(cfg: Config, seed: int) -> dict[str, float]:
    """Relative errors of outputs, states and every gradient, keyed by what was compared."""
    rng = np.random.default_rng(seed)
    layer = make_layer(cfg, seed)
    np_dtype = np.dtype(cfg.dtype)
    T, B, H = cfg.T, cfg.B, cfg.hidden_size
    LD = cfg.num_layers * (2 if cfg.bidirectional else 1)
    xshape = (B, T, cfg.input_size) if cfg.batch_first else (T, B, cfg.input_size)
    x = rng.standard_normal(xshape).astype(np_dtype)
    lengths = rng.integers(1, T + 1, size=B) if cfg.lengths else None
    n_state = 2 if cfg.mode == "LSTM" else 1
    state = None
    if cfg.with_state:
        parts = [rng.standard_normal((LD, B, H)).astype(np_dtype) for _ in range(n_state)]
        state = tuple(parts) if n_state == 2 else parts[0]

    # rnnkit
    y, hn, backward = layer.forward_train(x, state, lengths)
    dy = rng.standard_normal(y.shape).astype(np_dtype)
    if lengths is not None:  # outputs past a length are zero on both sides; so is their grad
        mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
        dy *= (mask if cfg.batch_first else mask.T)[..., None]
    dparts = [rng.standard_normal((LD, B, H)).astype(np_dtype) for _ in range(n_state)]
    dstate = tuple(dparts) if n_state == 2 else dparts[0]
    dx, dstate0 = backward(dy, dstate)

    # torch
    module = rnnkit.to_torch(layer)
    xt = torch.tensor(x, requires_grad=True)
    st = None
    if state is not None:
        parts_t = [
            torch.tensor(p, requires_grad=True) for p in (state if n_state == 2 else (state,))
        ]
        st = tuple(parts_t) if n_state == 2 else parts_t[0]
    if lengths is not None:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=cfg.batch_first, enforce_sorted=False
        )
        out, hn_t = module(packed, st)
        yt, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=cfg.batch_first, total_length=T
        )
    else:
        yt, hn_t = module(xt, st)
    hn_parts_t = hn_t if n_state == 2 else (hn_t,)
    loss = (yt * torch.tensor(dy)).sum()
    for p, d in zip(hn_parts_t, dparts, strict=True):
        loss = loss + (p * torch.tensor(d)).sum()
    loss.backward()

    errs = {"y": rel_err(y, yt.detach().numpy()), "dx": rel_err(dx, xt.grad.numpy())}
    hn_parts = hn if n_state == 2 else (hn,)
    for i, (a, b) in enumerate(zip(hn_parts, hn_parts_t, strict=True)):
        errs[f"state{i}"] = rel_err(a, b.detach().numpy())
    if state is not None:
        d0 = dstate0 if n_state == 2 else (dstate0,)
        for i, (a, b) in enumerate(zip(d0, parts_t, strict=True)):
            errs[f"dstate{i}"] = rel_err(a, b.grad.numpy())
    tgrads = dict(module.named_parameters())
    for key, g in layer.grads.items():
        errs[f"d{key}"] = rel_err(g, tgrads[key].grad.numpy())
    return errs


def run_cell(mode: str, dtype: str, seed: int) -> dict[str, float]:
    """Parity of one step of RNNCell/LSTMCell/GRUCell with torch's, values and gradients."""
    rng = np.random.default_rng(seed)
    F, H, B = int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 6))
    bias = bool(rng.random() < 0.8)
    if mode.startswith("RNN"):
        cell = rnnkit.RNNCell(F, H, bias, "relu" if mode == "RNN_RELU" else "tanh", seed, dtype)
    elif mode == "LSTM":
        cell = rnnkit.LSTMCell(F, H, bias, seed, dtype)
    else:
        cell = rnnkit.GRUCell(F, H, bias, seed, dtype)
    n = 2 if mode == "LSTM" else 1
    x = rng.standard_normal((B, F)).astype(dtype)
    parts = [rng.standard_normal((B, H)).astype(dtype) for _ in range(n)]
    dparts = [rng.standard_normal((B, H)).astype(dtype) for _ in range(n)]
    state = tuple(parts) if n == 2 else parts[0]
    new, backward = cell.forward_train(x, state)
    dx, dprev = backward(tuple(dparts) if n == 2 else dparts[0])

    module = rnnkit.to_torch(cell)
    xt = torch.tensor(x, requires_grad=True)
    pt = [torch.tensor(p, requires_grad=True) for p in parts]
    out = module(xt, tuple(pt) if n == 2 else pt[0])
    outs = out if n == 2 else (out,)
    loss = sum((o * torch.tensor(d)).sum() for o, d in zip(outs, dparts, strict=True))
    loss.backward()
    errs = {"dx": rel_err(dx, xt.grad.numpy())}
    for i, (a, b) in enumerate(zip(new if n == 2 else (new,), outs, strict=True)):
        errs[f"state{i}"] = rel_err(a, b.detach().numpy())
    for i, (a, b) in enumerate(zip(dprev if n == 2 else (dprev,), pt, strict=True)):
        errs[f"dstate{i}"] = rel_err(a, b.grad.numpy())
    tgrads = dict(module.named_parameters())
    for key, g in cell.grads.items():
        errs[f"d{key}"] = rel_err(g, tgrads[key].grad.numpy())
    return errs
