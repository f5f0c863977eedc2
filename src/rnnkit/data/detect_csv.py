"""Time series for anomaly detection from a CSV with a header (NAB's ``timestamp,value``, and an
optional series id column), read with one-line errors naming the file, row and column.

Fields are separated by commas, or by semicolons or tabs when the header holds no comma
(`rnnkit.data.dialect`). Rules: every row needs the time and value columns (and the id column
when one is named); a value must be a finite number (an empty field, text, NaN or infinity is
an error, not a gap to fill); timestamps are all numbers (steps) or all dates/times NumPy reads
(``2014-07-01 00:00:00``, ISO 8601; ``31/01/2024`` or ``01/31/2024 1:00 PM`` as spreadsheets
write dates, the column's order decided by `rnnkit.data.dates`), and strictly increase within
each series (a duplicate or a step back is an error), unless the order is ``"file"``: then the
rows are taken in the order of the file, repeats and steps back included (NAB's own files
repeat an hour at a change of daylight saving time), as a stream would deliver them. Rows are
numbered as lines of the file, the header being line 1.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .dates import day_first, iso, written_so
from .dialect import (
    column_index,
    csv_rows,
    delimiter_of,
    finite,
    header_again,
    number,
    number_styles,
)
from .text import decode_utf8


@dataclass
class Series:
    """One series: its rows' original text (written back as read) and its values."""

    id: str
    times: list[str] = field(default_factory=list)
    values_text: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # row number in the file (in file order)


_ZONE = re.compile(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?)\s*(Z|UTC|GMT|[+-]\d\d(?::?\d\d)?)$")


def parse_time(text: str) -> float | np.datetime64 | None:
    """A timestamp as a number (a step) or a ``datetime64``; None when it is neither. A time
    with a zone (``2014-07-01T00:00:00Z``, ``+02:00``) is counted in UTC."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) else None
    text = text.strip()
    zone = _ZONE.search(text)
    offset = np.timedelta64(0, "m")
    if zone is not None:  # NumPy would read it too, but warns on every file
        text = text[: zone.start(2)].rstrip()
        if zone.group(2)[0] in "+-":  # +02:00, +0200 or PostgreSQL's +02
            sign = -1 if zone.group(2)[0] == "-" else 1
            digits = zone.group(2)[1:].replace(":", "")
            offset = np.timedelta64(sign * (int(digits[:2]) * 60 + int(digits[2:] or 0)), "m")
    try:
        return np.datetime64(text, "ns") - offset
    except ValueError:
        return None


def parse_value(text: str, delimiter: str = ",", style: str | None = None) -> float | None:
    """A finite number (with a decimal comma in a semicolon-separated file, read in the
    column's ``style``, `rnnkit.data.dialect.number_styles`); else None."""
    return finite(number(text, delimiter, style))


TIME_ORDERS = ("strict", "file")


class TimeOrder:
    """Checks that each series' timestamps are of one kind and strictly increase (``order``
    ``"strict"``), or only that they are of one kind (``"file"``: the rows in file order)."""

    def __init__(self, order: str = "strict", day_first: bool | None = None) -> None:
        if order not in TIME_ORDERS:
            raise InputError(f"--time-order: expected one of {TIME_ORDERS}, got {order!r}")
        self.strict = order == "strict"
        self.day_first = day_first  # 31/01/2024 (True) or 01/31/2024 (False): rnnkit.data.dates
        self.kind: type | None = None
        self.last: dict[str, tuple[object, str]] = {}

    def check(self, sid: str, text: str, where: str, column: str) -> None:
        t = parse_time(iso(text, self.day_first))
        if t is None:
            raise InputError(
                f"{where}, column {column!r}: expected a timestamp (a date/time such as "
                f"2014-07-01 00:00:00, or a number), got {text[:40]!r}"
            )
        kind = type(t) if not isinstance(t, float) else float
        if self.kind is None:
            self.kind = kind
        elif kind is not self.kind:
            expected = "a number" if self.kind is float else "a date/time"
            raise InputError(
                f"{where}, column {column!r}: expected {expected} like the rows before, "
                f"got {text[:40]!r}"
            )
        prev = self.last.get(sid)
        if self.strict and prev is not None and not t > prev[0]:  # type: ignore[operator]
            what = "repeats" if t == prev[0] else "comes before"
            series = f" of series {sid!r}" if sid else ""
            raise InputError(
                f"{where}, column {column!r}: timestamp {text[:40]!r} {what} the previous "
                f"one{series} ({prev[1][:40]!r}); expected strictly increasing timestamps (or "
                f"--time-order file: the rows in file order)"
            )
        self.last[sid] = (t, text)


class LiveTimeOrder(TimeOrder):
    """`TimeOrder` for lines that arrive one at a time (``rnnkit detect --stream``), where a
    column's spreadsheet dates (``01/02/2024``) cannot be read all at once to tell day first
    from month first (`rnnkit.data.dates.day_first`). The order is decided by the first date
    that tells (a number above 12, or dots); until then both readings are checked, and a
    reading under which a timestamp fails (no 13th month) or does not increase is dropped. Each
    line's answer echoes its own timestamp, so the reading only serves these checks."""

    def __init__(self, order: str = "strict") -> None:
        super().__init__(order)
        self.readings: list[TimeOrder] | None = None  # both, while undecided

    def check(self, sid: str, text: str, where: str, column: str) -> None:
        if self.readings is None and self.day_first is None and written_so(text):
            try:
                self.day_first = day_first([text], where)
            except InputError:  # 01/02/2024: either reading, for now
                self.readings = [self._reading(True), self._reading(False)]
        if self.readings is None:
            try:
                return super().check(sid, text, where, column)
            except InputError:
                other = None if self.day_first is None else not self.day_first
                if other is None or parse_time(iso(text, other)) is None:
                    raise
                read = "day" if self.day_first else "month"
                raise InputError(
                    f"{where}, column {column!r}: {text[:40]!r} is not a date written {read} "
                    f"first as the lines before; expected one order (or ISO 8601, 2024-01-31)"
                ) from None
        alive, errors = [], []
        for reading in self.readings:
            try:
                reading.check(sid, text, where, column)
                alive.append(reading)
            except InputError as exc:
                errors.append(exc)
        if not alive:
            raise errors[0]
        self.readings = alive
        if len(alive) == 1:  # decided: carry on as one reading
            self.day_first, self.kind, self.last = alive[0].day_first, alive[0].kind, alive[0].last
            self.readings = None

    def _reading(self, first: bool) -> TimeOrder:
        reading = TimeOrder("strict" if self.strict else "file", first)
        reading.kind, reading.last = self.kind, dict(self.last)
        return reading


def _column(header: list[str], column: str, name: str, option: str) -> int:
    """The index of ``column`` in the header (`rnnkit.data.dialect.column_index`: ignoring case
    when only one column matches, ``Timestamp,Value``, as --stream reads it too); else one line
    naming ``option``, which names it."""
    index = column_index(header, column)
    if index is None:
        raise InputError(
            f"{name!r}: no column {column!r} in the header; the columns are {header[:20]} "
            f"(name yours with {option})"
        )
    return index


def read_series(
    path: str | os.PathLike,
    time_column: str = "timestamp",
    value_column: str = "value",
    id_column: str | None = None,
    time_order: str = "strict",
) -> tuple[list[Series], list[tuple[str, int]]]:
    """The series of a CSV file, and the rows in file order as (series id, index in it);
    ``time_order``: as `TimeOrder`."""
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise InputError(f"{name!r}: no such file; expected a CSV file with a header")
    try:
        text = decode_utf8(path, "detect")  # UTF-8 (a mark dropped), or UTF-16 with its mark
    except OSError as exc:
        raise InputError(f"{name!r}: cannot read it ({exc.strerror})") from None
    with io.StringIO(text, newline="") as fh:
        try:
            delimiter = delimiter_of(fh.readline())
            styles = number_styles(text, delimiter)  # is 1.000 one or a thousand? (dialect)
            fh.seek(0)
            reader = csv_rows(fh, delimiter)
            header = next(reader, None)
        except csv.Error as exc:
            raise InputError(f"{name!r}: not a readable CSV file ({exc})") from None
        if header is None:
            raise InputError(f"{name!r}: the file is empty; expected a header and rows")
        header = [h.strip() for h in header]
        ti = _column(header, time_column, name, "--time-column")
        vi = _column(header, value_column, name, "--value-column")
        ii = _column(header, id_column, name, "--id-column") if id_column is not None else None
        series: dict[str, Series] = {}
        order: list[tuple[str, int]] = []
        first = None  # 31/01/2024 or 01/31/2024: the column's order (rnnkit.data.dates)
        if written_so(text):
            with io.StringIO(text, newline="") as again:
                column = (r[ti] for r in csv_rows(again, delimiter) if len(r) > ti)
                first = day_first(column, f"{name!r}, column {time_column!r}")
        times = TimeOrder(time_order, first)
        line = 1
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not f.strip() for f in row):
                    continue  # a blank line
                where = f"{name!r} row {line}"
                if header_again(row, header, where):
                    continue
                if len(row) < len(header):
                    missing = header[len(row)] if len(row) < len(header) else ""
                    raise InputError(
                        f"{where}: expected {len(header)} fields, got {len(row)} "
                        f"(no column {missing!r})"
                    )
                sid = row[ii].strip() if ii is not None else ""
                times.check(sid, row[ti].strip(), where, time_column)
                value = parse_value(row[vi], delimiter, styles.get(vi))
                if value is None:
                    raise InputError(
                        f"{where}, column {value_column!r}: expected a finite number, got "
                        f"{row[vi][:40]!r}"
                    )
                s = series.get(sid)
                if s is None:
                    s = series[sid] = Series(sid)
                order.append((sid, len(s.values)))
                s.times.append(row[ti].strip())
                s.values_text.append(row[vi].strip())
                s.values.append(value)
                s.rows.append(line)
        except csv.Error as exc:
            raise InputError(f"{name!r} row {line + 1}: malformed CSV ({exc})") from None
    if not order:
        raise InputError(f"{name!r}: no rows after the header")
    return list(series.values()), order
