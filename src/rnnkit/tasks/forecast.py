"""Forecasting many series from a long CSV: ``rnnkit train forecast``, ``rnnkit forecast``
and ``rnnkit backtest``.

Read ``unique_id,ds,y`` (`rnnkit.data.series`), fit a `Forecaster` with the last ``--horizon``
points of each series held out, score those with M4's metrics (`rnnkit.forecast_metrics`),
and write forecasts as ``unique_id,ds,y_hat,y_lo_80,y_hi_80``.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import add_options, from_args, nonneg_int, option, positive_float, positive_int
from ..data.series import Panel, Series, default_season, read_long_csv
from ..engines import Engine, add_engine_arguments, engine_from_args
from ..errors import CheckpointError, InputError
from ..estimators.forecaster import Forecaster
from ..files import KINDS, atomic_write, check_output, save_figure
from ..forecast_metrics import score_forecasts
from ..io.checkpoint import load
from ..training import last_path, plot_path

INTERVAL = 0.8  # the interval written and scored: 80 %, quantiles 0.1 and 0.9
LEVELS = ((1 - INTERVAL) / 2, (1 + INTERVAL) / 2)
PLOTTED = 4  # series drawn by --plot


def _is_forecast_csv(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return ",y_hat" in head


KINDS.setdefault("forecast-csv", _is_forecast_csv)  # a CSV of forecasts rnnkit wrote


@dataclass(frozen=True)
class ForecastConfig:
    """One ``rnnkit train forecast`` (or ``backtest``) run; each field is also its option."""

    csv: str = option("", help="long-format CSV: one row per series and time (unique_id,ds,y)")
    horizon: int = option(1, help="steps to forecast", type=positive_int)
    season: int | None = option(
        None, help="seasonal period in steps", type=positive_int, default_help="from --freq"
    )
    freq: str | None = option(
        None,
        help="the step between rows: H, D, W, 15min, M, Q, Y, or an integer for integer ds",
        default_help="the most common step",
    )
    id_column: str = option("unique_id", help="the column naming the series")
    time_column: str = option("ds", help="the column of time stamps or integer steps")
    target_column: str = option("y", help="the column to forecast")
    lookback: int | None = option(
        None, help="points each forecast reads", type=positive_int, default_help="14 seasons"
    )
    output: str = option(
        "quantile",
        help="point (median), quantile (0.1, 0.5, 0.9: an 80 % interval) or gaussian",
        choices=("point", "quantile", "gaussian"),
    )
    cell: str = option("lstm", help="recurrent cell", choices=("lstm", "gru", "rnn"))
    hidden: int = option(64, help="hidden size of the recurrent layer", type=positive_int)
    models: int = option(3, help="networks in the ensemble (seeds)", type=positive_int)
    batch: int = option(128, help="windows per batch", type=positive_int)
    lr: float = option(3e-3, help="peak learning rate of AdamW", type=positive_float)
    epochs: float | None = option(
        None, help="budget in epochs", type=positive_float, default_help="40"
    )
    minutes: float | None = option(
        None, help="budget in wall-clock minutes", type=positive_float, default_help="none"
    )
    steps: int | None = option(
        None, help="budget in optimizer steps", type=positive_int, default_help="none"
    )
    patience: int = option(
        5,
        help="stop after N evaluations without a better validation loss; 0: never",
        type=nonneg_int,
    )
    seed: int = option(0, help="random seed")
    out: str = option("runs/forecast.safetensors", help="the model file; loss curve beside it")


def estimator(cfg: ForecastConfig, season: int) -> Forecaster:
    return Forecaster(
        horizon=cfg.horizon,
        season=season,
        lookback=cfg.lookback,
        output=cfg.output,
        cell=cfg.cell,
        hidden_size=cfg.hidden,
        n_models=cfg.models,
        batch_size=cfg.batch,
        lr=cfg.lr,
        epochs=cfg.epochs,
        minutes=cfg.minutes,
        steps=cfg.steps,
        patience=cfg.patience or None,
        seed=cfg.seed,
        verbose=True,
    )


def read_panel(cfg: ForecastConfig, future: bool = False) -> Panel:
    return read_long_csv(
        cfg.csv, cfg.id_column, cfg.time_column, cfg.target_column, cfg.freq, future=future
    )


def season_of(cfg: ForecastConfig, panel: Panel) -> int:
    if cfg.season is not None:
        return cfg.season
    steps = [s.step for s in panel.series]
    values, counts = np.unique(steps, return_counts=True)
    return default_season(panel.kind, int(values[np.argmax(counts)]))


def cut(series: list[Series], drop: int) -> list[Series]:
    """Each series without its last ``drop`` points (covariates kept: they are known)."""
    return [replace(s, values=s.values[: len(s.values) - drop]) for s in series]


def describe(panel: Panel, horizon: int, log: Any) -> list[Series]:
    """Report the data; the series long enough to score (more than ``horizon`` points)."""
    lengths = [len(s.values) for s in panel.series]
    if max(lengths) < 2 * horizon + 1:
        raise InputError(
            f"--horizon: every series is too short for horizon {horizon} ({max(lengths)} points "
            f"at most); expected at least 2 * horizon + 1 = {2 * horizon + 1} (training windows "
            "and the held-out last horizon)"
        )
    kept = [s for s in panel.series if len(s.values) > horizon + 1]
    if log is not None:
        log(
            f"data: {len(panel.series):,} series, {panel.rows:,} rows, lengths "
            f"{min(lengths)}-{max(lengths)}, {panel.filled:,} missing steps filled by linear "
            f"interpolation, covariates {panel.covariate_names or 'none'}"
        )
        short = len(panel.series) - len(kept)
        if short:
            first = next(s.uid for s in panel.series if len(s.values) <= horizon + 1)
            log(
                f"data: {short} series have at most horizon + 1 = {horizon + 1} points (first: "
                f"{first!r}); they are neither trained on nor scored, but are forecast"
            )
    return kept


def validation_scores(
    model: Forecaster, series: list[Series], horizon: int, season: int
) -> dict[str, Any]:
    """M4's metrics of forecasts of each series' last ``horizon`` points from the rest."""
    history = cut(series, horizon)
    levels = LEVELS if model.output != "point" else ()
    point, quant = model.forecast_series(history, levels)
    actual = [s.values[len(s.values) - horizon :] for s in series]
    lower = list(quant[..., 0]) if levels else None
    upper = list(quant[..., 1]) if levels else None
    scores = score_forecasts(
        [h.values for h in history],
        actual,
        list(point[:, :horizon]),
        season,
        None if lower is None else [lo[:horizon] for lo in lower],
        None if upper is None else [hi[:horizon] for hi in upper],
        alpha=1 - INTERVAL,
    )
    return {
        "smape": scores.smape,
        "mase": _finite(scores.mase),  # None when every series is flat: JSON has no NaN
        "owa": _finite(scores.owa),
        "coverage_80": scores.coverage,
        "msis_80": _finite(scores.msis),
        "series_scored": scores.series,
        "flat_series": scores.flat,  # left out of MASE and MSIS (`rnnkit.forecast_metrics`)
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and np.isfinite(value) else None


def train_forecast(cfg: ForecastConfig, force: bool = False, log: Any = None) -> dict[str, Any]:
    """Check the outputs, read the CSV, fit, score the held-out last ``horizon`` points."""
    out = Path(cfg.out)
    check_output(out, "checkpoint", inputs=(cfg.csv,), force=force)
    check_output(last_path(out), "checkpoint", inputs=(cfg.csv,), force=force, what="--out (.last)")
    check_output(plot_path(out), "png", inputs=(cfg.csv,), force=force, what="--out (loss plot)")
    panel = read_panel(cfg, future=True)  # rows of future covariates may follow (forecast)
    scored = describe(panel, cfg.horizon, log)
    season = season_of(cfg, panel)
    model = estimator(cfg, season)
    model.fit_series(panel.series, panel.kind, out=out, metadata={"run": asdict(cfg)})
    if model.skipped_ and log is not None:
        log(
            f"data: {len(model.skipped_)} series shorter than 2 * horizon + 1 gave no training "
            f"window (first: {model.skipped_[0]!r})"
        )
    metrics = validation_scores(model, scored, cfg.horizon, season) if scored else {}
    return metrics | {
        "season": season,
        "series": len(panel.series),
        "filled_steps": panel.filled,
        "steps": model.n_steps_,
        "stopped": model.stopped_,
        "train_minutes": model.train_minutes_,
        "checkpoint": str(out),
    }


def load_forecaster(path: str) -> Forecaster:
    model = load(path)
    if not isinstance(model, Forecaster):
        raise CheckpointError(
            f"{path!r} holds no forecaster; expected a model from 'rnnkit train forecast'"
        )
    return model


def forecast(
    path: str,
    csv: str,
    horizon: int | None,
    out: str,
    plot: str | None = None,
    force: bool = False,
    columns: tuple[str, str, str] = ("unique_id", "ds", "y"),
    freq: str | None = None,
    engine: str | Engine = "local",
) -> dict[str, Any]:
    """Forecast the ``horizon`` steps after each series of ``csv`` into ``out`` (CSV), here or
    on ``engine``'s workers (`rnnkit.engines`)."""
    target = check_output(out, "forecast-csv", inputs=(path, csv), force=force)
    figure = (
        check_output(plot, "png", inputs=(path, csv), force=force, what="--plot") if plot else None
    )
    model = load_forecaster(path)
    h = model.horizon if horizon is None else horizon
    if h > model.horizon:
        raise InputError(
            f"--horizon: {h} is longer than the model's horizon {model.horizon}; expected at "
            f"most {model.horizon} (train a model with --horizon {h})"
        )
    panel = read_long_csv(csv, *columns, freq=freq, future=True)
    if model.kind_ == "int" and panel.epoch and freq is None:  # a model from before 2026-12-03
        step = max(set(s.step for s in panel.series), key=[s.step for s in panel.series].count)
        panel = read_long_csv(csv, *columns, freq=str(step), future=True)  # Unix times as ints
    if model.kind_ != panel.kind:
        raise InputError(
            f"--csv: {csv!r} has {panel.kind} times, the model was trained on {model.kind_} times"
        )
    levels = LEVELS if model.output != "point" else ()
    point, quant = model.forecast_series(panel.series, levels, engine)
    header = [columns[0], columns[1], "y_hat"] + (["y_lo_80", "y_hi_80"] if levels else [])
    lines = [",".join(header)]
    for i, s in enumerate(panel.series):
        times = s.times(h, offset=len(s.values))
        for k in range(h):
            row = [
                _csv_field(s.uid),
                panel.format_time(int(times[k]), s.step),
                f"{point[i, k]:.6g}",
            ]
            row += [f"{quant[i, k, j]:.6g}" for j in range(len(levels))]
            lines.append(",".join(row))
    text = "\n".join(lines) + "\n"

    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    atomic_write(target, write, "--out")
    result: dict[str, Any] = {"series": len(panel.series), "horizon": h, "out": str(target)}
    if figure is not None:
        draw(panel, point[:, :h], quant[:, :h] if levels else None, figure)
        result["plot"] = str(figure)
    return result


def _csv_field(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


def draw(panel: Panel, point: np.ndarray, quant: np.ndarray | None, path: Path) -> Path:
    """The last part of a few series' histories, their forecasts and 80 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = panel.series[:PLOTTED]
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 2.4 * len(shown)), squeeze=False)
    h = point.shape[1]
    for i, (ax, s) in enumerate(zip(axes[:, 0], shown, strict=False)):
        n = len(s.values)
        past = min(n, 4 * h)
        ax.plot(np.arange(n - past, n), s.values[n - past :], color="black", lw=1, label="history")
        future = np.arange(n, n + h)
        ax.plot(future, point[i], color="C0", lw=1.5, label="forecast")
        if quant is not None:
            ax.fill_between(
                future,
                quant[i, :, 0],
                quant[i, :, 1],
                color="C0",
                alpha=0.25,
                label="80 % interval",
            )
        ax.set_title(s.uid, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="upper left")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    try:
        return save_figure(fig, path, "--plot")
    finally:
        plt.close(fig)


def backtest(
    cfg: ForecastConfig, origins: int, model_path: str | None = None, log: Any = None
) -> dict[str, Any]:
    """Metrics at ``origins`` rolling forecast origins, ``horizon`` apart, ending at the end of
    each series: origin k forecasts the ``horizon`` points after ``n - k * horizon``. One model
    is trained on the data before the earliest origin (or ``model_path`` is used as it is)."""
    panel = read_panel(cfg, future=True)
    season = season_of(cfg, panel)
    H = cfg.horizon
    need = origins * H + 2
    usable = [s for s in panel.series if len(s.values) >= need]
    if not usable:
        longest = max(len(s.values) for s in panel.series)
        raise InputError(
            f"--origins: {origins} origins of horizon {H} need series of at least {need} points; "
            f"the longest in {cfg.csv!r} has {longest}"
        )
    if log is not None and len(usable) < len(panel.series):
        short = len(panel.series) - len(usable)
        log(f"backtest: {short} series shorter than {need} points left out")
    if model_path is not None:
        model = load_forecaster(model_path)
        if model.horizon < H:
            raise InputError(f"--horizon: {H} is longer than the model's horizon {model.horizon}")
    else:
        model = estimator(cfg, season)
        with tempfile.TemporaryDirectory(prefix="rnnkit-backtest-") as tmp:
            model.fit_series(cut(usable, origins * H), panel.kind, out=Path(tmp) / "m.safetensors")
    rows = []
    for k in range(origins, 0, -1):
        part = cut(usable, (k - 1) * H)  # its last H points are the ones to forecast
        scores = validation_scores(model, part, H, season)
        rows.append({"origin": -k * H} | scores)
        if log is not None:
            log(f"origin n-{k * H}: " + _scores_text(scores))
    keys = ("smape", "mase", "owa", "coverage_80")
    means = {
        k: float(np.mean([r[k] for r in rows])) if all(r[k] is not None for r in rows) else None
        for k in keys
    }
    flat = max(r["flat_series"] for r in rows)  # left out of MASE at some origin
    return means | {"origins": rows, "series": len(usable), "season": season, "flat_series": flat}


# -- the command line ---------------------------------------------------------------------------
def _column_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--id-column", default="unique_id", help="the series column (default: unique_id)"
    )
    p.add_argument("--time-column", default="ds", help="the time column (default: ds)")
    p.add_argument("--target-column", default="y", help="the target column (default: y)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing file that is not an rnnkit file of this kind (default: off)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the final metrics as one JSON object on the last line (default: off)",
    )


def add_train_parser(tasks: Any) -> None:
    """``rnnkit train forecast``."""
    p = tasks.add_parser("forecast", help="a global forecaster for many series from a long CSV")
    p.add_argument(
        "--csv", required=True, help="long-format CSV (unique_id,ds,y; more columns are covariates)"
    )
    p.add_argument("--horizon", required=True, type=positive_int, help="steps to forecast")
    add_options(p, ForecastConfig, exclude=("csv", "horizon"))
    _common(p)


def add_parsers(sub: Any) -> None:
    """``rnnkit forecast`` and ``rnnkit backtest``."""
    f = sub.add_parser("forecast", help="forecast each series of a long CSV with a forecaster")
    f.add_argument("checkpoint", help="a .safetensors file written by 'rnnkit train forecast'")
    f.add_argument("--csv", required=True, help="long-format CSV of the histories to forecast")
    f.add_argument(
        "--horizon",
        type=positive_int,
        default=None,
        help="steps to forecast, at most the model's (default: the model's)",
    )
    f.add_argument(
        "--out", required=True, help="where to write unique_id,ds,y_hat[,y_lo_80,y_hi_80]"
    )
    f.add_argument("--plot", default=None, help="draw the first 4 series as PNG (default: none)")
    f.add_argument("--freq", default=None, help="the step between rows (default: the most common)")
    _column_arguments(f)
    _common(f)
    add_engine_arguments(f)
    b = sub.add_parser("backtest", help="score a forecaster at K rolling origins of a long CSV")
    b.add_argument("--csv", required=True, help="long-format CSV (unique_id,ds,y)")
    b.add_argument("--horizon", required=True, type=positive_int, help="steps to forecast")
    b.add_argument(
        "--origins",
        type=positive_int,
        default=3,
        help="rolling origins, horizon apart, ending at each series' end (default: 3)",
    )
    b.add_argument(
        "--model",
        default=None,
        help="score this model instead of training one on "
        "the data before the first origin (default: train)",
    )
    add_options(b, ForecastConfig, exclude=("csv", "horizon", "out"))
    _common(b)


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    from ..training import log_to_stderr

    cfg = from_args(ForecastConfig, args)
    metrics = train_forecast(cfg, args.force, log_to_stderr)
    _print_scores("validation (last horizon of each series)", metrics)
    print(f"{metrics['steps']} steps in {metrics['train_minutes']:.1f} min ({metrics['stopped']})")
    print(f"checkpoint: {metrics['checkpoint']}")
    return metrics


def run_forecast(args: argparse.Namespace) -> dict[str, Any]:
    result = forecast(
        args.checkpoint,
        args.csv,
        args.horizon,
        args.out,
        args.plot,
        args.force,
        (args.id_column, args.time_column, args.target_column),
        args.freq,
        engine_from_args(args),
    )
    print(f"forecasts of {result['series']} series, {result['horizon']} steps: {result['out']}")
    if "plot" in result:
        print(f"plot: {result['plot']}")
    return result


def run_backtest(args: argparse.Namespace) -> dict[str, Any]:
    from ..training import log_to_stderr

    cfg = from_args(ForecastConfig, args)
    result = backtest(cfg, args.origins, args.model, log_to_stderr)
    _print_scores(f"mean over {args.origins} origins", result)
    return result


def _print_scores(what: str, m: dict[str, Any]) -> None:
    if m.get("smape") is None:
        print(f"{what}: no series long enough to score")
        return
    print(f"{what}: " + _scores_text(m, "80 % interval coverage"))


def _scores_text(m: dict[str, Any], coverage: str = "coverage_80") -> str:
    """sMAPE, MASE, OWA and coverage as far as they are defined (MASE is not when every series
    is flat), and how many flat series MASE left out."""
    line = f"sMAPE {m['smape']:.3f}"
    line += "  MASE -" if m.get("mase") is None else f"  MASE {m['mase']:.3f}"
    if m.get("owa") is not None:
        line += f"  OWA {m['owa']:.3f}"
    if m.get("coverage_80") is not None:
        line += f"  {coverage} {m['coverage_80']:.3f}"
    if m.get("flat_series"):
        line += f"  ({m['flat_series']} flat series left out of MASE)"
    return line
