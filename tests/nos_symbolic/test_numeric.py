"""The numpy backend (probes, fingerprints, constant folding) computes what the torch backend (the
optimizer) computes: the same lowered code, the same draws, float64 up to an ulp or two."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
import torch

from nos_symbolic import functions as F
from nos_symbolic import parse_rule
from nos_symbolic.lowering import lower
from nos_symbolic.numeric import constant_value
from nos_symbolic.probes import default_probes, fingerprint_probes, hash_outputs, probe_outputs

RULES = [
    "g", "exp(sign(g) * sign(m)) * g", "addsign-cd", "powersign-rd", "adam", "rmsprop * ld", "g / m",
    "log(g) + sqrt(v)", "v^-0.5 * m", "g^m", "clip(g, 1e-3) + abs(m)", "g^0.3 - m^-2", "exp(1000 * g)",
    "drop(g, 0.3) + drop(m, 0.5)", "noise + anneal * cd(2)", "rd(3) * g3 - y", "1e-4 * w + 1 / (g - g)",
    "sign(log(abs(g) - abs(g)))", "(-8)^(1/3) * g", "g / (m * 0)", "1 / ld",
]


@pytest.mark.parametrize("text", RULES)
def test_numpy_and_torch_backends_agree(text):
    rule = parse_rule(text)
    got = probe_outputs(rule.numpy_program)
    with torch.no_grad():
        want = rule.program(default_probes()).numpy()
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[np.isinf(got)], want[np.isinf(got)])
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-13, atol=0)
    assert hash_outputs(got) == hash_outputs(want)


def test_a_torch_program_is_probed_through_its_numpy_twin_on_either_kind_of_env():
    rule = parse_rule("drop(g, 0.5) * noise + m")
    on_arrays = probe_outputs(rule.numpy_program)
    assert np.array_equal(probe_outputs(rule.program), on_arrays)
    assert np.array_equal(probe_outputs(rule.numpy_program, default_probes()), on_arrays)  # torch tensors


def test_sign_of_nan_is_zero_as_in_torch():
    out = probe_outputs(parse_rule("sign(g^0.5)").numpy_program)  # NaN where g < 0
    assert np.array_equal(out, np.where(fingerprint_probes().tensor("g") < 0, 0.0, 1.0))


def test_constant_value_follows_float64():
    assert constant_value(sympy.Integer(1) / (sympy.Integer(2) + F.delta)) == pytest.approx(0.5 / (1 + 5e-9))
    assert constant_value(sympy.Pow(sympy.Integer(-8), sympy.Rational(1, 3), evaluate=False)) != \
        constant_value(sympy.Integer(2))  # NaN, not the real cube root
    assert math.isnan(constant_value(sympy.Pow(sympy.Integer(-8), sympy.Rational(1, 3), evaluate=False)))
    assert constant_value(sympy.Pow(sympy.Integer(0), sympy.Integer(-1), evaluate=False)) == math.inf
    assert constant_value(sympy.Float(1e300) * sympy.Float(1e300)) == math.inf


def test_shared_subexpressions_are_lowered_once():
    code = lower(parse_rule("exp(g * m) + sign(g * m) * exp(g * m)").canonical)
    kinds = [op.kind for op in code.ops]
    assert kinds.count("mul") == 2  # g*m once, then the product with sign
    assert code.operands == frozenset({"g", "m"})


def test_the_fingerprint_probes_are_shared_read_only_arrays():
    env = fingerprint_probes()
    assert isinstance(env.t, np.ndarray) and not env.tensor("g").flags.writeable
    assert np.array_equal(default_probes().tensor("g").numpy(), env.tensor("g"))
    assert np.array_equal(default_probes().rand("drop0").numpy(), env.rand("drop0"))  # same draws
