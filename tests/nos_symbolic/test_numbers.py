"""The one compact spelling of numbers in messages."""
from __future__ import annotations

import math

import pytest
import sympy

from nos_symbolic.numbers import compact


@pytest.mark.parametrize("value, text", [
    (sympy.Integer(10) ** 300, "1e+300"), (1 - sympy.Rational(1, 10**300), "1"), (0.5, "0.5"),
    (123456, "123456"), (math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "nan"), (sympy.oo, "inf"),
])
def test_numbers_print_compactly(value, text):
    assert compact(value) == text


def test_non_numbers_print_as_text_cut_short():
    assert compact(sympy.Symbol("delta")) == "delta"
    assert len(compact("x" * 500)) == 40
