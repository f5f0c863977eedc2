"""Which character separates the fields of a user's CSV file, told from its header line.

Commas, unless the header holds none but tabs or semicolons: a spreadsheet in a locale whose
decimal mark is a comma (most of Europe) saves "CSV" with semicolons, and then writes numbers
with a decimal comma (``3,5``), which `number` reads when the separator is a semicolon.
"""

from __future__ import annotations

import math


def delimiter_of(header: str) -> str:
    """``","``, or ``"\\t"``/``";"`` when the header line holds no comma but that character."""
    if "," not in header:
        for other in ("\t", ";"):
            if other in header:
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
