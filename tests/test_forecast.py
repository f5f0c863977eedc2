"""Forecasting: M4's metrics against hand-computed cases, the `Forecaster` (it beats the
seasonal naive on a noisy sine, it saves and loads), the long-CSV reader's one-line errors,
and ``rnnkit train forecast`` / ``forecast`` / ``backtest`` end to end on a tiny CSV."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import rnnkit
from rnnkit import Forecaster
from rnnkit.cli import main
from rnnkit.data.series import read_long_csv
from rnnkit.errors import InputError
from rnnkit.forecast_metrics import (
    coverage,
    mase,
    msis,
    naive2,
    owa,
    score_forecasts,
    seasonal_indices,
    seasonal_naive,
    seasonality_test,
    smape,
)


# -- metrics ------------------------------------------------------------------------------------
def test_smape_by_hand():
    # |100 - 110| / (100 + 110) and |200 - 180| / (200 + 180), mean, times 200
    expected = 200 / 2 * (10 / 210 + 20 / 380)
    assert smape([100, 200], [110, 180]) == pytest.approx(expected)
    assert smape([0, 4], [0, 4]) == 0.0  # 0/0 counts as no error
    assert smape([1.0], [-1.0]) == pytest.approx(200.0)


def test_mase_scales_by_the_seasonal_naive_in_sample():
    history = [1, 2, 3, 4, 5, 6]  # lag-2 differences are all 2
    assert mase([7, 8], [6, 10], history, season=2) == pytest.approx(1.5 / 2)
    # season 1: differences of 1
    assert mase([7, 8], [6, 10], history, season=1) == pytest.approx(1.5)


def test_interval_scores_by_hand():
    y, lo, hi = [1.0, 5.0], [0.0, 0.0], [2.0, 2.0]
    assert coverage(y, lo, hi) == 0.5
    # widths 2 and 2, plus 2 / 0.2 * (5 - 2) for the miss; history's lag-1 MAE is 1
    assert msis(y, lo, hi, [0, 1, 2, 3], season=1, alpha=0.2) == pytest.approx((2 + 32) / 2)


def test_owa_is_the_mean_of_the_two_ratios():
    assert owa(9.0, 0.9, 18.0, 1.8) == pytest.approx(0.5)
    assert owa(18.0, 3.6, 18.0, 1.8) == pytest.approx(1.5)


def test_seasonal_naive_repeats_the_last_season():
    np.testing.assert_array_equal(seasonal_naive([1, 2, 3, 4, 5], 2, 3), [4, 5, 4])
    np.testing.assert_array_equal(seasonal_naive([1, 2, 3], 1, 2), [3, 3])


def test_naive2_reseasonalises_the_last_adjusted_value():
    pattern = np.array([0.5, 1.5, 1.0, 1.0])  # averages 1
    x = 10 * np.tile(pattern, 6)  # the centred 2x4 moving average is 10 throughout
    np.testing.assert_allclose(seasonal_indices(x, 4), pattern)
    assert seasonality_test(x, 4)
    np.testing.assert_allclose(naive2(x, 4, 6), 10 * np.resize(pattern, 6))
    # a series that starts mid-cycle: indices follow its own first point
    np.testing.assert_allclose(naive2(x[1:], 4, 2), [10 * 0.5, 10 * 1.5])


def test_naive2_without_seasonality_is_the_naive():
    rng = np.random.default_rng(3)
    x = 50 + rng.normal(0, 1, 200)
    assert not seasonality_test(x, 12)
    np.testing.assert_array_equal(naive2(x, 12, 3), [x[-1]] * 3)
    assert not seasonality_test(x[:20], 12)  # fewer than 3 seasons: never tested seasonal


def test_score_forecasts_averages_over_series():
    hist = [np.arange(1.0, 9.0), np.arange(2.0, 10.0)]
    actual = [np.array([9.0, 10.0]), np.array([10.0, 11.0])]
    forecast = [np.array([9.0, 10.0]), np.array([11.0, 11.0])]
    s = score_forecasts(hist, actual, forecast, season=1)
    assert s.smape == pytest.approx((0 + 100 * (1 / 21)) / 2)
    assert s.mase == pytest.approx((0 + 0.5) / 2)
    # naive-2 of a series without a season is the last value: errors 1 and 2 (MASE 1.5)
    assert s.mase_naive2 == pytest.approx(1.5)
    assert s.owa == pytest.approx(0.5 * (s.smape / s.smape_naive2 + s.mase / 1.5))


# -- the estimator ------------------------------------------------------------------------------
def _sines(count: int, season: int, horizon: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    history, future = [], []
    for i in range(count):
        n = 240 + 7 * i
        k = np.arange(n + horizon)
        level, phase = rng.uniform(5, 20), rng.uniform(0, 2 * np.pi)
        y = level + 2 * np.sin(2 * np.pi * k / season + phase) + rng.normal(0, 0.3, n + horizon)
        history.append(y[:n])
        future.append(y[n:])
    return history, future


def test_forecaster_beats_the_seasonal_naive_on_a_noisy_sine():
    S = H = 12
    history, future = _sines(20, S, H)
    model = Forecaster(horizon=H, season=S, lookback=48, n_models=1, epochs=20, seed=0)
    pred = model.fit(history).predict(history)
    ours = np.mean([mase(a, p, h, S) for a, p, h in zip(future, pred, history, strict=True)])
    naive = np.mean(
        [mase(a, seasonal_naive(h, S, H), h, S) for a, h in zip(future, history, strict=True)]
    )
    assert ours < 0.9 * naive, (ours, naive)


def test_save_and_load_give_identical_forecasts(tmp_path):
    history, _ = _sines(4, 12, 6)
    model = Forecaster(horizon=6, season=12, lookback=24, n_models=2, steps=3, hidden_size=8)
    model.fit(history)
    path = tmp_path / "f.safetensors"
    rnnkit.save(model, path)
    back = rnnkit.load(path)
    assert isinstance(back, Forecaster)
    assert back.get_params() == model.get_params()
    np.testing.assert_array_equal(back.predict(history), model.predict(history))
    a = model.predict_interval(history, 0.8)
    b = back.predict_interval(history, 0.8)
    np.testing.assert_array_equal(a[0], b[0])
    assert np.all(a[0] <= a[1])


def test_gaussian_output_gives_intervals_around_the_point():
    history, _ = _sines(3, 12, 6)
    model = Forecaster(horizon=6, season=12, lookback=24, n_models=1, steps=3, output="gaussian")
    model.fit(history)
    lo, hi = model.predict_interval(history, 0.8)
    point = model.predict(history)
    assert lo.shape == (3, 6) and np.all(lo < point) and np.all(point < hi)


def test_quantile_outside_the_trained_levels_is_an_error():
    history, _ = _sines(3, 12, 6)
    model = Forecaster(horizon=6, season=12, lookback=24, n_models=1, steps=2).fit(history)
    with pytest.raises(InputError, match="outside the trained levels"):
        model.predict_interval(history, 0.95)


def test_predict_before_fit_and_bad_parameters():
    with pytest.raises(rnnkit.NotFittedError):
        Forecaster().predict([np.ones(10)])
    with pytest.raises(InputError, match="output must be one of"):
        Forecaster(output="median").fit([np.ones(50)])
    with pytest.raises(InputError, match="too short"):
        Forecaster(horizon=30).fit([np.ones(50)])  # 2 * 30 + 1 points needed
    with pytest.raises(InputError, match="holds nan"):
        Forecaster(horizon=2).fit([np.r_[np.ones(20), np.nan]])


# -- the CSV reader -----------------------------------------------------------------------------
def _write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_missing_steps_are_filled_by_linear_interpolation(tmp_path):
    csv = _write(tmp_path / "g.csv", "unique_id,ds,y\na,1,1\na,2,2\na,5,8\nb,1,0\nb,2,1\n")
    panel = read_long_csv(csv)
    a = panel.series[0]
    np.testing.assert_allclose(a.values, [1, 2, 4, 6, 8])
    assert panel.filled == 2 and panel.kind == "int"


def test_time_stamps_give_hourly_steps(tmp_path):
    csv = _write(
        tmp_path / "t.csv",
        "unique_id,ds,y\na,2024-03-01 00:00,1\na,2024-03-01 01:00,2\na,2024-03-01 03:00,4\n",
    )
    panel = read_long_csv(csv)
    assert panel.kind == "seconds" and panel.series[0].step == 3600
    np.testing.assert_allclose(panel.series[0].values, [1, 2, 3, 4])
    assert panel.format_time(panel.series[0].start + 4 * 3600) == "2024-03-01 04:00:00"


BAD = {
    "missing column": ("unique_id,ds,value\na,1,3\n", "no column 'y'"),
    "non-numeric": ("unique_id,ds,y\na,1,3\na,2,abc\n", "line 3, column 'y': expected a number"),
    "out of order": ("unique_id,ds,y\na,2,3\na,1,4\n", "line 3, column 'ds'"),
    "duplicated": ("unique_id,ds,y\na,1,3\na,1,4\n", "repeats the one on line 2"),
    "NaN": ("unique_id,ds,y\na,1,nan\na,2,3\na,3,4\n", "line 2, column 'y': missing value"),
    "bad time": ("unique_id,ds,y\na,yesterday,3\n", "line 2, column 'ds'"),
    "undecided dates": ("unique_id,ds,y\na,01/02/2024,3\na,02/02/2024,4\n", "column 'ds': dates"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_csv_is_a_one_line_error_naming_file_line_and_column(tmp_path, capsys, case):
    text, message = BAD[case]
    csv = _write(tmp_path / "bad.csv", text)
    out = tmp_path / "m.safetensors"
    argv = ["train", "forecast", "--csv", csv, "--horizon", "2", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "bad.csv" in err, err
    assert not out.exists()


def test_horizon_longer_than_every_series_is_a_one_line_error(tmp_path, capsys):
    csv = _write(tmp_path / "s.csv", "unique_id,ds,y\n" + "".join(f"a,{k},{k}\n" for k in range(9)))
    argv = ["train", "forecast", "--csv", csv, "--horizon", "5", "--out", str(tmp_path / "m")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "too short" in err and "2 * horizon + 1" in err


# -- the command line, end to end ------------------------------------------------------------------
def _tiny_csv(path, covariate: bool = False, future: int = 0) -> str:
    rng = np.random.default_rng(0)
    lines = ["unique_id,ds,y" + (",temp" if covariate else "")]
    for i in range(4):
        start = np.datetime64("2024-01-01T00:00") + np.timedelta64(i, "h")
        n = 120 + 12 * i
        for k in range(n + future):
            t = str(start + np.timedelta64(k, "h")).replace("T", " ")
            y = f"{10 + i + 3 * math.sin(2 * math.pi * k / 24) + rng.normal(0, 0.2):.4f}"
            row = f"s{i},{t},{y if k < n else ''}"
            lines.append(row + (f",{math.cos(2 * math.pi * k / 24):.3f}" if covariate else ""))
    return _write(path, "\n".join(lines) + "\n")


def test_cli_train_forecast_and_backtest(tmp_path, capsys):
    csv = _tiny_csv(tmp_path / "tiny.csv")
    model = tmp_path / "m.safetensors"
    argv = ["train", "forecast", "--csv", csv, "--horizon", "12", "--out", str(model)]
    assert main([*argv, "--steps", "6", "--models", "1", "--hidden", "8", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"smape", "mase", "owa", "coverage_80"} <= set(metrics)
    assert metrics["season"] == 24 and metrics["series"] == 4 and 0 <= metrics["coverage_80"] <= 1

    out, png = tmp_path / "f.csv", tmp_path / "f.png"
    argv = ["forecast", str(model), "--csv", csv, "--out", str(out), "--plot", str(png)]
    assert main(argv) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "unique_id,ds,y_hat,y_lo_80,y_hi_80" and len(rows) == 1 + 4 * 12
    assert rows[1].startswith("s0,2024-01-06 00:00:00,")  # the step after s0's last (120 h)
    assert png.read_bytes().startswith(b"\x89PNG")
    assert main(argv) == 0  # its own outputs may be replaced
    capsys.readouterr()

    argv = ["forecast", str(model), "--csv", csv, "--out", str(out), "--horizon", "13"]
    assert main(argv) == 2
    assert "longer than the model's horizon 12" in capsys.readouterr().err

    argv = ["backtest", "--csv", csv, "--horizon", "12", "--origins", "2", "--model", str(model)]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["origin"] for r in result["origins"]] == [-24, -12] and result["smape"] > 0


def test_cli_refuses_to_overwrite_a_file_it_did_not_write(tmp_path, capsys):
    csv = _tiny_csv(tmp_path / "tiny.csv")
    precious = tmp_path / "notes.csv"
    precious.write_text("mine\n")
    model = tmp_path / "m.safetensors"
    assert (
        main(
            [
                "train",
                "forecast",
                "--csv",
                csv,
                "--horizon",
                "4",
                "--out",
                str(model),
                "--steps",
                "2",
                "--models",
                "1",
                "--hidden",
                "4",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["forecast", str(model), "--csv", csv, "--out", str(precious)]) == 2
    assert "not an rnnkit forecast-csv file" in capsys.readouterr().err
    assert precious.read_text() == "mine\n"


def test_covariates_need_their_future_rows(tmp_path, capsys):
    csv = _tiny_csv(tmp_path / "cov.csv", covariate=True)
    model = tmp_path / "m.safetensors"
    assert (
        main(
            [
                "train",
                "forecast",
                "--csv",
                csv,
                "--horizon",
                "6",
                "--out",
                str(model),
                "--steps",
                "2",
                "--models",
                "1",
                "--hidden",
                "4",
            ]
        )
        == 0
    )
    capsys.readouterr()
    out = tmp_path / "f.csv"
    assert main(["forecast", str(model), "--csv", csv, "--out", str(out)]) == 2
    assert (
        "covariates for 0 future steps; expected 6 (in a CSV: rows after" in capsys.readouterr().err
    )
    future = _tiny_csv(tmp_path / "future.csv", covariate=True, future=6)
    assert main(["forecast", str(model), "--csv", future, "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1 + 4 * 6
