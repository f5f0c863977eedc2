"""`rnnkit demo`: the adding problem writes its two plots, and the gradient profile it draws
shows the plain RNN's gradient vanishing where a gated cell's does not."""

from __future__ import annotations

import json

import numpy as np

from rnnkit.cli import main
from rnnkit.files import is_rnnkit_file
from rnnkit.tasks.adding import AddingConfig, gradient_by_distance, train_adding


def test_demo_writes_loss_curves_and_gradient_plot(tmp_path, capsys) -> None:
    plot = tmp_path / "runs" / "adding.png"
    argv = ["demo", "--length", "12", "--hidden", "4", "--batch", "4", "--steps", "5"]
    assert main([*argv, "--plot", str(plot), "--json"]) == 0
    grad = tmp_path / "runs" / "adding.grad.png"
    assert is_rnnkit_file(plot, "png") and is_rnnkit_file(grad, "png")
    out, err = capsys.readouterr()
    metrics = json.loads(out.splitlines()[-1])
    for cell in ("rnn", "gru", "lstm"):
        assert 0 < metrics[f"grad_ratio_{cell}"] <= 1e3
    assert "grad ratio" in out and str(grad) in err


def test_demo_refuses_a_gradient_plot_path_it_did_not_write(tmp_path, capsys) -> None:
    plot = tmp_path / "adding.png"
    (tmp_path / "adding.grad.png").write_text("not a plot")
    argv = ["demo", "--length", "12", "--hidden", "4", "--batch", "4", "--steps", "5"]
    assert main([*argv, "--plot", str(plot)]) == 2
    assert "adding.grad.png" in capsys.readouterr().err
    assert not plot.exists()  # checked before any training


def test_gradient_by_distance_is_relative_to_the_last_step() -> None:
    r = gradient_by_distance(np.array([1e-3, 0.1, 2.0], dtype=np.float32))
    np.testing.assert_allclose(r, [1.0, 0.05, 5e-4], rtol=1e-6)
    assert gradient_by_distance(np.zeros(3)).min() > 0  # floored, so a log scale can show it


def test_rnn_gradient_vanishes_where_the_gru_keeps_it() -> None:
    # T = 50: after 200 steps the GRU passes 1e-2 to 1e-1 of the gradient to the first step,
    # the plain RNN 1e-6 to 1e-11 (seeds 0-2); the LSTM needs about 500 steps here before its
    # forget gates open (untrained, it vanishes as fast as the RNN), too slow for a test.
    ratio = {}
    for cell in ("rnn", "gru"):
        cfg = AddingConfig(cell=cell, length=50, hidden=16, batch=32, steps=200, seed=0)
        _, m = train_adding(cfg)
        assert m["grad_last"].shape == (50,) and m["grad_last"][0] == 1.0
        ratio[cell] = m["grad_ratio"]
    assert ratio["rnn"] < 1e-3 * ratio["gru"]
    assert ratio["gru"] > 1e-3
