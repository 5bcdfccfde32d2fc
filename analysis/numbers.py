"""Numbers and text in tables, reports and the command line's output, spelled one way: a fixed number
of decimals where that is short, else compact; p-values; long rules shortened.

A reward of 0.8731 prints as `0.8731`; one of 1e300 (a rules file may hold any number) as `1e+300`, not
300 digits.
"""
from __future__ import annotations

import math

from nos_symbolic.numbers import compact

FIXED_LIMIT = 1e6  # beyond this magnitude a fixed-decimals number is long: print it compact


def fixed(x: float | None, decimals: int = 4, missing: str = "-") -> str:
    """`x` with `decimals` decimals when its magnitude is below FIXED_LIMIT, else compact; `missing` for
    None."""
    if x is None:
        return missing
    value = float(x)
    if math.isfinite(value) and abs(value) < FIXED_LIMIT:
        return f"{value:.{decimals}f}"
    return compact(value)


def percent(x: float | None, decimals: int = 2, missing: str = "--") -> str:
    """100 * x with `decimals` decimals (compact when long); `missing` for None or a value not finite."""
    if x is None or not math.isfinite(x):
        return missing
    return fixed(100 * x, decimals, missing)


def p_value(p: float | None, missing: str = "--") -> str:
    """A p-value: 3 decimals down to 0.001, then one significant digit in exponent form (2e-05)."""
    if p is None or not math.isfinite(p):
        return missing
    return f"{p:.3f}" if p >= 0.001 else f"{p:.0e}"


def shorten(text: str, width: int = 40) -> str:
    """`text` cut to `width` characters, ending in ... when it was longer."""
    return text if len(text) <= width else text[: width - 3] + "..."
