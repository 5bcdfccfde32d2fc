"""LaTeX as a paper prints a rule: \\hat{m}, \\hat{v}, \\hat{\\gamma}, \\operatorname{sign}, e^{...},
fractions for division. The protected-division delta is an implementation detail and is not shown:
m / (sqrt(v) + delta) prints as \\frac{\\hat{m}}{\\sqrt{\\hat{v}}}."""
from __future__ import annotations

import sympy
from sympy.printing.latex import LatexPrinter

from nos_symbolic import functions as F
from nos_symbolic.registry import latex_symbol_names


class RuleLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with the paper's operand names and delta hidden."""

    def __init__(self) -> None:
        super().__init__({"symbol_names": latex_symbol_names()})

    def _print_Add(self, expr, order=None):
        if F.delta in expr.args:
            rest = [a for a in expr.args if a is not F.delta]
            if len(rest) == 1:
                return self._print(rest[0])
            expr = sympy.Add(*rest, evaluate=False)
        return super()._print_Add(expr, order)

    def _print_sign(self, expr, exp=None):
        body = rf"\operatorname{{sign}}\left({self._print(expr.args[0])}\right)"
        return rf"{body}^{{{exp}}}" if exp else body


def to_latex(expr: sympy.Expr) -> str:
    """The LaTeX of a rule's expression."""
    return RuleLatexPrinter().doprint(expr)
