"""nos-symbolic: neural-network optimizers as symbolic formulas.

    >>> from nos_symbolic import parse_rule
    >>> rule = parse_rule("exp(sign(g) * sign(m)) * g")     # PowerSign
    >>> rule.canonical_text, rule.latex()
"""
from nos_symbolic.errors import NosError, RuleError
from nos_symbolic.registry import NAMED_RULES, PRIMITIVES, REGISTRY, Primitive
from nos_symbolic.rule import Rule, parse_rule

__all__ = ["NAMED_RULES", "PRIMITIVES", "REGISTRY", "NosError", "Primitive", "Rule", "RuleError", "parse_rule"]
