"""SymPy nodes the DSL needs beyond SymPy's own (clip, drop, the cd/rd decays), the operand symbols,
and the bound on exact constants.

Pure SymPy: each node knows how to simplify itself and how it prints in LaTeX; what it computes on
tensors lives in the registry.

Bounded constants. Literals are exact rationals and SymPy folds constant arithmetic exactly, which has
no bound: 1e300^15 has 4,500 digits, ((1e300^64)^64)^64 has 78 million. A rule's constants end up as
float64 anyway, so an exact number whose numerator or denominator needs more than MAX_EXACT_BITS bits
(1e300 needs 997) is replaced by its float64 value: a Float, or +-oo when it overflows, as torch's
float64 arithmetic would give (1e300 * 1e300 = inf, 1e-300 * 1e-300 = 0).
"""
from __future__ import annotations

import math
from typing import Callable, TypeVar

import sympy
from sympy import Function, Integer, Number, S, Symbol

# Operand symbols. Assumptions are facts the update can rely on: v is a running mean of g^2, so v >= 0,
# which lets SymPy see sqrt|v| = sqrt(v) and |g^2| = g^2.
g = Symbol("g", real=True)
m = Symbol("m", real=True)
v = Symbol("v", nonnegative=True)
y = Symbol("y", real=True)
w = Symbol("w", real=True)
noise = Symbol("noise", real=True)
anneal = Symbol("anneal", real=True)
ld = Symbol("ld", nonnegative=True)
# Protected division x / (y + delta) keeps delta symbolic so canonical forms stay exact; the compiler
# substitutes its value (1e-8).
delta = Symbol("delta", positive=True)


class Clip(Function):
    """clip(x, c) = min(max(x, -c), c): clamp to [-c, c], c > 0."""

    nargs = 2

    @classmethod
    def eval(cls, x, c):  # noqa: D102 - SymPy hook
        if x.is_zero:
            return S.Zero
        if x is S.NaN:  # torch.clamp keeps NaN; SymPy's Min cannot compare it
            return S.NaN
        if isinstance(x, Number):
            return sympy.Max(sympy.Min(x, c), -c)
        if isinstance(x, Clip):
            return Clip(x.args[0], sympy.Min(x.args[1], c))
        return None

    def _eval_is_real(self):
        return self.args[0].is_real

    def _sympystr(self, printer):
        return f"clip({printer._print(self.args[0])}, {printer._print(self.args[1])})"

    def _latex(self, printer, exp=None):
        body = rf"\operatorname{{clip}}\left({printer._print(self.args[0])}, {printer._print(self.args[1])}\right)"
        return rf"{body}^{{{exp}}}" if exp else body


class Drop(Function):
    """drop(x, p, k) = x * mask / (1 - p), mask ~ Bernoulli(1 - p) elementwise (inverted dropout).

    k labels the draw: every application of drop in a rule is an independent draw, so two drops of the
    same x never cancel. Canonical forms renumber k (see canonical.py).
    """

    nargs = 3
    is_number = False  # a random draw, never a number SymPy may evaluate (see _Decay)

    @classmethod
    def eval(cls, x, p, k):  # noqa: D102 - SymPy hook
        if x.is_zero:
            return S.Zero
        if p.is_zero:
            return x
        return None

    def _eval_is_real(self):
        return self.args[0].is_real

    def _sympystr(self, printer):
        x, p, k = (printer._print(a) for a in self.args)
        return f"drop{k}({x}, {p})"

    def _latex(self, printer, exp=None):
        body = rf"\operatorname{{drop}}_{{{printer._print(self.args[1])}}}\left({printer._print(self.args[0])}\right)"
        return rf"\left({body}\right)^{{{exp}}}" if exp else body


class _Decay(Function):
    """A sign decay f(t) in [0, 1] of the step t with n periods over T steps."""

    nargs = 1
    is_real = True
    is_nonnegative = True
    # A function of the step, not a number: with only numbers as arguments SymPy would otherwise take
    # cd(0.5) for a constant and answer sign questions by numeric evaluation, which it cannot do here
    # and retries at every level of a nested rule (log(log(...(cd)))) at exponential cost.
    is_number = False
    label = ""

    def _sympystr(self, printer):
        return f"{self.label}({printer._print(self.args[0])})"

    def _latex(self, printer, exp=None):
        body = rf"\operatorname{{{self.label}}}_{{{printer._print(self.args[0])}}}(t)"
        return rf"{body}^{{{exp}}}" if exp else body


class CosineDecay(_Decay):
    """cd(t; n) = 0.5 * (1 + cos(2 pi n t / T))."""

    label = "cd"


class RestartDecay(_Decay):
    """rd(t; n) = 0.5 * (1 + cos(pi * ((n t) mod T) / T))."""

    label = "rd"


def drop_index(node: Drop) -> int:
    """The draw label k of a drop node."""
    return int(node.args[2])


def make_drop(x: sympy.Expr, p: sympy.Expr, k: int) -> sympy.Expr:
    """drop(x, p) as the k-th independent draw."""
    return Drop(x, p, Integer(k))


MAX_EXACT_BITS = 1000
_FLOAT_MAX = sympy.Float(1.7976931348623157e308)


T = TypeVar("T")


def fold_up(expr: sympy.Basic, combine: Callable[[sympy.Basic, list[T]], T],
            done: dict[sympy.Basic, T] | None = None) -> T:
    """combine(node, [value of each arg]) for every node of expr, children first, each distinct node
    once; without recursion, so any depth fits Python's stack. `done` holds values already known (a
    node found there is not entered) and receives the new ones."""
    done = {} if done is None else done
    stack = [expr]
    while stack:
        node = stack[-1]
        if node in done:
            stack.pop()
            continue
        pending = [a for a in node.args if a not in done]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        done[node] = combine(node, [done[a] for a in node.args])
    return done[expr]


def number_bits(n: sympy.Expr) -> int:
    """How large a number is exactly: bits of the larger of numerator and denominator for a rational;
    0 for a Float within float64 range, and more than MAX_EXACT_BITS for one beyond it."""
    if n.is_Rational:
        return max(n.p.bit_length(), n.q.bit_length())
    if n.is_Float and abs(n) > _FLOAT_MAX:
        return MAX_EXACT_BITS + 1
    return 0


def float_number(value: float) -> sympy.Expr:
    """A float64 value as a SymPy number: Float, +-oo or nan."""
    if math.isnan(value):
        return S.NaN
    if math.isinf(value):
        return S.Infinity if value > 0 else S.NegativeInfinity
    return sympy.Float(value)


def as_float_number(n: sympy.Expr) -> sympy.Expr:
    """The float64 value of a SymPy number (correctly rounded; +-oo beyond float64's range)."""
    if n.is_Rational:
        try:
            return float_number(n.p / n.q)
        except OverflowError:
            return S.Infinity if n.p > 0 else S.NegativeInfinity
    return float_number(float(n))


def bounded_number(n: sympy.Expr) -> sympy.Expr:
    """n itself while exact arithmetic on it stays cheap, else its float64 value."""
    return as_float_number(n) if number_bits(n) > MAX_EXACT_BITS else n
