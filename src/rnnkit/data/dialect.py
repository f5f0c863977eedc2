"""Which character separates the fields of a user's CSV file, told from its header line.

Commas, unless the header holds none but tabs or semicolons: a spreadsheet in a locale whose
decimal mark is a comma (most of Europe) saves "CSV" with semicolons, and then writes numbers
with a decimal comma (``3,5``), which `number` reads when the separator is a semicolon.

In a tab-separated file a quote is text (``"Best film ever" he said``), as in the TSV format;
only a field quoted whole (``"a ""b"" c"``, closed right before a tab or a line end, as
spreadsheets quote a field holding a quote, a tab or a line break) loses its quotes. `csv_rows`
reads both kinds.

A dot in such a file is a decimal point or a thousands separator; `number_styles` decides per
column, from all its values, as a spreadsheet writes a file in one locale. Dots are read as
thousands separators (``1.000`` is a thousand) in a column whose dotted values are all groups
of three digits (``1.000``, ``12.500``, ``1.234.567``) when the file shows its locale: a
decimal comma in any column (``2,5``, ``1.234,5``), or in that column a number with two dots
or a whole number written without one (``500`` beside ``1.000``). Otherwise, and in a column
with any other dotted value (``2.5``, ``0.125``), dots are decimal points, as a program that
writes semicolons with decimal points (``pandas.to_csv(sep=";")``) writes them: a column of
``1.000`` and ``12.500`` alone reads 1 and 12.5.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from collections.abc import Iterable
from typing import Any

from ..errors import RnnkitWarning


def delimiter_of(header: str) -> str:
    """``","``, or ``"\\t"``/``";"`` when the header line holds no comma but that character
    (outside quotes: ``id;"sales, EUR"`` is separated by semicolons)."""
    bare = re.sub(r'"[^"]*"', "", header)
    if "," not in bare:
        for other in ("\t", ";"):
            if other in bare:
                return other
    return ","


# a whole number grouped by thousands with dots, then an optional decimal comma: 1.234.567,89
_GROUPED = re.compile(r"\s*[+-]?[1-9]\d{0,2}(?:\.\d{3})+(?:,\d*)?\s*")
_DECIMAL_COMMA = re.compile(r"\s*[+-]?[\d.]*\d,\d+\s*")
_WHOLE = re.compile(r"\s*[+-]?\d+\s*")
# how a column of a semicolon file writes its numbers (module docstring)
COMMA, GROUPED, POINT = "comma", "grouped", "point"


class _TabRows:
    """Rows and ``line_num`` (the line a row ends on), as `csv.reader` gives them, of a
    tab-separated file: a quote is text (``"Best film ever" he said``), except around a whole
    field, closed right before a tab or the end of a line (``"a ""b"" c"``), which may then
    hold tabs and line breaks, as spreadsheets write such a field."""

    def __init__(self, stream: Iterable[str]) -> None:
        self.text = "".join(stream)
        self.pos = 0
        self.line_num = 0

    def __iter__(self) -> _TabRows:
        return self

    def __next__(self) -> list[str]:
        text = self.text
        if self.pos >= len(text):
            raise StopIteration
        fields = []
        while True:
            quoted = _QUOTED_FIELD.match(text, self.pos) if text.startswith('"', self.pos) else None
            field = quoted or _PLAIN_FIELD.match(text, self.pos)
            assert field is not None  # the plain pattern matches the empty string
            value = field.group(0)
            if quoted:
                self.line_num += len(_LINE_BREAK.findall(value))
                value = value[1:-1].replace('""', '"')
            fields.append(value)
            self.pos = field.end()
            if not text.startswith("\t", self.pos):
                break
            self.pos += 1
        end = _LINE_BREAK.match(text, self.pos)
        self.pos = end.end() if end else len(text)
        self.line_num += 1
        return fields


_QUOTED_FIELD = re.compile(r'"(?:[^"]|"")*"(?=\t|\r\n|\n|\r|$)')
_PLAIN_FIELD = re.compile(r"[^\t\r\n]*")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")


def csv_rows(stream: Iterable[str], delimiter: str) -> Any:
    """The rows of a CSV (``csv.reader``, quoting as spreadsheets write it) or, for a tab
    ``delimiter``, of a TSV file (quotes are text unless around a whole field); both count
    ``line_num``. ``stream`` is opened with ``newline=""``."""
    if delimiter == "\t":
        return _TabRows(stream)
    return csv.reader(stream, delimiter=delimiter)


def number_styles(text: str, delimiter: str) -> dict[int, str]:
    """Per column index of the CSV ``text`` (its header line skipped), how a dot is read:
    `COMMA` (a decimal comma column; dots group thousands), `GROUPED` (whole numbers with dots
    between groups of three) or `POINT` (module docstring); empty unless ``delimiter`` is a
    semicolon. A file the csv module cannot read gets no styles here (its reader names it)."""
    if delimiter != ";":
        return {}
    grouped: dict[int, bool] = {}  # column -> every dotted value so far grouped by thousands
    comma: set[int] = set()
    shown: set[int] = set()  # columns that show grouping: two dots, or a plain whole number
    try:
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        next(rows, None)
        for row in rows:
            for k, field in enumerate(row):
                if _DECIMAL_COMMA.fullmatch(field):
                    comma.add(k)
                elif "." in field:
                    grouped[k] = grouped.get(k, True) and bool(_GROUPED.fullmatch(field))
                    if field.count(".") > 1:
                        shown.add(k)
                elif _WHOLE.fullmatch(field):
                    shown.add(k)
    except csv.Error:
        return {}
    styles = {
        k: GROUPED if every and (comma or k in shown) else POINT for k, every in grouped.items()
    }
    return styles | {k: COMMA for k in comma}


def number(text: str, delimiter: str = ",", style: str | None = None) -> float | None:
    """``text`` as a float (``3,5`` too in a semicolon-separated file); None when it is not.
    ``style`` (`number_styles`): `COMMA` or `GROUPED` read ``1.000`` as a thousand."""
    if style in (COMMA, GROUPED) and _GROUPED.fullmatch(text):
        text = text.replace(".", "")
    try:
        return float(text)
    except ValueError:
        pass
    if delimiter == ";" and text.count(",") == 1 and "." not in text:
        try:
            return float(text.replace(",", "."))
        except ValueError:
            return None
    return None


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def header_again(row: list[str], header: list[str], where: str) -> bool:
    """Whether ``row`` repeats the header (files joined with ``cat``, each with its header);
    if so a `RnnkitWarning` says that ``where`` (a file and line) is passed over."""
    if [f.strip() for f in row] != header:
        return False
    warnings.warn(
        f"{where} repeats the header (files joined, each with its header?); passed over",
        RnnkitWarning,
        stacklevel=3,
    )
    return True


def column_index(header: list[str], column: str) -> int | None:
    """Where ``column`` is in the header: the exact name, else the one name equal to it
    ignoring case (``Text``, ``Timestamp``); None when there is none or more than one."""
    if column in header:
        return header.index(column)
    same = [k for k, h in enumerate(header) if h.lower() == column.lower()]
    return same[0] if len(same) == 1 else None
