"""Dates as spreadsheets write them: ``31/01/2024`` (day first, most of the world),
``01/31/2024`` (month first, the United States), ``31.01.2024`` or ``31-01-2024``, each
with an optional time (``13:00``, ``13:00:05``, or ``1:00 PM``).

Which order a column uses is decided from all its dates, as a reader of the column would: a
first number above 12 makes it day first, a second number above 12 month first. A column with
both is an error; a column with neither (every day from 1 to 12) cannot be decided and is an
error too, asking for ISO 8601 (``2024-01-31``), unless it is written with dots, which are
day first wherever they are used. `iso` then rewrites each date as ISO 8601 for the readers
(`rnnkit.data.series`, `rnnkit.data.detect_csv`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import InputError

_DATE = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})(?=$|[ T])")
_ANYWHERE = re.compile(r"(?<!\d)\d{1,2}([/.-])\d{1,2}\1\d{4}(?!\d)")
_CLOCK = re.compile(r"(\d{1,2})(:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*([AaPp])\.?[Mm]\.?$")


def written_so(text: str) -> bool:
    """Whether ``text`` (a file's text, or one field) holds such a date: a cheap check before
    reading a whole column for `day_first`."""
    return _ANYWHERE.search(text) is not None


def day_first(values: Iterable[str], where: str) -> bool | None:
    """True when the column's dates are day first, False when month first, None when none of
    ``values`` is written so (the others are left to the readers' own rules); ``where`` names
    the file and column in the one-line errors."""
    seen = ""
    first_big = second_big = dots = ""
    for value in values:
        m = _DATE.match(value.strip())
        if m is None:
            continue
        seen = seen or value.strip()
        if int(m.group(1)) > 12:
            first_big = first_big or value.strip()
        if int(m.group(3)) > 12:
            second_big = second_big or value.strip()
        if m.group(2) == ".":
            dots = dots or value.strip()
    if not seen:
        return None
    if first_big and second_big:
        raise InputError(
            f"{where}: dates written day first ({first_big!r}) and month first "
            f"({second_big!r}) in one column; expected one order (or ISO 8601, 2024-01-31)"
        )
    if first_big or second_big:
        return bool(first_big)
    if dots:
        return True
    raise InputError(
        f"{where}: dates such as {seen!r} read as day/month/year and month/day/year alike (no "
        "day in the column is above 12); expected ISO 8601 (2024-01-31) to tell them apart"
    )


def iso(text: str, first: bool | None) -> str:
    """``text`` with its date rewritten as ISO 8601 (``first``: `day_first`'s answer for its
    column; None leaves ``text`` as it is), a 12-hour clock as 24 hours; other text unchanged."""
    if first is None:
        return text
    text = text.strip()
    m = _DATE.match(text)
    if m is None:
        return text
    a, b = int(m.group(1)), int(m.group(3))
    day, month = (a, b) if first else (b, a)
    rest = text[m.end() :].strip()
    clock = _CLOCK.fullmatch(rest)
    if clock is not None:  # 1:05 PM -> 13:05, 12:30 AM -> 00:30
        hour = int(clock.group(1)) % 12 + (12 if clock.group(3) in "Pp" else 0)
        rest = f"{hour:02d}{clock.group(2)}"
    elif rest[:2].endswith(":"):  # 9:00 -> 09:00
        rest = "0" + rest
    return f"{m.group(4)}-{month:02d}-{day:02d}" + (f" {rest}" if rest else "")
