"""How a rule responds: the behavioural signature that families are built from.

A rule's update u is measured numerically on purpose-made probes (RESPONSE_PROBES pairs of elements at
gradient scale SCALE, step t = 0 where every decay is 1): each pair has the same |g|, |m|, v, y, w, with
sign(m) = sign(g) in the first element ("agree") and sign(m) = -sign(g) in the second ("disagree").
Noise and anneal take their mean, 0; a rule with drop is averaged over DRAWS draws.

    follows   f = sum(u_D sign(g_D)) / sum|u_D| on the disagreeing elements: +1 the direction follows g,
              -1 it follows m (Momentum, Adam, sign(m)), in between a mix
    scale     a = log10(mean|u(10 g, 10 m, 100 v, 1000 y)| / mean|u|): 1 follows the scale of g (SGD,
              PowerSign), 0 ignores it (sign(g), Adam); means, so a small added term (weight decay) counts little
    v         b = log10(mean|u(v * 100)| / mean|u|) / 2: -1 normalised by sqrt(v) (Adam, RMSProp), 0 ignores v
    agreement r = |u_agree| / |u_disagree| per pair, l = ln r: PowerSign multiplies g by base^(+-1), so
              l = 2 ln(base) on every pair (e^2 = 7.39 for base e); AddSign by 1 +- 1, so u_disagree = 0
              (mean |u_D| <= ZERO * mean |u_A|); a rule that ignores sign(m) has l = 0
    step      u at t = T/4, T/2, 3T/4 against t = 0: a decay of the whole step (the update changes by a
              positive factor) or of the response (PowerSign-cd's exponent)
    stochastic  the noise, anneal and drop the rule holds

From these, `signature` gives a kind (PowerSign, AddSign, Adam-like, RMSProp-like, SignMomentum, SignSGD,
SGD/Momentum, or a readable description of an unnamed response) and the modifiers that split a kind into
sub-families (the base, the decays, the stochastic parts, which operand the direction follows).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from nos_symbolic import functions as F
from nos_symbolic.probes import ProbeEnv, probe_outputs
from nos_symbolic.rule import Rule

RESPONSE_SEED = 20180101
RESPONSE_PROBES = 64  # pairs (agree, disagree)
SCALE = 1e-2  # |g| and |m| lie within SCALE * 10^(+-0.5)
FACTOR = 10.0  # the scale test multiplies g and m by FACTOR
TOTAL_STEPS = 1000.0
STEPS = (250.0, 500.0, 750.0)  # steps compared with t = 0 for the step dependence
DRAWS = 16
ZERO = 1e-3  # mean |u| where signs disagree below ZERO * mean |u| where they agree: zeroed there
TOLERANCE = 0.2  # how near an exponent must be to 0 or +-1, and f to +-1 (within 2 * TOLERANCE)
FOLLOW = 0.8  # |f| at least this: the direction follows one operand
CONSTANT_SPREAD = 0.05  # spread of l over pairs (and between g > 0 and g < 0) for a constant factor
SCHEDULES = ("ld", "cd", "rd")
STOCHASTIC = ("noise", "anneal", "drop")

POWERSIGN, ADDSIGN = "PowerSign", "AddSign"
ADAM, RMSPROP, SIGN_MOMENTUM, SIGN_SGD, SGD = "Adam-like", "RMSProp-like", "SignMomentum", "SignSGD", "SGD/Momentum"
# Each named kind's response in words: what a family carries as its signature.
KIND_TEXT: dict[str, str] = {
    POWERSIGN: "g times base^(+-1): x base^2 (a constant > 1) where sign(g) = sign(m), direction of g, "
               "proportional to |g|",
    ADDSIGN: "g times (1 +- 1): 0 where sign(g) != sign(m), direction of g, proportional to |g|",
    ADAM: "direction of m, normalised by sqrt(v): ignores the scale of g",
    RMSPROP: "direction of g, normalised by sqrt(v): ignores the scale of g",
    SIGN_MOMENTUM: "direction of m, ignores the scale of g and v (Lion/Signum-like)",
    SIGN_SGD: "direction of g, ignores the scale of g and v",
    SGD: "proportional to |g|, ignores v, the same factor whether or not sign(g) = sign(m)",
}
NON_DESCENT, SUPERLINEAR, OTHER = "Non-descent", "Superlinear in |g|", "Other responses"
UNNAMED_TEXT: dict[str, str] = {
    NON_DESCENT: "not finite, zero, or not a step along g where sign(g) = sign(m)",
    SUPERLINEAR: "steps along g, grows faster than |g| (like g^3 or g*|g|)",
    OTHER: "steps along g, but responds as none of the named kinds",
}


@dataclass(frozen=True)
class Response:
    """The measured responses of one rule (see the module docstring); NaN where not measurable."""

    finite: bool
    follows: float
    descent: float  # sum(u_A sign(g_A)) / sum|u_A|: +1 steps along g where g and m agree
    scale: float
    v: float
    zeroed: bool  # u ~ 0 where sign(g) != sign(m)
    agreement: float  # median l = ln(|u_agree| / |u_disagree|)
    agreement_spread: float  # spread of l over pairs and between g > 0 and g < 0
    step: str  # "", "step" (the whole update decays) or "response" (its shape changes with t)
    schedules: tuple[str, ...]
    stochastic: tuple[str, ...]


@dataclass(frozen=True)
class Signature:
    """A rule's family (a named kind or a coarse class) in words, and what splits the family into
    sub-families: the description of an unnamed response and the modifiers, in words."""

    family: str
    family_text: str
    description: str  # "" for a named kind, whose family text says it all
    modifiers: tuple[str, ...]
    response: Response

    @property
    def sub_key(self) -> tuple[str, tuple[str, ...]]:
        return self.description, self.modifiers

    @property
    def sub_text(self) -> str:
        """What sets the sub-family apart: "base e (x7.39), decays: response (cd)", or "plain"."""
        parts = ([self.description] if self.description else []) + list(self.modifiers)
        return "; ".join(parts) if parts else "plain"

    @property
    def text(self) -> str:
        """The whole signature in words."""
        return f"{self.family_text}; {self.sub_text}"


@dataclass(frozen=True)
class _MeanEnv(ProbeEnv):
    """Probe values with noise and anneal at their mean, 0 (drop keeps its seeded draws)."""

    def randn(self, key: str) -> torch.Tensor:
        return torch.zeros(self.t.shape, dtype=torch.float64)


def _pairs(scale: float = 1.0, v_scale: float = 1.0, t: float = 0.0) -> _MeanEnv:
    """2 * RESPONSE_PROBES elements: pairs agree / disagree (see the module docstring), g and m times
    `scale`, v times scale^2 * v_scale, y times scale^3, at step t."""
    rng = np.random.default_rng(RESPONSE_SEED)
    n = RESPONSE_PROBES
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    g = sign * SCALE * 10.0 ** rng.uniform(-0.5, 0.5, size=n)
    m = sign * SCALE * 10.0 ** rng.uniform(-0.5, 0.5, size=n)
    v = (g**2 + m**2) * rng.uniform(1.0, 2.0, size=n)
    y = g**3 * rng.uniform(0.5, 1.5, size=n)
    w = rng.normal(0.0, 0.1, size=n)  # weights of a trained layer
    values = dict(g=np.tile(g, 2) * scale, m=np.concatenate([m, -m]) * scale,
                  v=np.tile(v, 2) * scale**2 * v_scale, y=np.tile(y, 2) * scale**3, w=np.tile(w, 2))
    tensors = {k: torch.tensor(a, dtype=torch.float64) for k, a in values.items()}
    return _MeanEnv(tensors, torch.full((2 * n,), float(t), dtype=torch.float64), TOTAL_STEPS, RESPONSE_SEED)


def stochastic_parts(rule: Rule) -> tuple[str, ...]:
    """The rule's random parts among noise, anneal and drop."""
    found = {name for name in ("noise", "anneal") if name in rule.operands}
    if rule.canonical.atoms(F.Drop):
        found.add("drop")
    return tuple(name for name in STOCHASTIC if name in found)


def mean_update(rule: Rule, env: _MeanEnv) -> np.ndarray:
    """The update on `env`; with drop, its mean over DRAWS draws."""
    if not rule.canonical.atoms(F.Drop):
        return probe_outputs(rule.program, env)
    draws = [dataclasses.replace(env, seed=env.seed * DRAWS + i) for i in range(DRAWS)]
    return np.mean([probe_outputs(rule.program, e) for e in draws], axis=0)


def _exponent(u: np.ndarray, scaled: np.ndarray) -> float:
    """log10(mean|scaled| / mean|u|) / log10(FACTOR) (NaN when either is 0 or not finite)."""
    before, after = float(np.abs(u).mean()), float(np.abs(scaled).mean())
    if not (before > 0 and after > 0 and math.isfinite(after)):
        return math.nan
    return math.log10(after / before) / math.log10(FACTOR)


def _aligned(u: np.ndarray, g: np.ndarray) -> float:
    """sum(u sign(g)) / sum|u| (NaN when u is 0 there)."""
    total = np.abs(u).sum()
    return float((u * np.sign(g)).sum() / total) if total > 0 else math.nan


def _agreement(u_a: np.ndarray, u_d: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """(median l, spread): l = ln|u_A| - ln|u_D| per pair; the spread is the larger of l's
    interquartile range and the gap between the medians over g > 0 and g < 0."""
    ok = (u_a != 0) & (u_d != 0)
    if ok.sum() < 4:
        return math.nan, math.nan
    ell = np.log(np.abs(u_a[ok])) - np.log(np.abs(u_d[ok]))
    q1, q3 = np.percentile(ell, [25, 75])
    pos, neg = ell[g[ok] > 0], ell[g[ok] < 0]
    gap = abs(np.median(pos) - np.median(neg)) if len(pos) and len(neg) else 0.0
    return float(np.median(ell)), float(max(q3 - q1, gap))


def _step_dependence(rule: Rule, u: np.ndarray) -> str:
    """"" when the update at STEPS equals the one at t = 0, "step" when it differs by a positive factor,
    "response" otherwise."""
    kind = ""
    for t in STEPS:
        later = mean_update(rule, _pairs(t=t))
        if not np.isfinite(later).all() or np.allclose(later, u, rtol=1e-9, atol=0.0):
            continue
        norm = np.linalg.norm(u) * np.linalg.norm(later)
        cos = float(u @ later / norm) if norm > 0 else 0.0
        if cos < 1 - 1e-9:
            return "response"
        kind = "step"
    return kind


def response(rule: Rule) -> Response:
    """The measured responses of a rule (see the module docstring)."""
    env = _pairs()
    u = mean_update(rule, env)
    g = env.tensor("g").numpy()
    schedules = tuple(s for s in SCHEDULES if s in rule.operands)
    stochastic = stochastic_parts(rule)
    if not np.isfinite(u).all() or not np.any(u):
        nan = math.nan
        return Response(False, nan, nan, nan, nan, False, nan, nan, "", schedules, stochastic)
    n = RESPONSE_PROBES
    u_a, u_d, g_a = u[:n], u[n:], g[:n]
    zeroed = float(np.abs(u_d).mean()) <= ZERO * float(np.abs(u_a).mean())
    agreement, spread = _agreement(u_a, u_d, g_a)
    with np.errstate(all="ignore"):
        scale = _exponent(u, mean_update(rule, _pairs(scale=FACTOR)))
        v = _exponent(u, mean_update(rule, _pairs(v_scale=FACTOR**2)))
    return Response(True, _aligned(u_d, g[n:]), _aligned(u_a, g_a), scale, v, zeroed, agreement, spread,
                    _step_dependence(rule, u), schedules, stochastic)


def _near(x: float, target: float) -> bool:
    return math.isfinite(x) and abs(x - target) <= TOLERANCE


def _direction(r: Response) -> str:
    if not math.isfinite(r.follows):
        return "mixed"
    return "g" if r.follows >= FOLLOW else "m" if r.follows <= -FOLLOW else "mixed"


def kind_of(r: Response) -> str:
    """The named kind a response belongs to, or "" (see KIND_TEXT)."""
    if not r.finite or not (math.isfinite(r.descent) and r.descent >= FOLLOW):
        return ""
    plain = _near(r.scale, 1.0) and _near(r.v, 0.0)
    direction = _direction(r)
    constant = math.isfinite(r.agreement_spread) and r.agreement_spread <= CONSTANT_SPREAD
    if plain and r.zeroed:
        return ADDSIGN
    if plain and direction == "g" and constant and r.agreement > math.log(1.1):
        return POWERSIGN
    if plain and (direction != "g" or constant and _near(r.agreement, 0.0)):
        return SGD
    if _near(r.scale, 0.0) and _near(r.v, -1.0) and direction != "mixed":
        return ADAM if direction == "m" else RMSPROP
    if _near(r.scale, 0.0) and _near(r.v, 0.0) and direction != "mixed":
        return SIGN_MOMENTUM if direction == "m" else SIGN_SGD
    return ""


def unnamed_kind(r: Response) -> str:
    """The coarse class of a response no named kind fits (see UNNAMED_TEXT)."""
    if not r.finite or not (math.isfinite(r.descent) and r.descent >= FOLLOW):
        return NON_DESCENT
    if math.isfinite(r.scale) and r.scale > 1.0 + TOLERANCE:
        return SUPERLINEAR
    return OTHER


def _describe(r: Response) -> str:
    """An unnamed response in words (rules sharing this text share a family)."""
    if not r.finite:
        return "not finite or zero on the probes"
    parts = []
    if not (math.isfinite(r.descent) and r.descent >= FOLLOW):
        parts.append("does not step along g where sign(g) = sign(m)")
    direction = _direction(r)
    parts.append("direction of g" if direction == "g" else "direction of m" if direction == "m"
                 else "direction of neither g nor m alone")
    parts.append(_scale_words(r.scale))
    parts.append("normalised by sqrt(v)" if _near(r.v, -1.0) else "ignores v" if _near(r.v, 0.0)
                 else "depends on v")
    if r.zeroed:
        parts.append("0 where sign(g) != sign(m)")
    elif math.isfinite(r.agreement) and not _near(r.agreement, 0.0):
        parts.append("larger where sign(g) = sign(m)" if r.agreement > 0 else "smaller where sign(g) = sign(m)")
    elif math.isfinite(r.agreement_spread) and r.agreement_spread > TOLERANCE:
        parts.append("|u| depends on sign(m)")
    return ", ".join(parts)


def _scale_words(a: float) -> str:
    if _near(a, 1.0):
        return "proportional to |g|"
    if _near(a, 0.0):
        return "ignores the scale of g"
    return "grows with |g|" if a > 0 else "shrinks as |g| grows" if math.isfinite(a) else "scale not measurable"


def _modifiers(kind: str, r: Response) -> tuple[str, ...]:
    """What splits a kind into sub-families: PowerSign's base, the direction of SGD/Momentum, decays,
    stochastic parts."""
    out = []
    if kind == POWERSIGN:
        out.append(f"base {_base_text(math.exp(r.agreement / 2))} (x{math.exp(r.agreement):.3g} where signs agree)")
    if kind == SGD:
        out.append({"g": "direction of g (SGD)", "m": "direction of m (Momentum)"}.get(_direction(r), "g and m mixed"))
    if r.step:
        out.append(f"decays: {r.step}" + (f" ({', '.join(r.schedules)})" if r.schedules else ""))
    if r.stochastic:
        out.append(f"stochastic: {', '.join(r.stochastic)}")
    return tuple(out)


def _base_text(base: float) -> str:
    return "e" if abs(base - math.e) < 0.01 else f"{base:.3g}"


def signature(rule: Rule) -> Signature:
    """The rule's family and sub-family signature, measured on the response probes."""
    r = response(rule)
    kind = kind_of(r)
    if kind:
        return Signature(kind, KIND_TEXT[kind], "", _modifiers(kind, r), r)
    coarse = unnamed_kind(r)
    return Signature(coarse, UNNAMED_TEXT[coarse], _describe(r), _modifiers(kind, r), r)
