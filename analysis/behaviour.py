"""How differently two rules move the weights: the distance the family tree orders rules by within a
sub-family (the families themselves come from analysis.signature).

Each rule is run on the pre-screen's realistic probes (nos_symbolic.prescreen.descent_probes: K = 16
optimizer states, g at scales 1e-4..1, m correlated with g, v like E[g^2], a random step t), and

    d(a, b) = 1 - (1/K) sum_k cos(u_a^k, u_b^k),    cos(x, y) = <x, y> / (|x| |y|)

where u^k is the rule's update on probe k; for a stochastic rule (noise, anneal, drop) its mean over
DRAWS independent draws, the step it takes on average, so drop(adam, 0.5) sits with adam. The distance lies in [0, 2]: 0 when the updates point the same
way on every probe, so rules equal up to a positive factor (which the learning rate absorbs) or up to a
small added term (a little weight decay, `- v` next to `sign(m)`) sit together; 1 when they are unrelated;
2 when one is the other reversed. An update that is zero or not finite on a probe points nowhere there:
its cosine on that probe counts as 0.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from nos_symbolic.prescreen import descent_probes
from nos_symbolic.probes import ProbeEnv, probe_outputs
from nos_symbolic.rule import Rule

DRAWS = 8


def directions(rules: Sequence[Rule]) -> np.ndarray:
    """float64[n_rules, K, n]: each rule's update on each descent probe scaled to unit length (zero
    where the update is zero or not finite)."""
    envs = descent_probes()
    out = np.zeros((len(rules), len(envs), envs[0].t.numel()))
    for i, rule in enumerate(rules):
        for k, env in enumerate(envs):
            u = _mean_update(rule, env)
            if not np.isfinite(u).all():
                continue
            peak = np.max(np.abs(u))
            if peak == 0 or not np.isfinite(peak):
                continue
            u = u / peak  # scaling by the peak first keeps the squares from overflowing
            out[i, k] = u / np.linalg.norm(u)
    return out


def _mean_update(rule: Rule, env: ProbeEnv) -> np.ndarray:
    if "stochastic" not in rule.flags:
        return probe_outputs(rule.program, env)
    # Same states, other draws: a probe's draws are seeded by (env.seed, key).
    draws = [dataclasses.replace(env, seed=env.seed * DRAWS + i) for i in range(DRAWS)]
    return np.mean([probe_outputs(rule.program, e) for e in draws], axis=0)


def cross_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64[len(a), len(b)]: d between the rules of two direction arrays (see `directions`)."""
    cosines = np.einsum("ikn,jkn->ij", a, b) / a.shape[1]
    return np.clip(1.0 - cosines, 0.0, 2.0)


def distance_matrix(unit: np.ndarray) -> np.ndarray:
    """The symmetric matrix of d between the rules of a direction array, with an exact zero diagonal."""
    d = cross_distances(unit, unit)
    d = (d + d.T) / 2  # the two float sums of a pair may differ in the last bit
    np.fill_diagonal(d, 0.0)
    return d
