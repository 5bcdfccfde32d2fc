"""Rule text -> SymPy expression: input checks, the Lark parse, and the builder whose methods are the
semantics (each name is looked up in the registry). User text is only ever tokenised, never evaluated.

Any text up to MAX_LENGTH parses, or fails with a RuleError, in well under a second and without
exhausting Python's recursion:
  - The builder walks the parse tree with an explicit stack, and a run of + and - (or of *) becomes
    one n-ary SymPy node, so a sum of 800 terms is one flatten rather than 800 (which would cost n^2).
  - Exact constants stay bounded (see functions.py): every built node's numbers are checked, and one
    whose numerator or denominator outgrows MAX_EXACT_BITS becomes its float64 value (+-oo on
    overflow, as torch computes it); powers check before SymPy computes them (registry `_pow`).
  - A constant subexpression (no operand, schedule or draw; delta counts as its run-time 1e-8) of more
    than MAX_CONSTANT_NODES nodes, or a polynomial of degree above MAX_DEGREE in delta, is evaluated to
    its float64 value by the torch compiler, as the rule would compute it at run time: towers such as
    0.5^0.5^0.5^... otherwise send SymPy's assumptions on an exponential walk. Smaller constants
    (sqrt(2), exp(2), log(2), 1/2 = 1/(2 + delta)) stay exact, so the usual rules keep their keys.
  - SymPy decides the sign of a polynomial in one nonnegative symbol (v, ld) by isolating the real
    roots of its derivative: log((v+1)^200 - 2) takes 17 s, (v+1)*(v+2)*...*(v+16) - 2 over a second,
    and a degree-8 one with 1e300-sized coefficients a quarter of a second. Such a polynomial of degree
    above MAX_DEGREE, or of degree 2 or more with a number beyond MAX_COEFFICIENT_BITS, is refused (a
    RuleError), and so is one with a float coefficient (SymPy's polynomials over floats are slow to
    set up); the paper's space, three groups squaring at most once each, reaches degree 8 with
    small exact coefficients. Rational functions count the degree of their numerator over a common
    denominator, 1/(v + 1/(v + 1/(...))) included. A constant with delta that holds a float is
    folded to its value at once, for the same reason, and so is a constant SymPy cannot prove real
    ((-5)^(1/3) is 1/(3 + delta) away from an integer power): SymPy would carry it as a complex
    number and expand powers of it into real and imaginary parts, where torch computes NaN.
  - SymPy may expand a power of a sum, (a + b + ...)^n, into its multinomial terms (to split real and
    imaginary parts, say): a polynomial with a sum inside of degree above MAX_DENSE_DEGREE is refused,
    and so is any sum raised to an integer power above it ((g^(1/3) + 1)^1e300).
  - A tower of constants to symbolic powers, 0.5^(0.5^(...^g3)), costs SymPy seconds from about 16
    levels: more than MAX_TOWER levels are refused.
  - The rest of SymPy's work grows with the size of the expression, a millisecond or two a node: a
    rule whose SymPy tree exceeds MAX_NODES nodes is refused (a 4,096-character sum of 400 logs
    would take seconds). Runs of + and * are counted as they grow, so refusing is cheap.
  - SymPy's automatic simplification has more slow paths than the limits above name (towers of
    powers mixing huge constants and operands, say). As a last bound the builder stops, with a
    RuleError, once it has spent MAX_BUILD_SECONDS of CPU time: a hundred times what a rule of the
    paper's space needs, so only such monsters can meet it, but whether one just at the bound is
    refused depends on the machine.
  - The SymPy expression may nest at most MAX_DEPTH levels: every later stage (canonical form,
    printing, LaTeX, the compiler, SymPy's own assumptions) recurses over it, using a few Python frames
    a level, and this depth keeps all of them well inside Python's default limit of 1000.
"""
from __future__ import annotations

import difflib
import gc
import itertools
import time
from dataclasses import dataclass
from functools import lru_cache

import sympy
import torch
from lark import Token, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from grammar import load_parser
from nos_symbolic import functions as F
from nos_symbolic.compile import compile_expr
from nos_symbolic.errors import RuleError
from nos_symbolic.registry import DECAYS, NAMED_RULES, REGISTRY, Primitive, named_rule_text

MAX_LENGTH = 4096  # characters; a 3-group rule of the paper's space is about 200
MAX_DEPTH = 64  # nesting of the SymPy expression (and of parentheses); see the module docstring
MAX_LITERAL = 1e300  # literals beyond float range are refused rather than turned into huge integers
MAX_CONSTANT_NODES = 16  # a constant subexpression larger than this is evaluated to a float
MAX_DEGREE = 8  # of a polynomial in one signed operand (v, ld) alone; see the module docstring
MAX_COEFFICIENT_BITS = 64  # of the numbers in such a polynomial of degree 2 or more
MAX_TOWER = 8  # nesting of c^(d^(...)) over operands; 0.5^(0.5^(...(g3))) 16 deep takes seconds
MAX_DENSE_DEGREE = 16  # of a power or product of sums, (g3 + m)^4 in the paper's space is 12
MAX_BUILD_SECONDS = 0.5  # CPU time; a rule of the paper's space takes a few milliseconds
MAX_NODES = 160  # tree size of the SymPy expression; the paper's 3-group rules stay below 60

# Known bad inputs -> what to tell the user (lark's match_examples picks the closest parser state).
_SYNTAX_EXAMPLES: dict[str, list[str]] = {
    "an operand is missing after an operator": ["g +", "g *", "g ^", "-", "g + * m", "g / )", "g ** "],
    "two operands with no operator between them": ["g m", "g 2", "2 g", "(g)(m)", "g (m)", "2 exp(g)"],
    "unclosed parenthesis": ["(g", "exp(g", "((g)", "clip(g, 1e-3"],
    "unmatched closing parenthesis": ["g)", ")", "(g))"],
    "an argument is missing": ["clip(g,)", "clip(, g)", "exp(,)"],
    "an operator is missing its left operand": ["* g", "+ g", "^ g", "/ g"],
}


def check_text(text: str) -> None:
    """Refuse text the parser should never see: empty, too long, NUL bytes, non-ASCII, too deep."""
    if not isinstance(text, str):
        raise RuleError(f"a rule must be text, got {type(text).__name__}")
    if not text.strip():
        raise RuleError("empty rule: write an update such as 'exp(sign(g) * sign(m)) * g'")
    if len(text) > MAX_LENGTH:
        raise RuleError(f"rule too long ({len(text)} characters; the limit is {MAX_LENGTH})")
    for i, ch in enumerate(text):
        if ch == "\0":
            raise RuleError("NUL byte in rule", *_position(text, i))
        if ord(ch) > 127:
            raise RuleError(f"non-ASCII character {ch!r} in rule (the DSL is ASCII)", *_position(text, i))
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth > MAX_DEPTH:
            raise RuleError(f"parentheses nested too deeply (limit {MAX_DEPTH})", *_position(text, i))


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def parse_tree(text: str) -> Tree:
    """The Lark parse tree of checked text, or a RuleError naming the problem and its column."""
    check_text(text)
    parser = load_parser()
    try:
        tree = parser.parse(text)
    except UnexpectedCharacters as err:
        raise RuleError(f"unexpected character {text[err.pos_in_stream]!r}", err.line, err.column) from None
    except UnexpectedInput as err:
        label = err.match_examples(parser.parse, _SYNTAX_EXAMPLES, use_accepts=True)
        if label is None:
            label = "unexpected end of rule" if isinstance(err, UnexpectedEOF) else "syntax error"
            token = getattr(err, "token", None)
            if token is not None and getattr(token, "type", "") != "$END":
                label = f"unexpected {str(token)!r}"
        line, column = err.line, err.column
        if isinstance(err, UnexpectedEOF) or line is None or line < 1:
            line, column = _position(text, len(text))
        raise RuleError(label, line, column) from None
    return tree


@dataclass(frozen=True)
class _Facts:
    """What the builder tracks per SymPy node: the bits of its largest exact number; whether it is a
    fixed number at run time (no operand, schedule or draw; delta is a fixed 1e-8); its tree size and
    depth; its free symbols; and its degree as a polynomial in them (None when it is not one)."""

    bits: int
    constant: bool
    size: int
    depth: int
    symbols: frozenset
    degree: int | None  # of the numerator once put over a common denominator, for a rational function
    dense: bool  # a polynomial with a sum of symbols inside a power or product: SymPy may expand it
    inexact: bool  # holds a Float
    fraction: bool  # holds a negative power of a symbolic base
    sum_power: int  # the largest integer power a sum with symbols inside is raised to (1: the sum itself)
    tower: int  # nesting of constants to symbolic powers, c^(d^(... g))


_VARYING = (F.Drop, F.CosineDecay, F.RestartDecay)  # nodes whose value is not fixed


class _FactBook:
    """_Facts of every node met in one parse, computed once each without recursion."""

    def __init__(self) -> None:
        self._facts: dict[sympy.Basic, _Facts] = {}

    def __call__(self, expr: sympy.Basic) -> _Facts:
        return F.fold_up(expr, self._combine, self._facts)

    @staticmethod
    def _combine(node: sympy.Basic, kids: list[_Facts]) -> _Facts:
        bits = max([F.number_bits(node) if node.is_Number else 0] + [k.bits for k in kids])
        size = 1 + sum(k.size for k in kids)
        depth = 1 + max((k.depth for k in kids), default=0)
        if node.is_Symbol:
            return _Facts(bits, node is F.delta, size, depth, frozenset([node]), 1, False, False, False, 0, 0)
        constant = not isinstance(node, _VARYING) and all(k.constant for k in kids)
        symbols = frozenset().union(*(k.symbols for k in kids))
        degrees = [k.degree for k in kids]
        if not symbols:
            degree = 0
        elif None in degrees:
            degree = None
        elif isinstance(node, sympy.Add):  # over a common denominator the degrees of fractions add up
            degree = sum(degrees) if any(k.fraction for k in kids) else max(degrees)
        elif isinstance(node, sympy.Mul):
            degree = sum(degrees)
        elif isinstance(node, sympy.Pow) and node.exp.is_Integer:  # a negative power is a denominator's
            degree = degrees[0] * abs(int(node.exp))
        else:
            degree = None
        dense = degree is not None and bool(symbols) and (
            isinstance(node, sympy.Add) or any(k.dense for k in kids))
        inexact = node.is_Float or any(k.inexact for k in kids)
        fraction = any(k.fraction for k in kids) or (
            isinstance(node, sympy.Pow) and bool(kids[0].symbols) and node.exp.is_negative is True)
        sum_power = max((k.sum_power for k in kids), default=0)
        if isinstance(node, sympy.Add) and symbols:
            sum_power = max(sum_power, 1)
        elif isinstance(node, sympy.Pow) and node.exp.is_Integer:
            sum_power = kids[0].sum_power * abs(int(node.exp))
        elif not isinstance(node, (sympy.Mul, sympy.Pow)):
            sum_power = 0  # a function's argument is never raised to a power by SymPy
        tower = max((k.tower for k in kids), default=0)
        if isinstance(node, sympy.Pow) and kids[1].symbols and not kids[0].symbols:
            tower += 1
        return _Facts(bits, constant, size, depth, symbols, degree, dense, inexact, fraction, sum_power, tower)

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


class _ConstantEnv:
    """The Env (see compile.py) of a constant subexpression, which reads no operand, step or draw."""

    t = 1.0
    T = 1.0

    def tensor(self, name: str) -> torch.Tensor:
        return torch.zeros(1, dtype=torch.float64)


@dataclass
class _Chain:
    """The operands of a run of + and - (op "add") or of * (op "mul"), built as one n-ary node.

    A product keeps its numeric coefficient apart, folded (and bounded) factor by factor."""

    op: str
    terms: list[sympy.Expr]
    coefficient: sympy.Expr = sympy.S.One
    size: int = 1  # tree size of the node it will be


class _Builder:
    """The semantics of the grammar: each method builds SymPy through the registry.

    `build` walks the tree bottom-up with an explicit stack; every node it builds goes through
    `_checked`, which bounds its numbers, folds a large constant and refuses a node too deep, too large
    or too costly for SymPy (see the module docstring)."""

    def __init__(self) -> None:
        self._draws = itertools.count()
        self._facts = _FactBook()
        # CPU time is a system call; the wall clock is not, and a thread's CPU time never runs ahead
        # of it, so CPU time is read only once the wall clock has passed the bound
        self._wall_deadline = time.perf_counter() + MAX_BUILD_SECONDS
        self._deadline = time.process_time() + MAX_BUILD_SECONDS

    def build(self, tree: Tree) -> sympy.Expr:
        values: list = []
        stack: list[tuple[Tree | Token, bool]] = [(tree, False)]
        while stack:
            node, children_done = stack.pop()
            if isinstance(node, Token):
                values.append(node)
            elif not children_done:
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(node.children))
            else:
                n = len(node.children)
                args = values[len(values) - n:]
                del values[len(values) - n:]
                values.append(getattr(self, node.data)(*args))
        return self._expr(values[0])

    # --- leaves and calls ---

    def number(self, tok: Token) -> sympy.Expr:
        value = float(tok)
        if value > MAX_LITERAL:
            raise RuleError(f"number {str(tok)!r} is too large", tok.line, tok.column)
        if 0 < value < 1 / MAX_LITERAL:
            raise RuleError(f"number {str(tok)!r} is too small", tok.line, tok.column)
        return F.bounded_number(sympy.Rational(str(tok)))

    def name(self, tok: Token) -> sympy.Expr:
        name = str(tok)
        entry = REGISTRY.get(name)
        if entry is None:
            if name in NAMED_RULES:
                return _named_expr(name, None)
            raise _unknown(name, tok)
        if entry.kind in ("unary", "binary"):
            raise RuleError(f"{name!r} is a function: call it, e.g. {_signature(entry)}", tok.line, tok.column)
        return self._apply(entry, [], tok)

    def variant(self, tok: Token) -> sympy.Expr:
        base, decay = str(tok).rsplit("-", 1)
        if base in NAMED_RULES and base != "sgd":
            return _named_expr(base, decay)
        # Not a named rule: `g-cd` is the subtraction g - cd.
        left = self.name(Token("NAME", base, line=tok.line, column=tok.column))
        right = self.name(Token("NAME", decay, line=tok.line, column=tok.column + len(base) + 1))
        return self._checked(REGISTRY["sub"].build(left, right))

    def call(self, tok: Token, args: list | None = None) -> sympy.Expr:
        name = str(tok)
        entry = REGISTRY.get(name)
        if entry is None:
            if name in NAMED_RULES:
                raise RuleError(f"{name!r} is a named rule, not a function: write it alone", tok.line, tok.column)
            raise _unknown(name, tok)
        if entry.kind == "operand":
            raise RuleError(f"{name!r} is an operand, not a function: write it without parentheses",
                            tok.line, tok.column)
        return self._apply(entry, [self._expr(a) for a in args or []], tok)

    def args(self, *items) -> list:
        return list(items)

    # --- operators: a run of + and - (or of *) is one n-ary node, equal to the registry's binary
    # add, sub and mul applied left to right ---

    def add(self, x, y) -> _Chain:
        return self._extend(x, "add", self._expr(y))

    def sub(self, x, y) -> _Chain:
        return self._extend(x, "add", self._checked(REGISTRY["neg"].build(self._expr(y))))

    def mul(self, x, y) -> _Chain:
        return self._extend(x, "mul", self._expr(y))

    def div(self, x, y) -> sympy.Expr:
        return self._checked(REGISTRY["div"].build(self._expr(x), self._expr(y)))

    def pow(self, x, _op: Token, y) -> sympy.Expr:
        base, exponent = self._expr(x), self._expr(y)
        facts = self._facts(base)
        if exponent.is_Integer:  # refused before SymPy expands (g + m + ...)^n
            self._check_dense(facts, abs(int(exponent)))
        return self._checked(REGISTRY["pow"].build(base, exponent))

    @staticmethod
    def _check_dense(facts: _Facts, power: int = 1) -> None:
        """Refuse expr^power, expr with these facts, when SymPy may expand it beyond MAX_DENSE_DEGREE."""
        for degree in ((facts.degree * power,) if facts.dense else ()) + (facts.sum_power * power,):
            if degree > MAX_DENSE_DEGREE:
                raise RuleError(f"rule too complex: a power of a sum of degree {degree} (the limit is "
                                f"{MAX_DENSE_DEGREE})")

    def neg(self, x) -> sympy.Expr:
        return self._checked(REGISTRY["neg"].build(self._expr(x)))

    def _extend(self, chain, op: str, term: sympy.Expr) -> _Chain:
        if not (isinstance(chain, _Chain) and chain.op == op):
            chain = self._extend(_Chain(op, []), op, self._expr(chain))
        if op == "mul":
            coefficient, term = term.as_coeff_Mul()
            chain.coefficient = F.bounded_number(chain.coefficient * coefficient)
        chain.terms.append(term)
        chain.size += self._facts(term).size
        if chain.size > MAX_NODES:  # build it now: refused before more terms are built, or smaller
            built = self._expr(chain)
            chain = _Chain(op, [built], size=self._facts(built).size)
        return chain

    def _expr(self, value) -> sympy.Expr:
        """A built value as a SymPy expression (a pending chain is built now)."""
        if not isinstance(value, _Chain):
            return value
        if value.op == "add":
            return self._checked(sympy.Add(*value.terms))
        return self._checked(sympy.Mul(value.coefficient, *value.terms))

    def _checked(self, expr: sympy.Expr) -> sympy.Expr:
        facts = self._facts(expr)
        if facts.bits > F.MAX_EXACT_BITS:
            expr = expr.xreplace({n: F.as_float_number(n) for n in self._facts.big_numbers(expr)})
            facts = self._facts(expr)
        steep = facts.degree is not None and facts.degree > MAX_DEGREE
        if facts.constant and not expr.is_Number and (facts.size > MAX_CONSTANT_NODES or steep or facts.inexact
                                                      or expr.is_extended_real is not True):
            value = compile_expr(expr)(_ConstantEnv())
            expr = F.float_number(float(value[0]))
            facts = self._facts(expr)
        elif len(facts.symbols) == 1 and facts.degree is not None and facts.degree > 1:
            (symbol,) = facts.symbols
            if (symbol.is_nonnegative or symbol.is_nonpositive) and (
                    steep or facts.bits > MAX_COEFFICIENT_BITS or facts.inexact):
                raise RuleError(f"rule too complex: a polynomial in {symbol} alone of degree {facts.degree}, "
                                f"or with a float or a number of more than {MAX_COEFFICIENT_BITS} bits "
                                f"(the degree limit is {MAX_DEGREE})")
        self._check_dense(facts)
        if facts.tower > MAX_TOWER:
            raise RuleError(f"rule too complex: constants to symbolic powers nested {facts.tower} deep "
                            f"(the limit is {MAX_TOWER})")
        if facts.size > MAX_NODES:
            raise RuleError(f"rule too large: more than {MAX_NODES} operations and operands after "
                            f"simplification; simplify it")
        if facts.depth > MAX_DEPTH:
            raise RuleError(f"rule nested too deeply (more than {MAX_DEPTH} levels)")
        if time.perf_counter() > self._wall_deadline and time.process_time() > self._deadline:
            raise RuleError(f"rule too complex: SymPy needs more than {MAX_BUILD_SECONDS} s of CPU time to "
                            f"simplify it; simplify it by hand")
        return expr

    def _apply(self, entry: Primitive, args: list[sympy.Expr], tok: Token) -> sympy.Expr:
        required = entry.arity + sum(p.default is None for p in entry.params)
        allowed = entry.arity + len(entry.params)
        if not required <= len(args) <= allowed:
            expected = str(required) if required == allowed else f"{required} to {allowed}"
            raise RuleError(f"{entry.name} takes {expected} argument{'s' * (allowed != 1)} "
                            f"({_signature(entry)}), got {len(args)}", tok.line, tok.column)
        values = args[: entry.arity]
        for param, arg in itertools.zip_longest(entry.params, args[entry.arity:]):
            values.append(self._param(entry, param, arg, tok))
        if entry.fresh_draw:
            values.append(next(self._draws))
        return self._checked(entry.build(*values))

    @staticmethod
    def _param(entry: Primitive, param, arg: sympy.Expr | None, tok: Token) -> sympy.Expr:
        if arg is None:
            return sympy.Rational(str(param.default))
        if not (arg.is_Number and arg.is_finite and arg.is_real):
            raise RuleError(f"{entry.name}: {param.name} must be a finite number, got {arg}", tok.line, tok.column)
        if not param.check(float(arg)):
            raise RuleError(f"{entry.name} needs {param.requirement}, got {param.name} = {arg}",
                            tok.line, tok.column)
        # torch takes a parameter as a Python scalar: an integer past float64's exact range is a float
        return sympy.Float(float(arg)) if arg.is_Integer and abs(arg) > _EXACT_FLOAT_INT else arg


_EXACT_FLOAT_INT = 2**53


def _signature(entry: Primitive) -> str:
    names = ["x", "y"][: entry.arity] + [p.name for p in entry.params]
    return f"{entry.name}({', '.join(names)})"


def _unknown(name: str, tok: Token) -> RuleError:
    known = sorted(set(REGISTRY) | set(NAMED_RULES))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known names: {', '.join(known)}"
    return RuleError(f"unknown name {name!r}{hint}", tok.line, tok.column)


@lru_cache(maxsize=None)
def _named_expr(name: str, decay: str | None) -> sympy.Expr:
    if decay is not None and decay not in DECAYS:
        raise RuleError(f"unknown decay {decay!r} for {name}; expected one of {', '.join(DECAYS)}")
    return parse_expr(named_rule_text(name, decay))


def parse_expr(text: str) -> sympy.Expr:
    """Parse DSL text into a SymPy expression (SymPy's automatic simplification applied)."""
    tree = parse_tree(text)
    # No garbage collection while building: a full collection of SymPy's caches can take half a
    # second, and the builder's CPU-time bound (MAX_BUILD_SECONDS) must measure the rule, not that.
    collecting = gc.isenabled()
    gc.disable()
    try:
        expr = _Builder().build(tree)
    except RuleError:
        raise
    except (ArithmeticError, TypeError, ValueError, AssertionError) as err:
        # SymPy refusing a constant it cannot fold, or failing its own checks on a hostile expression
        raise RuleError(f"cannot build rule: SymPy cannot simplify it ({type(err).__name__}: {err})") from None
    finally:
        if collecting:
            gc.enable()
    if not isinstance(expr, sympy.Expr):
        raise RuleError("not an expression")
    return expr
