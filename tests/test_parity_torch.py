"""Parity with torch.nn.RNN/LSTM/GRU and the *Cell classes: values and every gradient."""

from __future__ import annotations

import numpy as np
import pytest

from parity import MODES, Config, random_config, run_cell, run_config

TOL = {"float64": 1e-9, "float32": 1e-4}
N_RANDOM = 60  # per dtype; `make parity` sweeps many more


def _configs(dtype: str) -> list[Config]:
    rng = np.random.default_rng(2026 if dtype == "float64" else 2027)
    return [random_config(rng, dtype) for _ in range(N_RANDOM)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_random_configurations_match_torch(dtype):
    worst, where = 0.0, None
    for i, cfg in enumerate(_configs(dtype)):
        errs = run_config(cfg, seed=i)
        key = max(errs, key=errs.get)
        if errs[key] > worst:
            worst, where = errs[key], (cfg, key)
    assert worst <= TOL[dtype], f"worst relative error {worst:.3g} at {where}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bias", [True, False])
def test_every_mode_bidirectional_stack_with_unsorted_lengths(mode, bias):
    cfg = Config(mode, 5, 4, 3, bias, False, True, 7, 4, True, True, "float64")
    errs = run_config(cfg, seed=1)
    # every parameter of every layer and direction was compared
    n_keys = 3 * 2 * (4 if bias else 2)
    assert sum(k.startswith("dweight") or k.startswith("dbias") for k in errs) == n_keys
    assert max(errs.values()) <= TOL["float64"], errs


@pytest.mark.parametrize("mode", MODES)
def test_batch_first_without_state(mode):
    cfg = Config(mode, 3, 6, 2, True, True, False, 6, 3, False, False, "float32")
    assert max(run_config(cfg, seed=2).values()) <= TOL["float32"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cells_match_torch(mode, dtype):
    for seed in range(4):
        errs = run_cell(mode, dtype, seed)
        assert max(errs.values()) <= TOL[dtype], (seed, errs)


def test_parity_check_detects_a_wrong_weight():
    """The comparison is not vacuous: a changed weight is caught."""
    import torch

    import rnnkit

    layer = rnnkit.GRU(3, 4, seed=0, dtype="float64")
    module = rnnkit.to_torch(layer)
    layer.params["weight_hh_l0"][0, 0] += 1e-3
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    ours, _ = layer(x)
    theirs, _ = module(torch.tensor(x))
    assert np.max(np.abs(ours - theirs.detach().numpy())) > 1e-7
