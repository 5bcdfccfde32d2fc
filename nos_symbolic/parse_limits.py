"""The bounds that make every rule text parse, or fail with a RuleError, in well under a second.

SymPy's automatic simplification and assumptions have slow paths (exponential or worse in the size of
a number, a degree or a nesting); the builder (parse_build.py) checks every node it makes against
these bounds before SymPy gets to work on it:

  - Exact numbers: beyond functions.MAX_EXACT_BITS a number becomes its float64 value (+-oo on
    overflow); a power checks before SymPy computes it (registry `_pow`).
  - Constants (no operand, schedule or draw; delta counts as its run-time 1e-8) of more than
    MAX_CONSTANT_NODES nodes, of degree above MAX_DEGREE in delta, holding a float, or not provably
    real are folded to the float64 value the rule computes at run time (numeric.constant_value):
    SymPy would carry a non-real one as complex, where float64 gives NaN. Small constants (sqrt(2),
    1/2 = 1/(2 + delta)) stay exact, so the usual rules keep their keys.
  - A polynomial in one signed operand (v, ld) of degree above MAX_DEGREE, or of degree 2 or more with
    a float or a number beyond MAX_COEFFICIENT_BITS, is refused: SymPy decides its sign by isolating
    real roots. A rational function counts the degree of its numerator over a common denominator.
  - An integer power of a sum SymPy cannot prove real is refused when its multinomial expansion (which
    SymPy computes to split real and imaginary parts) exceeds MAX_EXPANSION_TERMS terms.
  - Towers of constants to symbolic powers, 0.5^(0.5^(...^g)), deeper than MAX_TOWER are refused.
  - A SymPy tree of more than MAX_NODES nodes is refused; runs of + and * count as they grow.
  - Nesting as written is at most MAX_DEPTH, and of the SymPy expression MAX_SYMPY_DEPTH (log(x) is
    log|x|, x / y is x * (y + delta)^-1), so every later recursive stage (canonical form, printing,
    LaTeX, the compilers, SymPy's assumptions) stays well inside Python's recursion limit.
  - As a last bound, building stops after MAX_BUILD_SECONDS of CPU time, a hundred times what a rule
    of the paper's space needs (whether a rule just at the bound passes depends on the machine).
"""
from __future__ import annotations

MAX_LENGTH = 4096  # characters; a 3-group rule of the paper's space is about 200
MAX_DEPTH = 64  # nesting of calls, parentheses and powers as written
MAX_SYMPY_DEPTH = 2 * MAX_DEPTH  # nesting of the SymPy expression the rule becomes
MAX_LITERAL = 1e300  # literals beyond float range are refused rather than turned into huge integers
MAX_CONSTANT_NODES = 16  # a constant subexpression larger than this is evaluated to a float
MAX_DEGREE = 8  # of a polynomial in one signed operand (v, ld) alone; the paper's space reaches 8
MAX_COEFFICIENT_BITS = 64  # of the numbers in such a polynomial of degree 2 or more
MAX_TOWER = 8  # nesting of c^(d^(...)) over operands; 0.5^(0.5^(...(g3))) 16 deep takes seconds
MAX_EXPANSION_TERMS = 24  # multinomial terms of a power of a sum SymPy cannot prove real: 0.3 s
MAX_BUILD_SECONDS = 0.5  # CPU time; a rule of the paper's space takes a few milliseconds
MAX_NODES = 160  # tree size of the SymPy expression; the paper's 3-group rules stay below 60
