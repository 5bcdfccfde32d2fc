"""Rule text -> SymPy expression: input checks, the Lark parse, and the transformer whose methods are the
semantics (each name is looked up in the registry). User text is only ever tokenised, never evaluated.
"""
from __future__ import annotations

import difflib
import itertools
from functools import lru_cache

import sympy
from lark import Token, Transformer, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, v_args

from grammar import load_parser
from nos_symbolic.errors import RuleError
from nos_symbolic.registry import DECAYS, NAMED_RULES, REGISTRY, Primitive, named_rule_text

MAX_LENGTH = 4096  # characters; a 3-group rule of the paper's space is about 200
MAX_DEPTH = 200  # nesting of the parse tree; deeper trees would exhaust Python's recursion in SymPy
MAX_LITERAL = 1e300  # literals beyond float range are refused rather than turned into huge integers

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
    if _depth(tree) > MAX_DEPTH:
        raise RuleError(f"rule nested too deeply (limit {MAX_DEPTH} levels)")
    return tree


def _depth(tree: Tree) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((c, d + 1) for c in node.children if isinstance(c, Tree))
    return deepest


@v_args(inline=True)
class _ToSympy(Transformer):
    """The semantics of the grammar: each method builds SymPy through the registry."""

    def __init__(self) -> None:
        super().__init__()
        self._draws = itertools.count()

    def number(self, tok: Token) -> sympy.Expr:
        value = float(tok)
        if value > MAX_LITERAL:
            raise RuleError(f"number {str(tok)!r} is too large", tok.line, tok.column)
        if 0 < value < 1 / MAX_LITERAL:
            raise RuleError(f"number {str(tok)!r} is too small", tok.line, tok.column)
        return sympy.Rational(str(tok))

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
        return REGISTRY["sub"].build(left, right)

    def call(self, tok: Token, args: list[sympy.Expr] | None = None) -> sympy.Expr:
        name = str(tok)
        entry = REGISTRY.get(name)
        if entry is None:
            if name in NAMED_RULES:
                raise RuleError(f"{name!r} is a named rule, not a function: write it alone", tok.line, tok.column)
            raise _unknown(name, tok)
        if entry.kind == "operand":
            raise RuleError(f"{name!r} is an operand, not a function: write it without parentheses",
                            tok.line, tok.column)
        return self._apply(entry, list(args or []), tok)

    def args(self, *items: sympy.Expr) -> list[sympy.Expr]:
        return list(items)

    def add(self, x, y):
        return REGISTRY["add"].build(x, y)

    def sub(self, x, y):
        return REGISTRY["sub"].build(x, y)

    def mul(self, x, y):
        return REGISTRY["mul"].build(x, y)

    def div(self, x, y):
        return REGISTRY["div"].build(x, y)

    def pow(self, x, _op, y):
        return REGISTRY["pow"].build(x, y)

    def neg(self, x):
        return REGISTRY["neg"].build(x)

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
        return entry.build(*values)

    @staticmethod
    def _param(entry: Primitive, param, arg: sympy.Expr | None, tok: Token) -> sympy.Expr:
        if arg is None:
            return sympy.Rational(str(param.default))
        if not (arg.is_Number and arg.is_finite and arg.is_real):
            raise RuleError(f"{entry.name}: {param.name} must be a number, got {arg}", tok.line, tok.column)
        if not param.check(float(arg)):
            raise RuleError(f"{entry.name} needs {param.requirement}, got {param.name} = {arg}",
                            tok.line, tok.column)
        return arg


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
    try:
        expr = _ToSympy().transform(tree)
    except RuleError:
        raise
    except Exception as err:  # lark wraps errors raised inside the transformer
        inner = getattr(err, "orig_exc", err)
        if isinstance(inner, RuleError):
            raise inner from None
        raise RuleError(f"cannot build rule: {inner}") from None
    if not isinstance(expr, sympy.Expr):
        raise RuleError("not an expression")
    return expr
