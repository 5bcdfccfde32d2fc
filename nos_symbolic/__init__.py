"""nos-symbolic: neural-network optimizers as symbolic formulas.

    >>> from nos_symbolic import parse_rule, SymbolicOptimizer, PowerSign
    >>> rule = parse_rule("exp(sign(g) * sign(m)) * g")     # PowerSign
    >>> rule.canonical_text, rule.latex()
    >>> opt = SymbolicOptimizer(model.parameters(), rule=rule, lr=0.1)
"""
from nos_symbolic.errors import NosError, RuleError
from nos_symbolic.named import AddSign, PowerSign
from nos_symbolic.optim import SymbolicOptimizer
from nos_symbolic.registry import NAMED_RULES, PRIMITIVES, REGISTRY, Primitive
from nos_symbolic.rule import Rule, parse_rule
from nos_symbolic.schedules import (cosine_decay, linear_cosine_decay, linear_decay, noisy_linear_cosine_decay,
                                    restart_decay)

__all__ = [
    "NAMED_RULES", "PRIMITIVES", "REGISTRY", "AddSign", "NosError", "PowerSign", "Primitive", "Rule", "RuleError",
    "SymbolicOptimizer", "cosine_decay", "linear_cosine_decay", "linear_decay", "noisy_linear_cosine_decay",
    "parse_rule", "restart_decay",
]
