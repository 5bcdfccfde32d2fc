"""Signatures: PowerSign and AddSign in any spelling, base or decay, apart from each other and from
look-alikes; the named kinds apart at the top level."""
from __future__ import annotations

import math

import pytest

from analysis.families import families_json, group_rules
from analysis.signature import (ADAM, ADDSIGN, POWERSIGN, RMSPROP, SGD, SIGN_MOMENTUM, SIGN_SGD, response,
                                signature)
from analysis.sources import RuleRow
from nos_symbolic import parse_rule

POWERSIGNS = ["powersign", "powersign-cd", "powersign-ld", "2^(sign(g)*sign(m))*g", "exp(sign(g)*sign(m))*g",
              "e^(sign(g)*sign(m))*g", "g*exp(sign(g*m))", "3^(sign(m)*sign(g)*rd)*g"]
ADDSIGNS = ["addsign", "addsign-ld", "addsign-cd", "(1+sign(g)*sign(m))*g", "g + sign(g)*sign(m)*g",
            "(1 + cd*sign(m)*sign(g))*g", "g*(sign(g*m) + 1)"]
LOOK_ALIKES = ["exp(sign(g))*g", "exp(sign(m))*g", "g*sign(g)", "sign(g)*sign(m)", "g + m"]
KINDS = {"adam": ADAM, "drop(adam, 0.3)": ADAM, "rmsprop": RMSPROP, "sign(m)": SIGN_MOMENTUM,
         "sign(m) + noise": SIGN_MOMENTUM, "sign(g)": SIGN_SGD, "g": SGD, "m": SGD}


def kind(text: str) -> str:
    return signature(parse_rule(text)).family


@pytest.mark.parametrize("text", POWERSIGNS)
def test_powersign_in_any_spelling_base_or_decay(text):
    assert kind(text) == POWERSIGN


@pytest.mark.parametrize("text", ADDSIGNS)
def test_addsign_in_any_spelling_or_decay(text):
    assert kind(text) == ADDSIGN


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_are_neither(text):
    assert kind(text) not in (POWERSIGN, ADDSIGN)


@pytest.mark.parametrize("text, expected", KINDS.items())
def test_named_kinds(text, expected):
    assert kind(text) == expected


def test_responses_measure_base_scale_and_normalisation():
    power = response(parse_rule("powersign"))
    assert power.agreement == pytest.approx(2.0) and power.scale == pytest.approx(1.0)  # ratio e^2 = 7.39
    assert response(parse_rule("2^(sign(g)*sign(m))*g")).agreement == pytest.approx(2 * math.log(2))
    assert response(parse_rule("addsign")).zeroed
    adam = response(parse_rule("adam"))
    assert adam.scale == pytest.approx(0.0, abs=1e-6) and adam.v == pytest.approx(-1.0, abs=1e-3)
    assert adam.follows == pytest.approx(-1.0) and response(parse_rule("g")).follows == pytest.approx(1.0)
    decayed = signature(parse_rule("powersign-cd"))
    assert "base e" in decayed.sub_text and "decays: response (cd)" in decayed.sub_text
    assert signature(parse_rule("drop(sign(m), 0.5) + anneal")).modifiers[-1] == "stochastic: anneal, drop"


def test_spellings_become_two_families_apart_from_look_alikes_and_named_kinds():
    texts = POWERSIGNS + ADDSIGNS + LOOK_ALIKES + list(KINDS)
    view = families_json(group_rules([RuleRow(key=parse_rule(t).key, text=t) for t in texts]))
    family = {r["key"]: r["family_id"] for r in view["rules"]}
    ids = lambda group: {family[parse_rule(t).key] for t in group}  # noqa: E731
    assert len(ids(POWERSIGNS)) == 1 and len(ids(ADDSIGNS)) == 1 and ids(POWERSIGNS) != ids(ADDSIGNS)
    assert ids(LOOK_ALIKES).isdisjoint(ids(POWERSIGNS) | ids(ADDSIGNS))
    tops = {f["id"]: f for f in view["families"] if f["level"] == "family"}
    named = {tops[family[parse_rule(t).key]]["name"] for t in ("adam", "sign(m)", "g", "rmsprop")}
    assert named == {ADAM, SIGN_MOMENTUM, SGD, RMSPROP}
    assert all(f["signature"] for f in view["families"])
    assert len({f["id"] for f in view["families"]}) == len(view["families"])
