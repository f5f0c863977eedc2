"""CTC's two paths: the scaled recursions (the fast path) against the log-space ones (the
reference) and PyTorch at speech sizes; the fall-back where scaling cannot hold the numbers; the
feasible band at its edges; threads; `make bench-ctc` end to end. The small-problem parity and
finite-difference checks are in test_losses_masked.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit import ctc
from rnnkit.losses import ctc_loss, log_softmax

F = torch.nn.functional
ROOT = Path(__file__).resolve().parents[1]


def speech(seed: int, T=60, B=6, C=29, S=(8, 20), scale=3.0):
    """Random log-probabilities (T, B, C), padded targets without the blank 0, and lengths."""
    rng = np.random.default_rng(seed)
    lp = log_softmax(rng.normal(scale=scale, size=(T, B, C)))
    il = rng.integers((3 * T) // 4, T + 1, size=B)
    il[0] = T
    tl = rng.integers(S[0], S[1] + 1, size=B)
    targets = rng.integers(1, C, size=(B, S[1]))
    targets[0, 1] = targets[0, 0]  # a repeated label: no skip there
    return lp, targets, il, tl


def scaled_taken(lp, targets, il, tl, blank=0) -> np.ndarray:
    """Per sequence: does the scaled path give an answer (else ctc_loss takes the log-space)?"""
    T, B, C = lp.shape
    width = 2 * targets.shape[1] + 1 + 2 * ctc.O
    out = []
    for b in range(B):
        ext, skip = np.empty(width, dtype=np.int64), np.empty(width)
        ctc._extended(targets.astype(np.int64), b, tl[b], blank, ext, skip)
        scratch = (np.empty((T, C)), np.empty(T), np.empty((T, width)), np.empty(T))
        rows = (np.empty(width), np.empty(width), np.empty(C))
        log_p = ctc._scaled(
            lp, b, il[b], 2 * tl[b] + 1, ext, skip, *scratch, *rows, np.empty(lp.shape), 1.0
        )
        out.append(not np.isnan(log_p))
    return np.array(out)


def both_paths(lp, targets, il, tl, blank=0):
    scale = np.ones(lp.shape[1])
    args = (lp, targets.astype(np.int64), il.astype(np.int64), tl.astype(np.int64), blank, scale)
    return ctc._forward_backward(*args), ctc._forward_backward(*args, log_space=True)


def torch_ctc(lp, targets, il, tl, **kwargs):
    x = torch.tensor(lp, requires_grad=True)
    loss = F.ctc_loss(x, torch.tensor(targets), torch.tensor(il), torch.tensor(tl), **kwargs)
    loss.sum().backward()
    return loss.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("seed,C", [(0, 29), (1, 12), (2, 5)])
def test_scaled_path_equals_log_space_path(seed, C):
    lp, targets, il, tl = speech(seed, T=120, C=C, S=(10, 40))
    assert scaled_taken(lp, targets, il, tl).all()
    (nll, grad), (ref_nll, ref_grad) = both_paths(lp, targets, il, tl)
    np.testing.assert_allclose(nll, ref_nll, rtol=1e-13)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_speech_sizes_match_torch(reduction):
    lp, targets, il, tl = speech(3, T=150, B=8, C=30, S=(10, 50))
    assert scaled_taken(lp, targets, il, tl).all()
    loss, grad = ctc_loss(lp, targets, il, tl, reduction=reduction)
    ref_loss, ref_grad = torch_ctc(lp, targets, il, tl, reduction=reduction)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-10)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-10)


def test_float32_input_gives_the_float64_answer_rounded():
    lp, targets, il, tl = speech(4, T=100, B=5)
    lp32 = lp.astype(np.float32)
    loss, grad = ctc_loss(lp32, targets, il, tl, reduction="sum")
    ref_loss, ref_grad = torch_ctc(lp32.astype(np.float64), targets, il, tl, reduction="sum")
    assert grad.dtype == np.float32
    assert loss == pytest.approx(float(ref_loss), rel=1e-12)  # float64 inside
    np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=6e-8)  # float32's rounding


def test_log_probs_far_apart_fall_back_to_log_space_and_match_torch():
    """Logits of scale 100: alignments hundreds of nats apart, beyond float64's range in one
    row of scaled probabilities; those sequences take the log-space path, and the answer is
    still PyTorch's."""
    lp, targets, il, tl = speech(5, T=80, B=6, C=12, S=(5, 20), scale=100.0)
    taken = scaled_taken(lp, targets, il, tl)
    assert not taken.all()
    loss, grad = ctc_loss(lp, targets, il, tl, reduction="none")
    ref_loss, ref_grad = torch_ctc(lp, targets, il, tl, reduction="none")
    assert np.isfinite(loss).all()
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-10)


def test_no_slack_the_one_path():
    """T_b steps for T_b labels, all different: one alignment, loss = -sum_t lp_t(l_t); with a
    repeat the sequence needs one more step (the blank between), and one step fewer is
    impossible."""
    rng = np.random.default_rng(6)
    lp = log_softmax(rng.normal(size=(6, 3, 5)))
    targets = np.array([[1, 2, 3, 4, 1, 2], [1, 1, 2, 3, 0, 0], [2, 2, 2, 0, 0, 0]])
    il, tl = np.array([6, 5, 4]), np.array([6, 4, 3])
    loss, grad = ctc_loss(lp, targets, il, tl, reduction="none")
    assert loss[0] == pytest.approx(-sum(lp[t, 0, targets[0, t]] for t in range(6)), rel=1e-14)
    one_path = [1, 0, 1, 2, 3]  # "a _ a b c"
    assert loss[1] == pytest.approx(-sum(lp[t, 1, c] for t, c in enumerate(one_path)), rel=1e-14)
    assert loss[2] == np.inf  # "a _ a _ a" needs 5 steps
    np.testing.assert_allclose(grad[:6, 0], np.exp(lp[:, 0]) - np.eye(5)[targets[0]], atol=1e-14)
    ref_loss, ref_grad = torch_ctc(lp, targets, il, tl, reduction="none")
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-13, equal_nan=True)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_threads_give_the_same_bits(tuned, zero_infinity):
    lp, targets, il, tl = speech(7, T=200, B=9, S=(20, 60))
    il[4], tl[4], targets[4, :3] = 3, 3, [5, 5, 6]  # impossible: an infinite loss
    out = {}
    for n in (1, 2):
        tuned(threads=n)
        out[n] = ctc_loss(lp, targets, il, tl, reduction="none", zero_infinity=zero_infinity)
    np.testing.assert_array_equal(out[1][0], out[2][0])
    np.testing.assert_array_equal(out[1][1], out[2][1])
    assert np.isinf(out[2][0][4]) != zero_infinity
    ref_loss, ref_grad = torch_ctc(
        lp, targets, il, tl, reduction="none", zero_infinity=zero_infinity
    )
    np.testing.assert_allclose(out[2][0], ref_loss, rtol=1e-12)
    np.testing.assert_allclose(out[2][1], ref_grad, rtol=1e-6, atol=1e-10, equal_nan=True)


def test_bench_ctc_quick_runs_both_sides(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_ctc.py"),
            "--quick",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "ctc.json").read_text())
    assert set(result["cases"]) == {
        f"{c} | {n}" for c in ("speech T30 B4 C29 S3-8", "digits T20 B4 C12 S2-5") for n in (1, 2)
    }
    for case in result["cases"].values():
        assert set(case["median_seconds"]) == {"rnnkit", "torch"}
        assert all(s > 0 for s in case["median_seconds"].values())
    for losses in result["losses"].values():  # float32 in, both sides: the same loss
        assert losses["rnnkit"] == pytest.approx(losses["torch"], rel=1e-5)
    table = (tmp_path / "ctc.md").read_text()
    assert table.startswith(f"Machine: {result['machine']['cpu_model']} (")
    assert "| torch / rnnkit |" in table
