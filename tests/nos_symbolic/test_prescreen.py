import pytest

from nos_symbolic import parse_rule
from nos_symbolic.prescreen import prescreen


@pytest.mark.parametrize("text", ["g", "powersign", "addsign-cd", "adam", "rmsprop", "sign(m)", "drop(g, 0.3)",
                                  "g + noise", "clip(g, 1e-5)", "g + 1e-4*w"])
def test_sensible_rules_pass(text):
    screen = prescreen(parse_rule(text))
    assert screen.passed and screen.cosine > 0.15


@pytest.mark.parametrize(
    "text, reason",
    [
        ("-g", "does not descend"),
        ("-adam", "does not descend"),
        ("sign(g)*sign(m)", "does not descend"),
        ("g2", "one-signed"),
        ("exp(g)", "one-signed"),
        ("1e-4*w", "constant"),
        ("noise", "constant"),
        ("2", "constant"),
        ("exp(exp(exp(g)))", "nonfinite"),
        ("log(g - g)", "nonfinite"),
    ],
)
def test_hopeless_rules_are_rejected_with_a_reason(text, reason):
    screen = prescreen(parse_rule(text))
    assert not screen.passed and reason in screen.reason


def test_threshold_is_configurable():
    rule = parse_rule("adam")
    assert prescreen(rule).passed
    assert not prescreen(rule, threshold=0.99).passed
