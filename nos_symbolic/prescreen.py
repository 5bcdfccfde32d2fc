"""Reject hopeless rules before training (ENOS, Wang et al. 2022, on this search space).

A rule is rejected, with its reason, when on probe values it is
  - nonfinite:  NaN or Inf on the fingerprint probes;
  - constant:   uses no gradient-derived operand, or gives the same value everywhere;
  - one-signed: every element of the update has the same sign, whatever the gradient's sign;
  - ascending:  mean over K random probe tensors of cos(update, g) = <u, g> / (|u| |g|) is below a
                threshold (0.15 in ENOS): the step w <- w - lr * u does not go downhill.
The descent probes are realistic states: g ~ N(0, s^2) with a scale s per tensor, m correlated with g
(correlation 0.5), v = E[g^2]-like, w ~ N(0, 1), a random step t in [1, T].
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from nos_symbolic.probes import ProbeEnv, probe_outputs
from nos_symbolic.rule import Rule

DESCENT_THRESHOLD = 0.15
N_DESCENT_PROBES = 16
PROBE_SIZE = 256


@dataclass(frozen=True)
class Screen:
    """The pre-screen's verdict: passed, or the reason it was not; the mean descent cosine."""

    passed: bool
    reason: str = ""
    cosine: float = float("nan")


@lru_cache(maxsize=4)
def descent_probes(seed: int = 0, k: int = N_DESCENT_PROBES, n: int = PROBE_SIZE) -> tuple[ProbeEnv, ...]:
    """K fixed environments of realistic optimizer states."""
    rng = np.random.default_rng(seed)
    envs = []
    for i in range(k):
        scale = 10.0 ** rng.uniform(-4, 0)
        g = rng.normal(0.0, scale, size=n)
        m = 0.5 * g + np.sqrt(0.75) * rng.normal(0.0, scale, size=n)
        v = 0.5 * g**2 + 0.5 * scale**2 * rng.uniform(0.5, 1.5, size=n)
        y = 0.5 * g**3 + 0.5 * rng.normal(0.0, scale**3, size=n)
        w = rng.normal(0.0, 1.0, size=n)
        values = {name: torch.tensor(a, dtype=torch.float64) for name, a in dict(g=g, m=m, v=v, y=y, w=w).items()}
        t = torch.full((n,), float(rng.integers(1, 1001)), dtype=torch.float64)
        envs.append(ProbeEnv(values, t, 1000.0, seed * 1000 + i))
    return tuple(envs)


def descent_cosine(rule: Rule, seed: int = 0) -> float:
    """Mean cos(update, g) over the descent probes (NaN when an update is all zeros or not finite)."""
    cosines = []
    for env in descent_probes(seed):
        u = probe_outputs(rule.numpy_program, env)
        g = env.tensor("g").numpy()
        with np.errstate(all="ignore"):  # a huge finite update overflows the norm: inf, caught below
            norm = np.linalg.norm(u) * np.linalg.norm(g)
        if not np.isfinite(u).all() or norm == 0 or not np.isfinite(norm):
            return float("nan")
        cosines.append(float(u @ g / norm))
    return float(np.mean(cosines))


def prescreen(rule: Rule, threshold: float = DESCENT_THRESHOLD) -> Screen:
    """Pass or reject a rule without training it (see the module docstring)."""
    if "nonfinite" in rule.flags:
        return Screen(False, "nonfinite: NaN or Inf on probe values")
    if "constant" in rule.flags:
        return Screen(False, "constant: uses no gradient-derived operand")
    outputs = probe_outputs(rule.numpy_program)
    if np.all(outputs == outputs[0]):
        return Screen(False, "constant: the same update for every input")
    if np.all(outputs >= 0) or np.all(outputs <= 0):
        return Screen(False, "one-signed: the update never changes sign")
    cosine = descent_cosine(rule)
    if not np.isfinite(cosine):
        return Screen(False, "nonfinite: NaN, Inf or all-zero update on descent probes", cosine)
    if cosine < threshold:
        return Screen(False, f"does not descend: mean cos(update, g) = {cosine:.3f} < {threshold}", cosine)
    return Screen(True, "", cosine)
