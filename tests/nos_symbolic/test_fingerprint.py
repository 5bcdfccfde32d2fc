"""Fingerprints meet functionally equal rules despite float-level differences; same_behaviour
confirms a candidate within tolerance and refuses rules that differ where delta matters."""
from __future__ import annotations

import numpy as np
import pytest

from nos_symbolic import parse_rule
from nos_symbolic.probes import default_probes, hash_outputs, outputs_match, probe_outputs
from nos_symbolic.rule import same_behaviour

# Pairs that compute the same update up to float error (and delta's 1e-8).
EQUAL_PAIRS = [
    ("g / 1", "g"),
    ("g * 2 / 2", "g"),
    ("(g * 3) / 3", "g"),
    ("sqrt(g2)", "sign(g) * g"),
    ("sign(g) * g", "abs(g)"),
    ("m / 1 / 1", "m"),
    ("g / 2", "0.5 * g"),
    ("exp(g / 1)", "exp(g)"),
    ("sign(g) * exp(sign(m) * sign(g) / 1) * abs(g)", "powersign"),
    ("clip(g * 2 / 2, 1e-3)", "clip(g, 1e-3)"),
    ("rmsprop / 1", "g / sqrt(v)"),
]


@pytest.mark.parametrize("a, b", EQUAL_PAIRS)
def test_equal_rules_share_the_fingerprint_and_behave_the_same(a, b):
    ra, rb = parse_rule(a), parse_rule(b)
    assert ra.fingerprint == rb.fingerprint and ra.scale_fingerprint == rb.scale_fingerprint
    assert same_behaviour(ra, rb) and same_behaviour(rb, ra)


@pytest.mark.parametrize("a, b", [("g / g2", "1 / g"), ("(g + m) / (g + m)", "1 + 0 * g")])
def test_a_candidate_that_differs_where_delta_matters_is_refused(a, b):
    ra, rb = parse_rule(a), parse_rule(b)
    assert ra.fingerprint == rb.fingerprint  # with delta = 1e-30 they agree: the lookup meets them
    assert not same_behaviour(ra, rb)  # with delta = 1e-8 they part ways on small probes


@pytest.mark.parametrize("a, b", [("g", "m"), ("g", "-g"), ("g", "g + 1e-3"), ("sign(g)", "g"),
                                  ("drop(g, 0.1)", "drop(g, 0.3)"), ("g * cd", "g * rd")])
def test_different_rules_have_different_fingerprints(a, b):
    ra, rb = parse_rule(a), parse_rule(b)
    assert ra.fingerprint != rb.fingerprint and not same_behaviour(ra, rb)


def test_rules_equal_up_to_a_positive_factor_share_only_the_scale_fingerprint():
    a, b = parse_rule("g"), parse_rule("3 * g / 1")
    assert a.fingerprint != b.fingerprint and a.scale_fingerprint == b.scale_fingerprint
    assert not same_behaviour(a, b) and same_behaviour(a, b, up_to_scale=True)
    assert not same_behaviour(a, parse_rule("-3 * g"), up_to_scale=True)


def test_a_few_ulps_never_change_the_hash():
    outputs = probe_outputs(parse_rule("exp(sign(g) * sign(m)) * g").program)
    for ulps in (1, 4, 16):
        nudged = outputs * (1 + ulps * np.finfo(np.float64).eps)
        assert hash_outputs(nudged) == hash_outputs(outputs)
        assert outputs_match(nudged, outputs)


def test_outputs_match_needs_the_same_nans_and_infinities():
    x = np.array([1.0, np.nan, np.inf, -np.inf, 0.0])
    assert outputs_match(x, x.copy())
    assert outputs_match(x, x * (1 + 1e-8))
    assert not outputs_match(x, np.array([1.0, 0.0, np.inf, -np.inf, 0.0]))
    assert not outputs_match(x, np.array([1.0, np.nan, -np.inf, -np.inf, 0.0]))
    assert not outputs_match(x, np.array([1.0 + 1e-4, np.nan, np.inf, -np.inf, 0.0]))
    assert not outputs_match(x, x[:4])
    # values tiny next to the peak count as the flush of the hash: equal
    assert outputs_match(np.array([1e3, 1e-9]), np.array([1e3, 0.0]))


def test_stochastic_rules_compare_their_fixed_draws():
    a, b = parse_rule("drop(g, 0.5) / 1"), parse_rule("drop(g, 0.5)")
    assert a.fingerprint == b.fingerprint and same_behaviour(a, b)
    assert default_probes().t.shape == probe_outputs(a.program).shape
