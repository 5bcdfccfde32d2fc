"""Property-based: any text gives a Rule or a RuleError; valid random rules round-trip."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nos_symbolic import RuleError, parse_rule
from nos_symbolic.registry import PRIMITIVES, SEARCH_CONSTANTS

OPERANDS = [s for p in PRIMITIVES if p.kind in ("operand", "schedule") for s in p.search] + list(SEARCH_CONSTANTS)
UNARY = [s for p in PRIMITIVES if p.kind == "unary" for s in p.search]
BINARY = [s for p in PRIMITIVES if p.kind == "binary" for s in p.search]

rules = st.recursive(
    st.sampled_from(OPERANDS),
    lambda inner: st.one_of(
        st.builds(lambda t, x: t.format(x=f"({x})"), st.sampled_from(UNARY), inner),
        st.builds(lambda t, x, y: t.format(x=f"({x})", y=f"({y})"), st.sampled_from(BINARY), inner, inner),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=40))
def test_any_text_gives_a_rule_or_a_rule_error(text):
    try:
        rule = parse_rule(text)
    except RuleError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert rule.key and rule.fingerprint


ALPHABET = "gmvyw0123456789.e+-*/^(), sqrtexplogclipdropsign"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=ALPHABET, max_size=30))
def test_dsl_like_text_gives_a_rule_or_a_rule_error(text):
    try:
        parse_rule(text)
    except RuleError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules)
def test_valid_rules_parse_and_their_canonical_text_reparses_to_the_same_key(text):
    rule = parse_rule(text)
    # The canonical text is SymPy's, not DSL; the DSL spelling with extra parentheses is the same rule.
    assert parse_rule(f"({text})").key == rule.key
    assert parse_rule(f"id({text})").fingerprint == rule.fingerprint
    assert parse_rule(f"keep({text}, g)").key == rule.key
