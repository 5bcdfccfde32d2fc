"""Rule text -> Lark parse tree: the checks on raw text and the syntax errors a person reads.

User text is only ever tokenised, never evaluated. A syntax error names the problem and its column;
lark's `match_examples` picks the closest known mistake.
"""
from __future__ import annotations

from lark import Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from grammar import load_parser
from nos_symbolic.errors import RuleError
from nos_symbolic.parse_limits import MAX_DEPTH, MAX_LENGTH

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
            raise RuleError(f"rule nested too deeply: more than {MAX_DEPTH} levels of parentheses",
                            *_position(text, i))


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
        label = _stray_comma(text, err) or err.match_examples(parser.parse, _SYNTAX_EXAMPLES, use_accepts=True)
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


def _stray_comma(text: str, err: UnexpectedInput) -> str | None:
    """The message for a ',' outside any call's parentheses (`g,`), which no function's arguments explain."""
    token = getattr(err, "token", None)
    if token is None or str(token) != ",":
        return None
    before = text[: token.start_pos]
    if before.count("(") > before.count(")"):
        return None
    return "unexpected ',' (a comma only separates a function's arguments)"
