"""Every registry entry walks parse -> SymPy -> torch -> LaTeX, and means what its doc says."""
import math

import pytest
import torch

from nos_symbolic import REGISTRY, parse_rule
from nos_symbolic.probes import default_probes
from nos_symbolic.registry import DELTA, NAMED_RULES, PRIMITIVES

SAMPLE_PARAMS = {"c": "1e-3", "p": "0.3", "n": "2"}


def usage(entry) -> str:
    """A DSL text that applies the entry."""
    params = [SAMPLE_PARAMS[p.name] for p in entry.params]
    if entry.kind in ("operand", "schedule"):
        return f"{entry.name}({', '.join(params)})" if params else entry.name
    args = ["g", "m"][: entry.arity] + params
    return f"{entry.name}({', '.join(args)})"


@pytest.mark.parametrize("entry", PRIMITIVES, ids=lambda e: e.name)
def test_every_entry_parses_compiles_runs_and_prints(entry):
    rule = parse_rule(usage(entry))
    env = default_probes()
    out = rule.program(env)
    assert out.shape == env.tensor("g").shape and out.dtype == torch.float64
    assert isinstance(rule.latex(), str) and rule.latex()
    assert entry.doc
    for snippet in entry.search:  # every search snippet is valid DSL
        parse_rule(snippet.format(x="g", y="m"))


@pytest.mark.parametrize("name", sorted(NAMED_RULES))
def test_named_rules_parse(name):
    assert parse_rule(name).key == parse_rule(NAMED_RULES[name].format(f="1")).key


def _probe(name):
    return default_probes().tensor(name)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("log(g)", lambda g, m, v: torch.log(g.abs())),
        ("sqrt(g)", lambda g, m, v: g.abs().sqrt()),
        ("abs(g)", lambda g, m, v: g.abs()),
        ("neg(g)", lambda g, m, v: -g),
        ("exp(m)", lambda g, m, v: torch.exp(m)),
        ("sign(m)", lambda g, m, v: torch.sign(m)),
        ("clip(g, 1e-3)", lambda g, m, v: g.clamp(-1e-3, 1e-3)),
        ("div(g, m)", lambda g, m, v: g / (m + DELTA)),
        ("g / m", lambda g, m, v: g / (m + DELTA)),
        ("keep(g, m)", lambda g, m, v: g),
        ("pow(v, 0.25)", lambda g, m, v: v**0.25),
        ("g2", lambda g, m, v: g * g),
        ("g3", lambda g, m, v: g * g * g),
        ("adam", lambda g, m, v: m / (v.sqrt() + DELTA)),
        ("rmsprop", lambda g, m, v: g / (v.sqrt() + DELTA)),
        ("1e-4*w", lambda g, m, v: 1e-4 * _probe("w")),
        ("e", lambda g, m, v: torch.full_like(g, math.e)),
    ],
)
def test_primitive_semantics(text, expected):
    env = default_probes()
    got = parse_rule(text).program(env)
    want = expected(env.tensor("g"), env.tensor("m"), env.tensor("v"))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_schedules_follow_the_reference_formulas():
    env = default_probes()
    t, T = env.t.clamp(max=env.T), env.T
    torch.testing.assert_close(parse_rule("ld").program(env), (T - t) / T)
    torch.testing.assert_close(parse_rule("cd").program(env), 0.5 * (1 + torch.cos(2 * math.pi * 0.5 * t / T)))
    torch.testing.assert_close(parse_rule("cd(2)").program(env), 0.5 * (1 + torch.cos(2 * math.pi * 2 * t / T)))
    torch.testing.assert_close(parse_rule("rd").program(env), 0.5 * (1 + torch.cos(math.pi * (t % T) / T)))
    torch.testing.assert_close(parse_rule("rd(3)").program(env), 0.5 * (1 + torch.cos(math.pi * ((3 * t) % T) / T)))


def test_drop_keeps_the_expected_fraction_and_rescales():
    env = default_probes()
    g = env.tensor("g")
    out = parse_rule("drop(g, 0.3)").program(env)
    kept = out != 0
    torch.testing.assert_close(out[kept], g[kept] / 0.7)
    assert 0.55 < kept.double().mean().item() < 0.85  # keep probability 0.7 (drop probability 0.3)


def test_noise_is_small_and_anneal_decays():
    env = default_probes()
    noise = parse_rule("noise").program(env)
    assert 0.005 < noise.std().item() < 0.02
    anneal = parse_rule("anneal").program(env)
    early, late = anneal[env.t == 1].std().item(), anneal[env.t == 1000].std().item()
    assert late < early


def test_registry_names_are_unique_and_complete():
    names = [p.name for p in PRIMITIVES]
    assert len(names) == len(set(names)) == len(REGISTRY)
    assert {"g", "g2", "g3", "m", "v", "y", "w", "noise", "anneal", "adam", "rmsprop", "ld", "cd", "rd",
            "neg", "exp", "log", "sqrt", "clip", "drop", "sign", "abs", "id",
            "add", "sub", "mul", "div", "pow", "keep"} <= set(names)
