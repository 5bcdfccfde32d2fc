"""Canonical form and key of a rule.

SymPy's automatic simplification already orders the arguments of + and *, folds constants, removes
double negation and turns g*g into g**2. What it cannot do is name random draws consistently: the k in
drop(x, p, k) is the order in which the text happened to apply drop. The canonical form renumbers the
draws so that every spelling of the same tree prints the same, and

    key = first 16 hex digits of sha256(canonical text)

which depends only on SymPy's printer, never on Python's per-process hash seed.
"""
from __future__ import annotations

import hashlib
import itertools
import math

import sympy

from nos_symbolic.functions import Drop, drop_index

_MAX_RELABELINGS = 720  # 6 interchangeable draws; beyond that the first-found order is kept


def canonical_form(expr: sympy.Expr) -> sympy.Expr:
    """The representative of expr's spelling class: drop draws numbered 0, 1, ... canonically."""
    drops = sorted(expr.atoms(Drop), key=drop_index)
    if not drops:
        return expr
    # Draws whose arguments print alike (draw labels masked) are interchangeable: try their orders and
    # keep the one whose text sorts first. Different-looking draws are ordered by their masked text.
    groups: dict[str, list[int]] = {}
    for node in drops:
        groups.setdefault(_masked(node), []).append(drop_index(node))
    ordered = [groups[s] for s in sorted(groups)]
    n_orders = math.prod(math.factorial(len(g)) for g in ordered)
    candidates = itertools.product(*(itertools.permutations(g) for g in ordered))
    if n_orders > _MAX_RELABELINGS:
        candidates = iter([tuple(tuple(g) for g in ordered)])
    best: tuple[str, sympy.Expr] | None = None
    for choice in candidates:
        old_labels = [k for group in choice for k in group]
        relabeled = _relabel(expr, {old: new for new, old in enumerate(old_labels)})
        text = sympy.sstr(relabeled)
        if best is None or text < best[0]:
            best = (text, relabeled)
    return best[1]


def _masked(node: Drop) -> str:
    return sympy.sstr(_relabel(node, {drop_index(d): 0 for d in node.atoms(Drop)}))


def _relabel(expr: sympy.Expr, mapping: dict[int, int]) -> sympy.Expr:
    # `replace` rebuilds bottom-up, so nested drops are renamed from their original labels.
    return expr.replace(
        lambda e: isinstance(e, Drop),
        lambda e: Drop(e.args[0], e.args[1], sympy.Integer(mapping[drop_index(e)])),
    )


def canonical_text(expr: sympy.Expr) -> str:
    """SymPy's string form of a canonical expression (stable across processes)."""
    return sympy.sstr(expr)


def rule_key(text: str) -> str:
    """A short stable hash of canonical text."""
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]
