"""``rnnkit detect``: anomaly scores for every row of a time series, from a CSV or live from stdin.

- ``--csv FILE``: reads ``timestamp,value`` (column names from ``--time-column`` and
  ``--value-column``; ``--id-column`` for several series in one file), fits an
  `AnomalyDetector` on each series' probationary period and writes ``--out`` with one line per
  input row, in file order: ``timestamp,value,anomaly_score`` (NAB's results format; with an id
  column, the id first). ``--plot`` draws the first series and its scores.
- ``--stream``: reads ``timestamp,value`` lines (or ``id,timestamp,value``; a header line is
  optional) from standard input and writes each line's ``timestamp,value,anomaly_score`` as soon
  as it is read (flushed). All series share one network and one `StreamPool`; the network is
  fitted on the first series to complete its probationary period. SIGTERM/SIGINT stop after
  the current line.

The probationary period is ``--probation`` rows per series; by default NAB's rule for a CSV
(15 % of the rows of its shortest series, at most 750, counting only series of at least 16
rows: a shorter one scores 0 whatever the period) and 750 for a stream. Its rows score 0.
Bad input (a missing column, a value that is not a finite number, a timestamp out of order or
repeated) stops with one line naming the file or line, the row and the column.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

from .. import files
from ..data.detect_csv import TIME_ORDERS, LiveTimeOrder, parse_value, read_series
from ..engines import Engine, add_engine_arguments, engine_from_args
from ..errors import InputError
from ..estimators.anomaly import AnomalyDetector
from ..files import check_output, save_figure
from ..nab import probation_length
from ..signals import Stopped, StopSignal
from .detect_options import add_detector_arguments, detector_params

STREAM_PROBATION = 750
MIN_PROBATION = 16  # rows: the shortest probationary period (--probation is refused below)


def _fmt(score: float) -> str:
    return f"{score:.10g}"


def _field(text: str) -> str:
    """A field of the results CSV, quoted when it holds a comma, a quote or a line break (an id
    such as "Berlin, north" was read from a quoted field)."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def detect_csv(
    csv_path: str,
    out: str,
    time_column: str = "timestamp",
    value_column: str = "value",
    id_column: str | None = None,
    probation: int | None = None,
    plot: str | None = None,
    force: bool = False,
    detector: dict[str, Any] | None = None,
    log: Any = None,
    engine: str | Engine = "local",
    time_order: str = "strict",
) -> dict[str, Any]:
    """Score every row of ``csv_path`` into ``out``; the metrics for ``--json``. The network
    is fitted here; the series are scored here or on ``engine``'s workers (`rnnkit.engines`).
    ``time_order``: `rnnkit.data.detect_csv.TimeOrder`'s."""
    check_output(out, "scores", inputs=(csv_path,), force=force)
    if plot:
        check_output(plot, "png", inputs=(csv_path, out), force=force, what="--plot")
    series, order = read_series(csv_path, time_column, value_column, id_column, time_order)
    shortest = min(len(s.values) for s in series)
    if probation is None:  # a series too short for any probation (16) scores 0 and is no guide
        scorable = [len(s.values) for s in series if len(s.values) >= MIN_PROBATION]
        probation = max(probation_length(min(scorable, default=shortest)), MIN_PROBATION)
    det = AnomalyDetector(probation=probation, **(detector or {}))
    values = [np.asarray(s.values) for s in series]
    short = [s.id for s, v in zip(series, values, strict=True) if v.size < probation]
    if len(short) == len(series):
        raise InputError(
            f"{csv_path!r}: every series is shorter than the probationary period of {probation} "
            f"rows (the shortest has {shortest}); expected longer series or a smaller --probation"
        )
    if short and log is not None:
        log(f"{len(short)} series shorter than {probation} rows score 0 throughout: {short[:5]}")
    t0 = time.perf_counter()
    det.fit([v for v in values if v.size >= probation])
    fitted = time.perf_counter()
    scores = det.detect(values, engine)
    done = time.perf_counter()
    head = [id_column] if id_column else []
    lines = [",".join(_field(c) for c in [*head, time_column, value_column, "anomaly_score"])]
    index = {s.id: i for i, s in enumerate(series)}
    for sid, k in order:
        i = index[sid]
        s = series[i]
        lines.append(
            ",".join(
                _field(f) for f in [*([sid] if id_column else []), s.times[k], s.values_text[k]]
            )
            + f",{_fmt(scores[i][k])}"
        )
    text = "\n".join(lines) + "\n"

    def write(tmp: str) -> None:
        Path(tmp).write_text(text)

    files.atomic_write(out, write, "--out")
    if plot:
        _plot(series[0], scores[0], probation, plot, Path(csv_path).name)
    rows = len(order)
    return {
        "rows": rows,
        "series": len(series),
        "probation": probation,
        "fit_seconds": round(fitted - t0, 3),
        "detect_points_per_s": round(rows / max(done - fitted, 1e-9)),
        "max_score": float(max(float(np.max(s)) for s in scores)),
        "out": str(out),
        **({"plot": str(plot)} if plot else {}),
    }


def _plot(series: Any, scores: np.ndarray, probation: int, path: str, source: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 5), sharex=True)
    x = np.arange(len(series.values))
    ax1.plot(x, series.values, lw=0.7)
    ax1.set_ylabel("value")
    ax1.axvspan(0, probation, color="0.9", label="probationary period")
    top = np.argsort(scores)[-5:]
    ax1.scatter(top, np.asarray(series.values)[top], color="red", s=18, label="5 highest scores")
    ax1.legend(loc="upper left", fontsize=8)
    ax2.plot(x, scores, lw=0.7, color="darkred")
    ax2.set_ylabel("anomaly score")
    ax2.set_xlabel("row")
    ax2.set_ylim(0, 1.02)
    title = f"rnnkit detect: {source}" + (f", series {series.id}" if series.id else "")
    ax1.set_title(title)
    fig.tight_layout()
    save_figure(fig, path, "--plot")
    plt.close(fig)


# -- streaming ---------------------------------------------------------------------------------
class LineScorer:
    """One input line in, one output line out; the header (if any) is the first line."""

    def __init__(
        self, probation: int, detector: dict[str, Any] | None = None, time_order: str = "strict"
    ) -> None:
        self.pool = AnomalyDetector(probation=probation, **(detector or {})).pool()
        self.times = LiveTimeOrder(time_order)
        self.columns: tuple[int, int, int | None] | None = None  # time, value, id
        self.width = 0
        self.number = 0

    def handle(self, line: str) -> str | None:
        """The answer to one line (None for a header or a blank line); `InputError` when bad."""
        self.number += 1
        if self.number == 1:
            line = line.removeprefix("\ufeff")  # a file's byte-order mark (cat file.csv | ...)
        fields = [f.strip() for f in line.rstrip("\r\n").split(",")]
        if len(fields) == 1 and not fields[0]:
            return None
        where = f"stdin line {self.number}"
        if self.columns is None:
            if len(fields) in (2, 3) and parse_value(fields[-1]) is not None:
                self.columns = (len(fields) - 2, len(fields) - 1, 0 if len(fields) == 3 else None)
                self.width = len(fields)
            else:
                self._header(fields, where)
                return None
        if len(fields) != self.width:
            raise InputError(
                f"{where}: expected {self.width} comma-separated fields, got {len(fields)}"
            )
        ti, vi, ii = self.columns
        sid = fields[ii] if ii is not None else ""
        self.times.check(sid, fields[ti], where, "timestamp")
        value = parse_value(fields[vi])
        if value is None:
            raise InputError(
                f"{where}, column 'value': expected a finite number, got {fields[vi][:40]!r}"
            )
        score = self.pool.update(sid, value)
        head = [sid] if ii is not None else []
        return ",".join([*head, fields[ti], fields[vi]]) + f",{_fmt(score)}"

    def _header(self, fields: list[str], where: str) -> None:
        names = [f.lower() for f in fields]
        if "value" not in names or "timestamp" not in names or len(fields) not in (2, 3):
            raise InputError(
                f"{where}: expected timestamp,value (or id,timestamp,value) lines, or that "
                f"header; got {','.join(fields)[:80]!r}"
            )
        ti, vi = names.index("timestamp"), names.index("value")
        ii = ({0, 1, 2} - {ti, vi}).pop() if len(fields) == 3 else None
        self.columns, self.width = (ti, vi, ii), len(fields)
        return None


def detect_stream(
    lines: IO[str],
    out: IO[str],
    probation: int | None = None,
    detector: dict[str, Any] | None = None,
    stop: StopSignal | None = None,
    time_order: str = "strict",
) -> dict[str, Any]:
    """Answer each line at once; stop at the end of the input or on a signal."""
    scorer = LineScorer(probation or STREAM_PROBATION, detector, time_order)
    stop = stop or StopSignal()
    answered = 0
    t0 = time.perf_counter()
    try:
        with stop.armed():
            while not stop.requested:
                with stop.waiting():
                    line = lines.readline()
                if not line:
                    break
                answer = scorer.handle(line)
                if answer is not None:
                    out.write(answer + "\n")
                    out.flush()
                    answered += 1
    except Stopped:
        pass
    seconds = time.perf_counter() - t0
    return {
        "rows": answered,
        "series": len(scorer.pool),
        "signal": stop.name or None,
        "points_per_s": round(answered / seconds) if seconds > 0 and answered else math.nan,
    }


# -- the command line --------------------------------------------------------------------------
def add_detect_arguments(p: Any) -> None:
    """``rnnkit detect``'s options (`rnnkit.cli` registers the subcommand)."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--csv", default=None, help="a CSV file with a header to score")
    src.add_argument(
        "--stream",
        action="store_true",
        help="read timestamp,value (or id,timestamp,value) lines from stdin, answer each at once",
    )
    p.add_argument("--out", default=None, help="with --csv: the scores CSV to write (required)")
    p.add_argument("--time-column", default="timestamp", help="(default: timestamp)")
    p.add_argument("--value-column", default="value", help="(default: value)")
    p.add_argument(
        "--id-column", default=None, help="a column naming the series, for several in one file"
    )
    p.add_argument(
        "--time-order",
        choices=TIME_ORDERS,
        default="strict",
        help="strict: a repeated or earlier timestamp within a series is an error; file: the "
        "rows are scored in the order they come, repeats and steps back included (NAB's files "
        "repeat an hour where daylight saving time ends) (default: strict)",
    )
    p.add_argument(
        "--probation",
        type=int,
        default=None,
        help="rows per series that only teach the detector (they score 0) (default: NAB's rule, "
        "15 %% of the shortest series' rows, at most 750, with --csv; 750 with --stream)",
    )
    p.add_argument(
        "--plot", default=None, help="with --csv: draw the first series and its scores as PNG"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the network (default: 0)")
    p.add_argument(
        "--learn-every",
        type=int,
        default=0,
        help="the network keeps learning: each series takes a few steps on its recent values "
        "every N rows, on its own copy of the network (default: 0, fixed; one network shared)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an --out or --plot file that rnnkit did not write (default: refuse)",
    )
    p.add_argument("--json", action="store_true", help="metrics as JSON on the last line")
    add_engine_arguments(p)
    add_detector_arguments(p)


def run_detect(args: Any) -> dict[str, Any]:
    import sys

    from ..training import log_to_stderr

    if args.probation is not None and args.probation < 16:
        raise InputError(f"--probation: expected at least 16 rows, got {args.probation}")
    if args.learn_every < 0:
        raise InputError(
            f"--learn-every: expected 0 (fixed) or a positive row count, got {args.learn_every}"
        )
    params = {"seed": args.seed, "learn_every": args.learn_every, **detector_params(args)}
    engine = engine_from_args(args)
    if args.stream:
        if args.out or args.plot:
            raise InputError("--out and --plot go with --csv; --stream writes to stdout")
        if engine.kind != "local":
            raise InputError("--engine: --stream scores in this process; --engine goes with --csv")
        if hasattr(sys.stdin, "reconfigure"):
            sys.stdin.reconfigure(errors="replace")
        stop = StopSignal()
        with stop.installed():
            metrics = detect_stream(
                sys.stdin, sys.stdout, args.probation, params, stop, args.time_order
            )
        if metrics["signal"]:
            print(
                f"rnnkit detect: stopped by {metrics['signal']} after {metrics['rows']} lines",
                file=sys.stderr,
            )
            raise SystemExit(128 + (stop.signum or 0))
        return metrics
    if not args.out:
        raise InputError("--csv needs --out, the scores CSV to write")
    metrics = detect_csv(
        args.csv,
        args.out,
        args.time_column,
        args.value_column,
        args.id_column,
        args.probation,
        args.plot,
        args.force,
        params,
        log_to_stderr,
        engine,
        args.time_order,
    )
    print(
        f"{metrics['rows']:,} rows of {metrics['series']} series scored "
        f"(probationary period {metrics['probation']} rows), max score "
        f"{metrics['max_score']:.3f}: {metrics['out']}",
        file=sys.stderr,
    )
    return metrics
