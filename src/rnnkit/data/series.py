"""Many time series from a long-format CSV (``unique_id,ds,y``, the convention of
statsforecast and Nixtla), put on a regular grid; calendar features from their time stamps.

- A file without the ``unique_id`` column (when that is the id column's name) is one series,
  named after the file (``sales.csv``: ``sales``).
- ``ds`` is a time stamp (ISO 8601: ``2024-01-31``, ``2024-01-31 13:00``; ``1949-01`` is a
  month, ``2024Q1`` a quarter, both written back so; ``31/01/2024`` or ``01/31/2024 1:00 PM``
  as spreadsheets write dates, the column's order decided by `rnnkit.data.dates`, written
  back as ISO 8601) or an integer step;
  integers that are Unix time stamps (all from 1e9 to 4e9, whole minutes apart) are read as
  times (seasons and calendar features as for ISO stamps) and written back as integers;
  rows of a series must be in time order, without duplicates. Series may interleave and have
  different lengths and starts (ragged).
- The step is ``freq`` when given (``H``, ``D``, ``W``, ``15min``, ``M``, ``Q``, ``Y``, or an
  integer for integer ``ds``), else the most common difference within the series; a series of
  one row takes the other series' most common step. When every series has one row, integer
  ``ds`` step by 1 and time stamps need ``freq`` (an error names it).
- Missing steps (a gap of k steps between two rows, or a row whose ``y`` is empty or ``NaN``
  between two numbers) are filled by linear interpolation between the rows around them, ``y``
  and covariates alike; how many were filled is reported. A series cannot start with a missing
  ``y`` (an error names the line).
- Fields are separated by commas, or by semicolons or tabs when the header holds no comma
  (`rnnkit.data.dialect`; a semicolon file may write numbers with a decimal comma).
- Every named column besides id, time and target is a numeric covariate (a column without a
  name, such as the row index pandas writes or the field after a trailing comma, is ignored). A
  missing or non-numeric value is a one-line error naming the file, line and column; with
  ``future=True`` (forecasting) rows after a series' last ``y`` may leave ``y`` empty (or
  ``NA``, ``NaN``, ``NULL``, as in `MISSING`): they carry the covariates of the steps to
  forecast.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .dates import day_first, iso, written_so
from .dialect import column_index, csv_rows, delimiter_of, header_again, number, number_styles
from .text import decode_utf8

# seconds per unit of a fixed-length frequency; months are counted apart
UNITS = {"s": 1, "min": 60, "t": 60, "h": 3600, "d": 86400, "w": 604800}
MONTHS = {"m": 1, "ms": 1, "q": 3, "qs": 3, "y": 12, "a": 12, "ys": 12}
DAY = 86400
# a column without a name is no covariate: pandas' row index (``df.to_csv`` writes it with an
# empty name, read back as "Unnamed: 0") or the empty field after a trailing comma
_UNNAMED = re.compile(r"|Unnamed: \d+")
# what marks a missing target in files written by R, pandas, Excel or a database (pandas' list)
_YEAR_MONTH = re.compile(r"\d{4}-\d{2}")
_QUARTER = re.compile(r"(\d{4})-?Q([1-4])", re.IGNORECASE)  # 2024Q1, as pandas writes a quarter
MISSING = {"", "NA", "N/A", "n/a", "#N/A", "NaN", "nan", "NULL", "null", "None", "-"}


@dataclass
class Series:
    """One series on a regular grid: ``times[i] = start + i * step`` in the panel's ``kind``
    of time ("int" steps, "seconds" or "months" since 1970), ``values`` ``(n,)`` and
    ``covariates`` ``(n + future, C)`` (the rows past the values are the future's)."""

    uid: str
    values: np.ndarray
    start: int
    step: int
    covariates: np.ndarray
    filled: int = 0  # missing steps filled by interpolation

    def times(self, count: int | None = None, offset: int = 0) -> np.ndarray:
        n = len(self.values) if count is None else count
        return self.start + (offset + np.arange(n)) * self.step


@dataclass
class Panel:
    """The series of one file, in the order their ids first appear."""

    series: list[Series]
    kind: str  # "int", "seconds" or "months"
    covariate_names: list[str] = field(default_factory=list)
    rows: int = 0
    utc_offset: int | None = None  # seconds east of UTC of the file's time stamps, if they had one
    month_end: bool = False  # monthly stamps on the last day of their month (2024-01-31)
    epoch: bool = False  # integer Unix time stamps (seconds since 1970), written back as such
    year_month: bool = False  # monthly stamps written as a year and month (1949-01), so back
    quarter: bool = False  # quarters written as pandas writes them (2024Q1), so back

    @property
    def filled(self) -> int:
        return sum(s.filled for s in self.series)

    def format_time(self, t: int, step: int = 1) -> str:
        """A time of this panel as the CSV writes it (a date alone for steps of whole days)."""
        if self.kind == "int":
            return str(int(t))
        if self.kind == "months":
            if self.quarter:
                return f"{int(t) // 12 + 1970}Q{int(t) % 12 // 3 + 1}"
            if self.year_month:
                return str(np.datetime64(int(t), "M"))
            if self.month_end:  # the day before the next month's first
                day = np.datetime64(int(t) + 1, "M").astype("datetime64[D]") - 1
            else:
                day = np.datetime64(int(t), "M").astype("datetime64[D]")
            if self.epoch:  # monthly Unix time stamps: written back as integers too
                return str(int(day.astype("datetime64[s]").astype(np.int64)))
            return str(day)
        if self.epoch and self.kind == "seconds":
            return str(int(t))
        if self.utc_offset is not None:  # written in the zone the file's stamps were in
            stamp = np.datetime64(int(t) + self.utc_offset, "s")
            sign, minutes = "+" if self.utc_offset >= 0 else "-", abs(self.utc_offset) // 60
            return f"{str(stamp).replace('T', ' ')}{sign}{minutes // 60:02d}:{minutes % 60:02d}"
        stamp = np.datetime64(int(t), "s")
        if t % DAY == 0 and step % DAY == 0:
            return str(stamp.astype("datetime64[D]"))
        return str(stamp).replace("T", " ")


def parse_freq(freq: str | None, what: str = "--freq") -> tuple[str, int] | None:
    """``("seconds", 3600)`` for ``"H"``, ``("months", 3)`` for ``"Q"``, ``("int", 5)`` for
    ``"5"``; None for None."""
    if freq is None:
        return None
    text = freq.strip().lower()
    digits = "".join(ch for ch in text if ch.isdigit())
    unit = text[len(digits) :]
    count = int(digits) if digits else 1
    if not unit:
        return ("int", count) if digits and count > 0 else None
    if unit in UNITS and count > 0:
        return "seconds", count * UNITS[unit]
    if unit in MONTHS and count > 0:
        return "months", count * MONTHS[unit]
    raise InputError(
        f"{what}: unknown frequency {freq!r}; expected an integer step or a count and a unit: "
        "s, min, H, D, W, M, Q, Y (for example 15min)"
    )


def default_season(kind: str, step: int) -> int:
    """The usual seasonal period of a frequency: 24 for hourly, 7 for daily, 12 for monthly."""
    if kind == "months":
        return {1: 12, 3: 4}.get(step, 1)
    if kind == "seconds":
        if step < DAY and DAY % step == 0:
            return DAY // step  # one day
        return {DAY: 7, 7 * DAY: 52}.get(step, 1)
    return 1


def calendar_size(kind: str, season: int) -> int:
    return {"seconds": 6, "months": 2}.get(kind, 2 if season > 1 else 0)


def calendar(kind: str, season: int, t: np.ndarray) -> np.ndarray:
    """Calendar features of times ``t`` (any shape) -> ``t.shape + (calendar_size,)``: sine
    and cosine of the hour of the day, the day of the week and the day of the year (time
    stamps), of the month of the year (months), or of the position in the season (steps)."""
    t = np.asarray(t, dtype=np.float64)
    if kind == "seconds":
        phases = [
            (t % DAY) / DAY,
            ((t // DAY + 3) % 7) / 7,  # 1970-01-01 was a Thursday: Monday is 0
            (t % (365.2425 * DAY)) / (365.2425 * DAY),
        ]
    elif kind == "months":
        phases = [(t % 12) / 12]
    else:
        phases = [(t % season) / season] if season > 1 else []
    out = [f(2 * np.pi * p) for p in phases for f in (np.sin, np.cos)]
    return np.stack(out, axis=-1) if out else np.zeros((*t.shape, 0))


# -- reading ------------------------------------------------------------------------------------
def _time_value(text: str) -> tuple[str, int, int | None] | None:
    """("int", n, None), ("seconds", s, UTC offset in seconds or None) or None when ``text``
    is neither; a stamp with a zone (``Z``, ``+02:00``) is counted in UTC."""
    text = text.strip()
    if _YEAR_MONTH.fullmatch(text):  # 1949-01, as monthly data sets write it: the month's first
        text += "-01"
    quarter = _QUARTER.fullmatch(text)
    if quarter:  # 2024Q2: the quarter's first day
        text = f"{quarter.group(1)}-{3 * int(quarter.group(2)) - 2:02d}-01"
    try:
        step = int(text)
    except ValueError:
        pass
    else:  # beyond 64 bits no step fits the arrays (was an OverflowError traceback)
        return ("int", step, None) if abs(step) < 2**62 else None
    try:
        for utc in ("Z", " UTC", "UTC", " GMT"):  # 2014-07-01T00:00:00Z, ... 00:00:00 UTC
            if text.endswith(utc) and text[: -len(utc)][-1:].isdigit():
                text = text[: -len(utc)] + "+00:00"
                break
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    offset = stamp.utcoffset()
    if offset is not None:
        stamp = stamp.replace(tzinfo=None) - offset
    seconds = (stamp - datetime(1970, 1, 1)).total_seconds()
    return "seconds", int(round(seconds)), None if offset is None else int(offset.total_seconds())


def read_long_csv(
    path: str | Path,
    id_column: str = "unique_id",
    time_column: str = "ds",
    target_column: str = "y",
    freq: str | None = None,
    future: bool = False,
    what: str = "--csv",
) -> Panel:
    """Read a long-format CSV into a `Panel` (see the module docstring for the rules)."""
    name = str(path)
    try:
        open(path, "rb").close()
    except OSError as exc:
        raise InputError(f"{what}: cannot read {name!r} ({exc.strerror})") from None
    text = decode_utf8(Path(path), what)
    with io.StringIO(text, newline="") as fh:
        delimiter = delimiter_of(fh.readline())
        styles = number_styles(text, delimiter)  # is 1.000 one or a thousand? (dialect)
        fh.seek(0)
        reader = _Rows(csv_rows(fh, delimiter), f"{what}: {name!r}")
        header = next(reader, None)
        if header is None:
            raise InputError(f"{what}: {name!r} is empty; expected a header {id_column},ds,y")
        header = [h.strip() for h in header]
        as_written = list(header)
        # a file of one series may leave out the default id column: the file's name is its id
        single = id_column == "unique_id" and column_index(header, id_column) is None
        for col in (id_column, time_column, target_column):  # Unique_ID, DS, Y: ignoring case
            index = column_index(header, col)
            if index is not None:
                header[index] = col
            elif not (single and col == id_column):
                raise InputError(
                    f"{what}: {name!r} has no column {col!r} in its header (columns: "
                    f"{', '.join(header[:10])}); expected {id_column}, {time_column}, "
                    f"{target_column} (rename with --id-column/--time-column/--target-column)"
                )
        i_t, i_y = header.index(time_column), header.index(target_column)
        i_id = None if single else header.index(id_column)
        cov_index = [
            k
            for k in range(len(header))
            if k not in (i_id, i_t, i_y) and not _UNNAMED.fullmatch(header[k])
        ]
        cov_names = [header[k] for k in cov_index]
        first = None  # 31/01/2024 or 01/31/2024: the column's order (rnnkit.data.dates)
        if written_so(text):
            with io.StringIO(text, newline="") as again:
                column = (r[i_t] for r in csv_rows(again, delimiter) if len(r) > i_t)
                first = day_first(column, f"{what}: {name!r}, column {time_column!r}")
        rows: dict[str, list[tuple[int, int, float, list[float]]]] = {}
        kinds: set[str] = set()
        count = 0
        utc_offset = None
        year_month = True  # every stamp a year and month alone (1949-01)
        quarters = True  # every stamp a quarter (2024Q1)
        end = reader.line_num  # the header's last line
        for row in reader:
            line, end = end + 1, reader.line_num  # a quoted field may hold line breaks
            if not row or all(not c.strip() for c in row):
                continue
            if header_again(row, as_written, f"{what}: {name!r}, line {line}"):
                continue
            if len(row) != len(header):
                raise InputError(
                    f"{what}: {name!r}, line {line}: {len(row)} fields, expected {len(header)} "
                    f"as in the header"
                )
            count += 1
            where = f"{what}: {name!r}, line {line}, column"
            parsed = _time_value(iso(row[i_t], first))
            if parsed is None:
                raise InputError(
                    f"{where} {time_column!r}: expected a time stamp (ISO 8601) or an integer "
                    f"step, got {row[i_t]!r}"
                )
            kinds.add(parsed[0])
            year_month = year_month and bool(_YEAR_MONTH.fullmatch(row[i_t].strip()))
            quarters = quarters and bool(_QUARTER.fullmatch(row[i_t].strip()))
            utc_offset = parsed[2] if parsed[2] is not None else utc_offset
            if len(kinds) > 1:
                raise InputError(
                    f"{where} {time_column!r}: {row[i_t]!r} mixes time stamps and integer steps"
                )
            missing = row[i_y].strip() in MISSING
            y = math.nan if missing else number(row[i_y], delimiter, styles.get(i_y))
            if y is None:
                raise InputError(f"{where} {target_column!r}: expected a number, got {row[i_y]!r}")
            covs = []
            for k, c in zip(cov_index, cov_names, strict=True):
                v = number(row[k], delimiter, styles.get(k))
                if v is None or not math.isfinite(v):
                    raise InputError(
                        f"{where} {c!r}: expected a number (covariate), got {row[k]!r} "
                        f"(every column besides {id_column}, {time_column} and {target_column} "
                        "is a numeric covariate; leave other columns out of the file)"
                    )
                covs.append(v)
            uid = Path(name).stem if i_id is None else row[i_id].strip()
            rows.setdefault(uid, []).append((line, parsed[1], y, covs))
    if not rows:
        raise InputError(f"{what}: {name!r} has a header but no rows")
    kind = kinds.pop()
    grid = parse_freq(freq)
    epoch = kind == "int" and (grid is None or grid[0] != "int") and _looks_like_unix_time(rows)
    if epoch:  # seconds since 1970 as sensors and databases write them: a clock, not a count
        kind = "seconds"
    if grid is not None and grid[0] != kind:
        if not (grid[0] == "months" and kind == "seconds"):
            raise InputError(
                f"--freq: {freq!r} does not fit {time_column!r} of {name!r}, which holds "
                f"{'integer steps' if kind == 'int' else 'time stamps'}"
            )
    if grid is None and kind == "seconds" and _looks_monthly(rows):
        grid = ("months", _month_step(rows))
    month_end = False
    if grid is not None and grid[0] == "months":
        kind = "months"
        month_end = all(_is_month_end(row[1]) for r in rows.values() for row in r)
        rows = {uid: [(ln, _to_month(t), y, c) for ln, t, y, c in r] for uid, r in rows.items()}
    if grid is None and kind != "int" and all(len(r) == 1 for r in rows.values()):
        raise InputError(
            f"{what}: {name!r}: every series has one row, so the time between rows cannot be "
            f"told; expected a series with two rows or more, or --freq (H, D, 15min, M, ...)"
        )
    common = grid[1] if grid else _common_step(rows)
    series = [
        _regular(
            uid,
            r,
            grid[1] if grid else None,
            (name, what, time_column, target_column),
            future,
            common,
            kind == "seconds",
        )
        for uid, r in rows.items()
    ]
    offset = utc_offset if kind == "seconds" else None
    year_month, quarters = year_month and kind == "months", quarters and kind == "months"
    return Panel(series, kind, cov_names, count, offset, month_end, epoch, year_month, quarters)


def _looks_like_unix_time(rows: dict[str, list]) -> bool:
    """Integer times that are Unix time stamps: all between 2001-09-09 (1e9 s) and 2096, and
    the common step whole minutes (60 for each minute, 3600 hourly, 86400 daily)."""
    times = np.asarray([row[1] for r in rows.values() for row in r], dtype=np.int64)
    if not (np.all(times >= 1_000_000_000) and np.all(times < 4_000_000_000)):
        return False
    step = _common_step(rows)
    return step >= 60 and step % 60 == 0


def _is_month_end(seconds: int) -> bool:
    """Whether a time stamp is the last day of its month (at midnight or later that day)."""
    day = np.datetime64(seconds, "s").astype("datetime64[D]")
    return bool((day + 1).astype("datetime64[M]") != day.astype("datetime64[M]"))


def _common_step(rows: dict[str, list]) -> int:
    """The most common positive difference between consecutive times over all series: the
    step of a series of one row, which has none of its own (1 when no series has two rows)."""
    diffs = [b[1] - a[1] for r in rows.values() for a, b in zip(r, r[1:], strict=False)]
    positive = np.asarray([d for d in diffs if d > 0], dtype=np.int64)
    if not positive.size:
        return 1
    values, counts = np.unique(positive, return_counts=True)
    return int(values[np.argmax(counts)])


class _Rows:
    """A CSV reader whose malformed rows (a field over the csv module's size limit, a stray
    quote in strict dialects) end in one `InputError` line naming the file and the line."""

    def __init__(self, reader: Any, where: str) -> None:
        self.reader, self.where = reader, where

    @property
    def line_num(self) -> int:
        return int(self.reader.line_num)

    def __iter__(self) -> _Rows:
        return self

    def __next__(self) -> list[str]:
        try:
            return next(self.reader)
        except csv.Error as exc:
            raise InputError(
                f"{self.where}, line {self.reader.line_num}: malformed CSV ({exc})"
            ) from None


def _to_month(seconds: int) -> int:
    return int(np.datetime64(seconds, "s").astype("datetime64[M]").astype(np.int64))


def _looks_monthly(rows: dict[str, list]) -> bool:
    diffs = [b[1] - a[1] for r in rows.values() for a, b in zip(r, r[1:], strict=False)]
    days = np.asarray(diffs) / DAY
    return (
        len(days) > 0
        and bool(np.all((days >= 28) & (days <= 31 * 12 + 1)))
        and (float(np.median(days)) >= 28)
    )


def _month_step(rows: dict[str, list]) -> int:
    months = [
        _to_month(b[1]) - _to_month(a[1])
        for r in rows.values()
        for a, b in zip(r, r[1:], strict=False)
    ]
    values, counts = np.unique(months, return_counts=True)
    return max(1, int(values[np.argmax(counts)]))


def _regular(
    uid: str,
    rows: list[tuple[int, int, float, list[float]]],
    step: int | None,
    where: tuple[str, str, str, str],
    future: bool,
    single_step: int = 1,
    clock: bool = False,
) -> Series:
    name, what, time_column, target_column = where
    lines = [r[0] for r in rows]
    t = np.array([r[1] for r in rows], dtype=np.int64)
    y = np.array([r[2] for r in rows], dtype=np.float64)
    cov = np.array([r[3] for r in rows], dtype=np.float64).reshape(len(rows), -1)
    d = np.diff(t)
    if np.any(d <= 0):
        k = int(np.argmax(d <= 0)) + 1
        how = "repeats" if d[k - 1] == 0 else "is before"
        hint = ""
        if clock and abs(int(d[k - 1])) <= 3600:  # local clock times across a DST change?
            hint = (
                " (local times repeat an hour where daylight saving time ends: write them in "
                "UTC or with their offset, e.g. 2024-10-27T02:00:00+01:00)"
            )
        raise InputError(
            f"{what}: {name!r}, line {lines[k]}, column {time_column!r}: the time of series "
            f"{uid!r} {how} the one on line {lines[k - 1]}; expected increasing times within "
            f"each series (sort the rows by id and time){hint}"
        )
    if step is None:
        if len(d):
            values, counts = np.unique(d, return_counts=True)
            step = int(values[np.argmax(counts)])
        else:
            step = single_step  # one row: the step of the other series
    if len(d) and np.any(d % step):
        k = int(np.argmax(d % step != 0)) + 1
        raise InputError(
            f"{what}: {name!r}, line {lines[k]}, column {time_column!r}: series {uid!r} is off "
            f"its grid of one step every {step} (the step from line {lines[k - 1]} is {d[k - 1]}); "
            "expected regular times (set --freq)"
        )
    observed = ~np.isnan(y)
    if future:
        last = int(np.flatnonzero(observed)[-1]) if observed.any() else -1
    else:
        last = len(y) - 1
    # a missing y between two values is a missing step, filled as a missing row is; before the
    # first value (or after the last without future rows) nothing can fill it
    unfilled = [k for k in (0, last) if k >= 0 and not observed[k]]
    if unfilled or last < 0:
        k = unfilled[0] if unfilled else 0
        raise InputError(
            f"{what}: {name!r}, line {lines[k]}, column {target_column!r}: missing value "
            f"(empty or NaN) {'at the start' if k == 0 else 'at the end'} of series {uid!r}; "
            "expected a number (missing values between two numbers are interpolated)"
        )
    if np.any(np.isinf(y[: last + 1])):
        k = int(np.argmax(np.isinf(y[: last + 1])))
        raise InputError(
            f"{what}: {name!r}, line {lines[k]}, column {target_column!r}: {y[k]} in series "
            f"{uid!r}; expected a finite number"
        )
    index = (t - t[0]) // step
    full = np.arange(index[-1] + 1)
    n = int(index[last]) + 1
    known = observed[: last + 1]
    values = np.interp(full[:n], index[: last + 1][known], y[: last + 1][known])
    covs = (
        np.stack([np.interp(full, index, c) for c in cov.T], axis=1)
        if cov.shape[1]
        else (np.zeros((len(full), 0)))
    )
    filled = n - int(known.sum())
    return Series(uid, values, int(t[0]), int(step), covs, filled)
