"""Rule text -> SymPy expression, or a RuleError naming the problem (and its column where it has one).

    parse_expr(text) = build_expr(parse_tree(text))

  - parse_syntax.py: checks on the raw text and the Lark parse (`check_text`, `parse_tree`); user text
    is only ever tokenised, never evaluated.
  - parse_build.py: the builder, whose methods are the semantics of the grammar (each name is looked
    up in the registry).
  - parse_limits.py, parse_facts.py: the bounds that keep any text up to MAX_LENGTH within well under
    a second, and the facts about each node they are checked on.

Nothing here imports torch: a constant the builder folds is evaluated by the numpy backend.
"""
from __future__ import annotations

import sympy

from nos_symbolic.parse_build import build_expr
from nos_symbolic.parse_facts import expansion_terms
from nos_symbolic.parse_limits import (MAX_BUILD_SECONDS, MAX_COEFFICIENT_BITS, MAX_CONSTANT_NODES, MAX_DEGREE,
                                       MAX_DEPTH, MAX_EXPANSION_TERMS, MAX_LENGTH, MAX_LITERAL, MAX_NODES,
                                       MAX_SYMPY_DEPTH, MAX_TOWER)
from nos_symbolic.parse_syntax import check_text, parse_tree

__all__ = [
    "MAX_BUILD_SECONDS", "MAX_COEFFICIENT_BITS", "MAX_CONSTANT_NODES", "MAX_DEGREE", "MAX_DEPTH",
    "MAX_EXPANSION_TERMS", "MAX_LENGTH", "MAX_LITERAL", "MAX_NODES", "MAX_SYMPY_DEPTH", "MAX_TOWER",
    "build_expr", "check_text", "expansion_terms", "parse_expr", "parse_tree",
]


def parse_expr(text: str) -> sympy.Expr:
    """Parse DSL text into a SymPy expression (SymPy's automatic simplification applied)."""
    return build_expr(parse_tree(text))
