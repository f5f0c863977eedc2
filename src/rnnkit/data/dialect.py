"""Which character separates the fields of a user's CSV file, told from its header line.

Commas, unless the header holds none but tabs or semicolons: a spreadsheet in a locale whose
decimal mark is a comma (most of Europe) saves "CSV" with semicolons, and then writes numbers
with a decimal comma (``3,5``), which `number` reads when the separator is a semicolon.
"""

from __future__ import annotations

import math
import re


def delimiter_of(header: str) -> str:
    """``","``, or ``"\\t"``/``";"`` when the header line holds no comma but that character
    (outside quotes: ``id;"sales, EUR"`` is separated by semicolons)."""
    bare = re.sub(r'"[^"]*"', "", header)
    if "," not in bare:
        for other in ("\t", ";"):
            if other in bare:
                return other
    return ","


def number(text: str, delimiter: str = ",") -> float | None:
    """``text`` as a float (``3,5`` too in a semicolon-separated file); None when it is not."""
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


def column_index(header: list[str], column: str) -> int | None:
    """Where ``column`` is in the header: the exact name, else the one name equal to it
    ignoring case (``Text``, ``Timestamp``); None when there is none or more than one."""
    if column in header:
        return header.index(column)
    same = [k for k, h in enumerate(header) if h.lower() == column.lower()]
    return same[0] if len(same) == 1 else None
