"""What the parser's builder knows of each SymPy node it makes, computed from its children's.

The bounds of parse_limits.py read these facts: size and depth, the largest exact number, whether a
node is a fixed number at run time, its degree as a polynomial, whether it is real (as far as the
structure shows, never asking SymPy), and the multinomial expansion SymPy would do on a power of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import sympy

from nos_symbolic import functions as F
from nos_symbolic.parse_limits import MAX_EXPANSION_TERMS


@dataclass(frozen=True)
class Facts:
    """What the builder tracks per SymPy node: the bits of its largest exact number; whether it is a
    fixed number at run time (no operand, schedule or draw; delta is a fixed 1e-8); its tree size and
    depth; its free symbols; and its degree as a polynomial in them (None when it is not one)."""

    bits: int
    constant: bool
    size: int
    depth: int
    symbols: frozenset
    degree: int | None  # of the numerator once put over a common denominator, for a rational function
    inexact: bool  # holds a Float
    fraction: bool  # holds a negative power of a symbolic base
    real: bool  # real (or +-oo) for every value of the operands, as SymPy can see at once
    nonnegative: bool  # and never negative
    sum_terms: int  # the most terms of a sum inside that SymPy cannot prove real (0: none)
    sum_power: int  # the largest integer power such a sum is raised to (1: the sum itself)
    tower: int  # nesting of constants to symbolic powers, c^(d^(... g))

    def expansion(self, power: int = 1) -> int:
        """Terms of the multinomial expansion of (a non-real sum inside)^(sum_power * power), the work
        SymPy does to split it into real and imaginary parts (0 when there is nothing to expand)."""
        return expansion_terms(self.sum_terms, self.sum_power * power)


def expansion_terms(terms: int, power: int) -> int:
    """Terms of (t_1 + ... + t_terms)^power multiplied out: C(power + terms - 1, terms - 1); 0 for a
    power below 2, and just past MAX_EXPANSION_TERMS when the power alone exceeds it."""
    if power < 2 or terms < 2:
        return 0
    if power > MAX_EXPANSION_TERMS:
        return MAX_EXPANSION_TERMS + 1
    return math.comb(power + terms - 1, terms - 1)


_VARYING = (F.Drop, F.CosineDecay, F.RestartDecay)  # nodes whose value is not fixed
_NONNEGATIVE_FUNCTIONS = (sympy.Abs, sympy.exp, F.CosineDecay, F.RestartDecay)


class FactBook:
    """Facts of every node met in one parse, computed once each without recursion."""

    def __init__(self) -> None:
        self._facts: dict[sympy.Basic, Facts] = {}

    def __call__(self, expr: sympy.Basic) -> Facts:
        return F.fold_up(expr, self._combine, self._facts)

    @staticmethod
    def _combine(node: sympy.Basic, kids: list[Facts]) -> Facts:
        bits = max([F.number_bits(node) if node.is_Number else 0] + [k.bits for k in kids])
        size = 1 + sum(k.size for k in kids)
        depth = 1 + max((k.depth for k in kids), default=0)
        if node.is_Symbol:
            return Facts(bits, node is F.delta, size, depth, frozenset([node]), 1, False, False,
                          node.is_real is True, node.is_nonnegative is True, 0, 0, 0)
        constant = not isinstance(node, _VARYING) and all(k.constant for k in kids)
        symbols = frozenset().union(*(k.symbols for k in kids))
        degree = _degree(node, kids, symbols)
        inexact = node.is_Float or any(k.inexact for k in kids)
        fraction = any(k.fraction for k in kids) or (
            isinstance(node, sympy.Pow) and bool(kids[0].symbols) and node.exp.is_negative is True)
        real, nonnegative = _sign_facts(node, kids)
        sum_terms = max((k.sum_terms for k in kids), default=0)
        sum_power = max((k.sum_power for k in kids), default=0)
        if isinstance(node, sympy.Add) and symbols and not real:
            sum_terms, sum_power = max(sum_terms, len(node.args)), max(sum_power, 1)
        elif isinstance(node, sympy.Pow) and node.exp.is_Integer:
            sum_power = kids[0].sum_power * abs(int(node.exp))
        tower = max((k.tower for k in kids), default=0)
        if isinstance(node, sympy.Pow) and kids[1].symbols and not kids[0].symbols:
            tower += 1
        return Facts(bits, constant, size, depth, symbols, degree, inexact, fraction, real, nonnegative,
                      sum_terms, sum_power, tower)

    def big_numbers(self, expr: sympy.Basic) -> set[sympy.Expr]:
        """The numbers in expr beyond MAX_EXACT_BITS (subtrees without one are not entered)."""
        found, stack = set(), [expr]
        while stack:
            node = stack.pop()
            if self(node).bits <= F.MAX_EXACT_BITS:
                continue
            if node.is_Number:
                found.add(node)
            stack.extend(node.args)
        return found


def _degree(node: sympy.Basic, kids: list[Facts], symbols: frozenset) -> int | None:
    """node's degree as a polynomial in its symbols (of the numerator over a common denominator)."""
    degrees = [k.degree for k in kids]
    if not symbols:
        return 0
    if None in degrees:
        return None
    if isinstance(node, sympy.Add):  # over a common denominator the degrees of fractions add up
        return sum(degrees) if any(k.fraction for k in kids) else max(degrees)
    if isinstance(node, sympy.Mul):
        return sum(degrees)
    if isinstance(node, sympy.Pow) and node.exp.is_Integer:  # a negative power is a denominator's
        return degrees[0] * abs(int(node.exp))
    return None


def _sign_facts(node: sympy.Basic, kids: list[Facts]) -> tuple[bool, bool]:
    """(real, nonnegative) of node from its children's, as far as the structure shows (never asks
    SymPy, whose own questions are what the bounds keep cheap); False where unsure."""
    if node.is_Number:
        return node.is_extended_real is True, node.is_extended_nonnegative is True
    real = all(k.real for k in kids)
    if isinstance(node, sympy.Pow):
        base, exponent = kids
        if node.exp.is_Integer:
            return base.real, base.real and (base.nonnegative or int(node.exp) % 2 == 0)
        return base.nonnegative and exponent.real, base.nonnegative and exponent.real
    if isinstance(node, sympy.Abs):
        return True, True
    if isinstance(node, (sympy.Add, sympy.Mul)):
        nonnegative = all(k.nonnegative for k in kids) and (isinstance(node, sympy.Add) or real)
        return real, real and nonnegative
    return real, real and isinstance(node, _NONNEGATIVE_FUNCTIONS)
