"""`Rule`: one update rule, parsed, canonicalised, keyed and fingerprinted; `parse_rule` makes it."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import sympy

from nos_symbolic import functions as F
from nos_symbolic.canonical import canonical_form, canonical_text, rule_key
from nos_symbolic.latex import to_latex
from nos_symbolic.numeric import NumpyProgram, numpy_program
from nos_symbolic.parse import parse_expr
from nos_symbolic.probes import fingerprint_form, fingerprints, outputs_match, probe_outputs, scale_normalized

if TYPE_CHECKING:
    from nos_symbolic.compile import Program

GRADIENT_OPERANDS = frozenset({"g", "m", "v", "y"})
_OPERAND_SYMBOLS = {s: s.name for s in (F.g, F.m, F.v, F.y, F.w, F.noise, F.anneal, F.ld)}
FLAGS = ("constant", "nonfinite", "scheduled", "stochastic")


@dataclass(frozen=True)
class Rule:
    """An update rule w <- w - lr * update(g, m, v, y, w, t).

    text:               what the user wrote
    expr:               the SymPy expression it means
    canonical:          the representative of every spelling of the same tree
    canonical_text:     its text; key = 16 hex digits of sha256(canonical_text)
    fingerprint:        hash of the outputs on fixed probes with the division's delta 1e-30 (probes.py):
                        the key under which functionally equal rules meet, including equalities
                        SymPy cannot prove; `same_behaviour` confirms a candidate found by it
    scale_fingerprint:  the same after dividing outputs by their RMS (equal up to a positive factor)
    operands:           operand names used (g, m, v, y, w, noise, anneal, ld, cd, rd)
    flags:              constant, nonfinite, stochastic, scheduled
    """

    text: str
    expr: sympy.Expr
    canonical: sympy.Expr
    canonical_text: str
    key: str
    fingerprint: str
    scale_fingerprint: str
    operands: frozenset[str]
    flags: frozenset[str]

    @property
    def program(self) -> Program:
        """The compiled torch update, what the optimizer runs (cached per canonical expression; the
        first use imports torch)."""
        from nos_symbolic.compile import compile_expr

        return compile_expr(self.canonical)

    @property
    def numpy_program(self) -> NumpyProgram:
        """The same update on numpy arrays, what probes and fingerprints run (cached likewise)."""
        return numpy_program(self.canonical)

    def latex(self) -> str:
        """Paper-style LaTeX of the update."""
        return to_latex(self.canonical)

    def to_dict(self) -> dict:
        """The JSON view printed by `nos parse --json`."""
        return {
            "input": self.text,
            "canonical": self.canonical_text,
            "latex": self.latex(),
            "key": self.key,
            "fingerprint": self.fingerprint,
            "scale_fingerprint": self.scale_fingerprint,
            "operands": sorted(self.operands),
            "flags": sorted(self.flags),
        }

    def __str__(self) -> str:
        return self.canonical_text


def operands_of(expr: sympy.Expr) -> frozenset[str]:
    """Operand names an expression reads."""
    names = {_OPERAND_SYMBOLS[s] for s in expr.free_symbols if s in _OPERAND_SYMBOLS}
    names |= {node.label for node in expr.atoms(F.CosineDecay, F.RestartDecay)}
    return frozenset(names)


def flags_of(expr: sympy.Expr, operands: frozenset[str], outputs: np.ndarray) -> frozenset[str]:
    """constant: no gradient-derived operand; nonfinite: NaN/Inf on the probes; stochastic: noise,
    anneal or drop; scheduled: ld, cd, rd or anneal."""
    flags = set()
    if not operands & GRADIENT_OPERANDS:
        flags.add("constant")
    if not np.isfinite(outputs).all():
        flags.add("nonfinite")
    if operands & {"noise", "anneal"} or expr.has(F.Drop):
        flags.add("stochastic")
    if operands & {"ld", "cd", "rd", "anneal"}:
        flags.add("scheduled")
    return frozenset(flags)


@lru_cache(maxsize=65536)
def parse_rule(text: str) -> Rule:
    """Parse DSL text into a Rule, or raise RuleError (a ValueError) naming the problem.

    >>> parse_rule("exp(sign(g) * sign(m)) * g").canonical_text
    'g*exp(sign(g)*sign(m))'
    """
    expr = parse_expr(text)
    canonical = canonical_form(expr)
    ctext = canonical_text(canonical)
    outputs = probe_outputs(numpy_program(canonical))
    shrunk = fingerprint_form(canonical)
    fingerprint, scale_fingerprint = fingerprints(outputs if shrunk is canonical
                                                  else probe_outputs(numpy_program(shrunk)))
    operands = operands_of(canonical)
    return Rule(
        text=text,
        expr=expr,
        canonical=canonical,
        canonical_text=ctext,
        key=rule_key(ctext),
        fingerprint=fingerprint,
        scale_fingerprint=scale_fingerprint,
        operands=operands,
        flags=flags_of(canonical, operands, outputs),
    )


def same_behaviour(a: Rule, b: Rule, up_to_scale: bool = False) -> bool:
    """Whether two rules compute the same update on the fingerprint probes, within float tolerance
    (probes.outputs_match; delta = 1e-8 as in training); up_to_scale compares outputs / RMS.

    The check behind a fingerprint hit: a store looks a rule up by `fingerprint` (or
    `scale_fingerprint`) and confirms each candidate with this before reusing its result.

    >>> same_behaviour(parse_rule("g / 1"), parse_rule("g"))
    True
    """
    if a.key == b.key:
        return True
    x, y = probe_outputs(a.numpy_program), probe_outputs(b.numpy_program)
    if up_to_scale:
        x, y = scale_normalized(x), scale_normalized(y)
    return outputs_match(x, y)
