"""The search space: vocabulary, masks, sampling, mutation, and tokens <-> DSL text."""
import itertools

import numpy as np
import pytest
import sympy
import torch

from controller.space import GROUP, SearchSpace
from nos_symbolic import NosError, RuleError, parse_rule
from nos_symbolic.parse import parse_expr, parse_tree
from nos_symbolic.registry import REGISTRY

SPACE = SearchSpace()
N_BASE = len(SPACE.operands)
OPS = {name: i for i, name in enumerate(SPACE.operands)}
UNARY = {name: i for i, name in enumerate(SPACE.unary)}
BINARY = {name: i for i, name in enumerate(SPACE.binary)}


def group(op1, op2, u1="{x}", u2="{x}", b="{x} + {y}"):
    """Tokens of one group; an int operand is an earlier group's index."""
    ops = [N_BASE + op if isinstance(op, int) else OPS[op] for op in (op1, op2)]
    return ops + [UNARY[u1], UNARY[u2], BINARY[b]]


def test_default_vocabulary_is_the_papers():
    assert SPACE.operands == ("g", "sign(g)", "g2", "g3", "m", "sign(m)", "v", "y", "1e-4*w", "1e-3*w",
                              "1e-2*w", "1e-1*w", "noise", "anneal", "adam", "rmsprop", "ld", "cd", "rd", "1", "2")
    assert len(SPACE.unary) == 12 and SPACE.unary[0] == "{x}" and "abs({x})" not in SPACE.unary
    assert SPACE.binary == ("{x} + {y}", "{x} - {y}", "{x} * {y}", "{x} / {y}", "{x} ^ {y}", "keep({x}, {y})")


def test_positions_repeat_groups_of_five():
    assert SPACE.n_positions == 15
    assert [p.kind for p in SPACE.positions] == list(GROUP) * 3
    assert [p.group for p in SPACE.positions] == [i // 5 for i in range(15)]
    assert [SPACE.choices(p) for p in range(5)] == [23, 23, 12, 12, 6]


def test_size_exceeds_ten_to_the_ten():
    per_group = [(21 + i) ** 2 * 12**2 * 6 for i in range(3)]
    assert SPACE.size() == per_group[0] * per_group[1] * per_group[2] > 10**16


def test_masks_forbid_results_not_computed_yet():
    for pos in SPACE.positions:
        mask = SPACE.mask(pos.index)
        assert mask.dtype == torch.bool and mask.shape == (SPACE.choices(pos.index),)
        if pos.kind == "operand":
            assert mask[: N_BASE + pos.group].all() and not mask[N_BASE + pos.group:].any()
        else:
            assert mask.all()
    with pytest.raises(NosError, match="not valid at position 0"):
        SPACE.render([N_BASE] + [0] * 14)  # group 0 cannot read group 0's own result


def test_ten_thousand_uniform_samples_parse_and_round_trip():
    rng = np.random.default_rng(0)
    exact = 0
    for _ in range(10_000):
        tokens = SPACE.sample_uniform(rng)
        text = SPACE.render(tokens)
        parse_rule(text)  # raises RuleError if the grammar or the registry refuses it
        back = SPACE.tokens_from_text(text)
        assert SPACE.render(back) == text, (tokens, text)
        exact += back == tokens
    # Most uniform samples leave a group unused, whose tokens the text cannot carry; the rest invert.
    assert 0 < exact < 10_000


def test_tokens_from_text_is_the_exact_inverse_on_canonical_sequences():
    rng = np.random.default_rng(1)
    for _ in range(500):
        canonical = SPACE.tokens_from_text(SPACE.render(SPACE.sample_uniform(rng)))
        assert SPACE.tokens_from_text(SPACE.render(canonical)) == canonical
    chain = group("sign(g)", "sign(m)", b="{x} * {y}") + group(0, "g", "exp({x})", b="{x} * {y}") \
        + group(1, "1e-4*w", b="{x} - {y}")
    assert SPACE.render(chain) == "(exp(sign(g) * sign(m)) * g) - (1e-4*w)"
    assert SPACE.tokens_from_text(SPACE.render(chain)) == chain


# Direct SymPy builders for the default vocabulary, written out independently of the renderer.
_UNARY_BUILD = {
    "{x}": lambda x: x, "neg({x})": REGISTRY["neg"].build, "exp({x})": REGISTRY["exp"].build,
    "log({x})": REGISTRY["log"].build, "sqrt({x})": REGISTRY["sqrt"].build, "sign({x})": REGISTRY["sign"].build,
    **{f"clip({{x}}, {c})": (lambda c: lambda x: REGISTRY["clip"].build(x, sympy.Rational(c)))(c)
       for c in ("1e-5", "1e-4", "1e-3")},
}
_BINARY_BUILD = dict(zip(SPACE.binary, (REGISTRY[n].build for n in ("add", "sub", "mul", "div", "pow", "keep"))))


def _build(tokens):
    results = []
    for start in range(0, len(tokens), 5):
        op1, op2, u1, u2, b = tokens[start:start + 5]
        x, y = (parse_expr(SPACE.operands[op]) if op < N_BASE else results[op - N_BASE] for op in (op1, op2))
        results.append(_BINARY_BUILD[SPACE.binary[b]](_UNARY_BUILD[SPACE.unary[u1]](x),
                                                      _UNARY_BUILD[SPACE.unary[u2]](y)))
    return results[-1]


def test_parse_of_render_equals_the_expression_built_from_tokens():
    # drop is left out: the parser numbers its random draws, a direct build would have to copy that.
    rng = np.random.default_rng(2)
    checked = 0
    while checked < 300:
        tokens = SPACE.sample_uniform(rng)
        if any(SPACE.unary[tokens[i]].startswith("drop") for i in range(15) if i % 5 in (2, 3)):
            continue
        tokens[10] = N_BASE + int(rng.integers(2))  # make the last group read an earlier result
        assert parse_expr(SPACE.render(tokens)) == _build(tokens), SPACE.render(tokens)
        checked += 1


def test_render_keeps_precedence_with_parentheses():
    two = SearchSpace(n_groups=2)
    assert two.render(group("g", "m") + group(0, "v", b="{x} * {y}")) == "(g + m) * v"
    assert two.render(group("1e-4*w", "g", b="{x} ^ {y}") + group(0, "g", b="keep({x}, {y})")) \
        == "keep((1e-4*w) ^ g, g)"
    assert two.render(group("g", "m", "exp({x})") + group("v", 0, "{x}", "sqrt({x})", "{x} / {y}")) \
        == "v / sqrt(exp(g) + m)"
    assert parse_rule("(g + m) * v").canonical != parse_rule("g + m * v").canonical


def test_tokens_from_text_reads_other_spellings_and_refuses_what_the_space_cannot_say():
    assert SPACE.render(SPACE.tokens_from_text("sign(m)*g")) == "sign(m) * g"
    assert SPACE.render(SPACE.tokens_from_text("((g+m))*v")) == "(g + m) * v"
    with pytest.raises(NosError, match="not a rule of this search space"):
        SPACE.tokens_from_text("abs(g) + m")  # abs is not in the search vocabulary
    with pytest.raises(NosError, match="not a rule of this search space"):
        SPACE.tokens_from_text("((g + m) + (v + y)) + g2")  # needs 4 groups
    with pytest.raises(RuleError):
        SPACE.tokens_from_text("g +")


def test_small_custom_space_round_trips_exhaustively():
    space = SearchSpace(n_groups=2, operands=("g", "m"), unary=("{x}", "-{x}"), binary=("{x} + {y}", "{x} ^ {y}"))
    build_unary = {"{x}": lambda x: x, "-{x}": REGISTRY["neg"].build}
    build_binary = {"{x} + {y}": REGISTRY["add"].build, "{x} ^ {y}": REGISTRY["pow"].build}
    ranges = [range(space.n_valid(p)) for p in range(space.n_positions)]
    assert space.size() == len(list(itertools.product(*ranges))) == 2304
    for tokens in itertools.product(*ranges):
        text = space.render(tokens)
        assert space.render(space.tokens_from_text(text)) == text
        results = []
        for start in (0, 5):
            op1, op2, u1, u2, b = tokens[start:start + 5]
            x, y = (parse_expr(space.operands[op]) if op < 2 else results[op - 2] for op in (op1, op2))
            results.append(build_binary[space.binary[b]](build_unary[space.unary[u1]](x),
                                                        build_unary[space.unary[u2]](y)))
        assert parse_expr(text) == results[-1], text
    assert space.render([0, 1, 1, 0, 1, 2, 0, 1, 0, 0]) == "(-((-g) ^ m)) + g"


def test_mutate_changes_exactly_one_position_to_a_valid_token():
    rng = np.random.default_rng(3)
    tokens = SPACE.sample_uniform(rng)
    for _ in range(2000):
        child = SPACE.mutate(tokens, rng)
        assert sum(a != b for a, b in zip(tokens, child)) == 1
        assert SPACE.check(child) == child
        tokens = child


def test_sampling_is_seeded_for_both_kinds_of_generator():
    for make in (np.random.default_rng, lambda s: torch.Generator().manual_seed(s)):
        a, b, c = make(7), make(7), make(8)
        first = [SPACE.sample_uniform(a) for _ in range(20)]
        assert first == [SPACE.sample_uniform(b) for _ in range(20)]
        assert first != [SPACE.sample_uniform(c) for _ in range(20)]
    rng = np.random.default_rng(4)
    seen = [set() for _ in range(15)]
    for _ in range(3000):
        for i, t in enumerate(SPACE.sample_uniform(rng)):
            seen[i].add(t)
    assert [len(s) for s in seen] == [SPACE.n_valid(p) for p in range(15)]


@pytest.mark.parametrize("kwargs, message", [
    ({"n_groups": 0}, "n_groups"),
    ({"operands": ()}, "at least one"),
    ({"operands": ("g", "g")}, "duplicate"),
    ({"operands": ("gg",)}, "not valid DSL"),
    ({"unary": ("exp(g)",)}, "exactly 1"),
    ({"binary": ("{x} + {x}",)}, "exactly"),
    ({"binary": ("{x} +* {y}",)}, "not valid DSL"),
])
def test_bad_configuration_is_a_nos_error(kwargs, message):
    with pytest.raises(NosError, match=message):
        SearchSpace(**kwargs)


def test_rendered_text_parses_into_the_tree_the_tokens_describe():
    text = SPACE.render(group("g", "m") + group("v", "y", b="{x} * {y}") + group(1, 0, "{x}", "{x}", "{x} ^ {y}"))
    assert text == "(v * y) ^ (g + m)"
    assert parse_tree(text) == parse_tree("(v*y)^(g+m)")
