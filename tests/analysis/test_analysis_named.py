"""Named families are recognised by structure: every spelling lands in the same family."""
from __future__ import annotations

import pytest

from analysis.named import FamilyMatch, classify, family_name
from nos_symbolic import parse_rule

SPELLINGS = {
    "PowerSign": [
        "powersign", "exp(sign(g) * sign(m)) * g", "g * e^(sign(m) * sign(g))", "2^(sign(g)*sign(m))*g",
        "g * 2 ** (sign(m) * sign(g))", "3 * exp(sign(g)*sign(m)) * g", "e^(sign(g)*sign(m))*g/2",
        "2^(2*sign(g)*sign(m))*g", "g*exp(sign(g)*sign(m) + 1)", "g*exp(sign(g*m))", "(-g)*(-exp(sign(g)*sign(m)))",
    ],
    "PowerSign-cd": ["powersign-cd", "g*2^(sign(m)*sign(g)*cd)", "exp(cd(0.25)*sign(g)*sign(m))*g*4"],
    "PowerSign-ld": ["powersign-ld", "2^(ld*sign(g)*sign(m))*g", "3*exp(sign(g)*sign(m)*ld)*g"],
    "PowerSign-rd": ["powersign-rd", "g*e^(rd*sign(m)*sign(g))"],
    "PowerSign*ld": ["powersign * ld"],
    "PowerSign+wd": ["powersign + 1e-4*w", "1e-2*w + 2*exp(sign(g)*sign(m))*g"],
    "PowerSign-cd+wd": ["powersign-cd + 1e-3*w"],
    "AddSign": [
        "addsign", "(1 + sign(g)*sign(m))*g", "g*(sign(m)*sign(g) + 1)", "g + g*sign(g)*sign(m)",
        "(2 + sign(g)*sign(m))*g", "2*g + 2*g*sign(g)*sign(m)", "g*(1 + sign(g)*sign(m))/2",
        "(1 + 2*sign(g)*sign(m))*g",
    ],
    "AddSign-cd": ["addsign-cd", "g + cd*g*sign(g)*sign(m)", "(1 + cd*sign(m)*sign(g))*g"],
    "AddSign-ld": ["addsign-ld", "g*(1 + ld*sign(g)*sign(m))"],
    "AddSign-rd+wd": ["addsign-rd + 1e-3*w", "g*(1 + rd*sign(g)*sign(m)) + 1e-4*w"],
    "AddSign*ld": ["addsign * ld"],
    "Adam": ["adam", "m / sqrt(v)", "2 * m / sqrt(v)", "m * v^-0.5"],
    "Adam+wd": ["adam + 1e-2*w", "m/sqrt(v) + 1e-4*w"],
    "Adam-cd": ["adam * cd"],
    "RMSProp": ["rmsprop", "g / sqrt(v)"],
    "Adam-like": ["m / v", "g / (v + 1)"],
    "SGD-like": ["g", "2*g", "sgd", "g / 10"],
    "SGD-like+wd": ["g + 1e-4*w", "(g + 1e-3*w) / 2"],
    "SGD-like-ld": ["g * ld"],
    "Momentum": ["m", "0.1*g + 0.9*m"],
    "SignMomentum": ["sign(m)", "2*sign(m)"],
    "SignMomentum-cd": ["sign(m) * cd"],
    "SignMomentum+wd": ["sign(m) + 1e-4*w"],
    "Lion-like": ["sign(0.9*m + 0.1*g)", "sign(g + m)"],
    "SignSGD": ["sign(g)"],
}


@pytest.mark.parametrize("family,text", [(f, t) for f, texts in SPELLINGS.items() for t in texts])
def test_spellings_land_in_their_family(family: str, text: str) -> None:
    assert family_name(text) == family


@pytest.mark.parametrize("text", [
    "sign(g) * exp(m)",            # contains sign(g), no PowerSign
    "sign(g) * sign(m)",           # PowerSign's exponent alone
    "exp(sign(g) * sign(m))",      # no g factor
    "g * exp(sign(g))",            # no sign(m)
    "g * exp(sign(g) * sign(m) * m)",
    "0.5^(sign(g)*sign(m))*g",     # base below 1 reverses PowerSign
    "exp(-sign(g)*sign(m))*g",
    "(1 - sign(g)*sign(m))*g",     # AddSign with the sign term reversed
    "g*(sign(g)*sign(m) - 1)",
    "g*(1 + sign(g)*sign(m))*(1 + sign(g)*sign(m))",
    "sign(g) * abs(g) * exp(m)",
    "-g",                          # ascent
    "g + w",                       # too large a multiple of w to be weight decay
    "g - 1e-4*w",
    "1e-4*w",
    "g * ld * cd",                 # two decays
    "m * v",
    "m / (1 - v)",                 # not a positive function of v
    "m / (sqrt(v) + cd)",
    "sign(m - g)",
])
def test_lookalikes_are_not_named(text: str) -> None:
    assert family_name(text) is None


def test_lineage_runs_from_general_to_specific() -> None:
    match = classify(parse_rule("powersign-cd * ld + 1e-4*w"))
    assert match == FamilyMatch("PowerSign", "cd", "ld", True)
    assert match.lineage == ("PowerSign", "PowerSign-cd", "PowerSign-cd*ld", "PowerSign-cd*ld+wd")
    assert classify(parse_rule("adam + 1e-4*w")).lineage == ("Adam-like", "Adam", "Adam+wd")
    assert classify(parse_rule("sign(g + m) * rd")).lineage == ("SignMomentum", "Lion-like", "Lion-like-rd")


def test_classify_reads_the_canonical_form() -> None:
    rule = parse_rule("g * 2^(sign(m) * sign(g))")
    assert classify(rule) == classify(rule.canonical) == FamilyMatch("PowerSign")
