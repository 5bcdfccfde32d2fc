"""Numbers as a person reads them: one compact spelling for messages, tables and reports."""
from __future__ import annotations

import math

SIGNIFICANT_DIGITS = 6


def compact(value: object) -> str:
    """A number in at most SIGNIFICANT_DIGITS significant digits: `0.5`, `1e+300`, `1 - 1e-300` rounds
    to `1`; integers up to a million print whole. Anything else (a SymPy expression that is not a
    number, text) prints as str()."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        text = str(value)
        return text if len(text) <= 40 else f"{text[:37]}..."
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return f"{number:.{SIGNIFICANT_DIGITS}g}"


__all__ = ["SIGNIFICANT_DIGITS", "compact"]
