"""Fixed probe values and the functional fingerprints of a rule.

Probes: 256 elements = 4 steps t in {1, 10, 300, 1000} (T = 1000) x 64 elements whose g spans both
signs and magnitudes 1e-6..1e2, with m agreeing in sign with g about half the time, v >= m^2-ish, and
fixed draws for noise, anneal and every drop; float64 throughout.

Every probe output is computed by the numpy backend (numeric.py) on numpy arrays, so fingerprints and
`nos parse` never import torch. `default_probes()` offers the same probes as torch tensors, for running
a torch Program (the optimizer's backend) on them.

The fingerprint is the key under which functionally equal rules meet (Lion's and AutoML-Zero's
functional hash), robust to float-level differences:
  - It hashes the outputs of the rule with the protected division's delta shrunk from 1e-8 to
    FINGERPRINT_DELTA = 1e-30 (`fingerprint_form`). With delta = 1e-8, g/1 = g/(1 + delta) and g differ
    by 1e-8 relative on every probe, 1% of a 20-bit rounding bin, so with 256 outputs such a pair
    seldom shared a hash (2 of 16 hand-made equal pairs did, bench/bench_fingerprint.py). With 1e-30
    what is left between equal rules is rounding error, a few ulps. (Not 0: a division by an exact
    zero stays finite, x * 1e30, so it keeps the shape of its numerator.)
  - Outputs are rounded to MANTISSA_BITS = 16 bits of mantissa (1.5e-5 relative) and values below
    FLUSH = 1e-9 of the largest are flushed to 0. A rounding hash always has bin edges; what matters
    is how often two equal rules straddle one: for errors of e relative about 256 * e * 2^16, so 3e-8
    for 10 ulps (e = 2e-15).
  - Shrinking delta also meets rules that differ only where delta matters (g/g2 = g / (g^2 + delta)
    and 1/g part ways for |g| < 1e-4), and 16 bits meet rules within 1e-5 of each other. The
    fingerprint is therefore a candidate key: `same_behaviour` (rule.py) confirms a candidate by
    comparing the real outputs, delta = 1e-8, within a tolerance (`outputs_match`).
The scale fingerprint hashes the same outputs divided by their RMS: rules equal up to a positive factor
(absorbed by the learning rate) share it. Both catch equalities SymPy cannot prove (sqrt(g2), abs(g)
and sign(g)*g).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy

from nos_symbolic import functions as F
from nos_symbolic.numeric import NumpyProgram

if TYPE_CHECKING:
    from nos_symbolic.compile import Program

PROBE_SEED = 20170907
N_ELEMENTS = 64
STEPS = (1.0, 10.0, 300.0, 1000.0)
TOTAL_STEPS = 1000.0
MANTISSA_BITS = 16
FLUSH = 1e-9
FINGERPRINT_DELTA = 1e-30
MATCH_RTOL = 1e-6  # outputs_match: relative tolerance (g/1 vs g differ by 1e-8)


@dataclass(frozen=True)
class ProbeEnv:
    """An Env (see compile.py) of fixed float64 values: numpy arrays, or torch tensors to run a torch
    Program on (`as_torch`). Draws are fixed per (seed, key), numpy's generator seeded by
    sha256(f"{seed}:{key}"), and come as the same kind of array as t."""

    values: dict[str, Any]
    t: Any
    T: float
    seed: int

    def tensor(self, name: str) -> Any:
        return self.values[name]

    def randn(self, key: str) -> Any:
        return self._like_t(self._generator(key).standard_normal(tuple(self.t.shape)))

    def rand(self, key: str) -> Any:
        return self._like_t(self._generator(key).random(tuple(self.t.shape)))

    def as_torch(self) -> ProbeEnv:
        """The same probes (and draws) as torch float64 tensors."""
        import torch

        tensor = lambda a: torch.tensor(np.asarray(a, dtype=np.float64))  # noqa: E731  (a copy)
        return ProbeEnv({k: tensor(a) for k, a in self.values.items()}, tensor(self.t), self.T, self.seed)

    def _generator(self, key: str) -> np.random.Generator:
        digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def _like_t(self, draws: np.ndarray) -> Any:
        if isinstance(self.t, np.ndarray):
            return draws
        import torch

        return torch.from_numpy(draws)


def make_probe_env(seed: int = PROBE_SEED, n: int = N_ELEMENTS,
                   steps: tuple[float, ...] = STEPS, total_steps: float = TOTAL_STEPS) -> ProbeEnv:
    """Probe values for every operand, tiled over the steps (numpy arrays)."""
    rng = np.random.default_rng(seed)
    sign = rng.choice([-1.0, 1.0], size=n)
    g = sign * 10.0 ** rng.uniform(-6, 2, size=n)
    agree = rng.choice([-1.0, 1.0], size=n)  # m points with g about half the time
    m = agree * sign * 10.0 ** rng.uniform(-6, 2, size=n)
    v = m**2 * rng.uniform(1.0, 4.0, size=n) + g**2 * rng.uniform(0.0, 1.0, size=n)
    y = rng.choice([-1.0, 1.0], size=n) * 10.0 ** rng.uniform(-9, 3, size=n)
    w = rng.normal(0.0, 1.0, size=n) * 10.0 ** rng.uniform(-2, 1, size=n)
    t = np.repeat(np.asarray(steps, dtype=np.float64), n)
    values = {name: np.tile(a, len(steps)) for name, a in dict(g=g, m=m, v=v, y=y, w=w).items()}
    return ProbeEnv(values, t, total_steps, seed)


@lru_cache(maxsize=1)
def fingerprint_probes() -> ProbeEnv:
    """The fixed probes every fingerprint is computed on (numpy arrays, read-only: they are shared)."""
    env = make_probe_env()
    for array in (env.t, *env.values.values()):
        array.setflags(write=False)
    return env


@lru_cache(maxsize=1)
def default_probes() -> ProbeEnv:
    """The fingerprint probes as torch tensors, to run a torch Program on them (imports torch)."""
    return fingerprint_probes().as_torch()


def probe_outputs(program: NumpyProgram | Program, env: Any = None) -> np.ndarray:
    """The rule's update on the probes (the fingerprint probes by default) as a fresh float64 array,
    NaN/Inf kept; always computed by the numpy backend, a torch Program through its `numpy` twin.
    env may hold numpy arrays or torch CPU tensors."""
    run = program if isinstance(program, NumpyProgram) else program.numpy
    return run(fingerprint_probes() if env is None else env)


def fingerprint_form(expr: sympy.Expr) -> sympy.Expr:
    """expr with the protected division's delta set to FINGERPRINT_DELTA (expr itself without one).

    Rebuilt unevaluated, bottom-up without recursion: the same tree with another constant compiles
    to the same instructions, and SymPy does not simplify the whole rule a second time. (Not under
    `sympy.evaluate(False)`, which clears SymPy's cache on entry and exit.)"""
    if not expr.has(F.delta):
        return expr

    def rebuilt(node: sympy.Basic, args: list[sympy.Basic]) -> sympy.Basic:
        same = all(a is b for a, b in zip(args, node.args))
        return node if same else node.func(*args, evaluate=False)

    return F.fold_up(expr, rebuilt, {F.delta: sympy.Float(FINGERPRINT_DELTA)})


def _finite_peak(x: np.ndarray) -> float:
    finite = np.isfinite(x)
    return float(np.max(np.abs(x[finite]))) if finite.any() else 0.0


def quantize(x: np.ndarray, bits: int = MANTISSA_BITS) -> np.ndarray:
    """Round to `bits` of mantissa; flush values tiny next to the largest; NaN/Inf untouched."""
    x = np.array(x, dtype=np.float64)
    finite = np.isfinite(x)
    x[finite & (np.abs(x) <= FLUSH * _finite_peak(x))] = 0.0
    mant, exp = np.frexp(x[finite])
    x[finite] = np.ldexp(np.round(np.ldexp(mant, bits)), exp - bits)
    x[np.isnan(x)] = np.nan  # one NaN bit pattern
    return x + 0.0  # -0.0 -> 0.0


def hash_outputs(x: np.ndarray, bits: int = MANTISSA_BITS) -> str:
    """16 hex digits of sha256 over the quantized outputs."""
    return hashlib.sha256(quantize(x, bits).tobytes()).hexdigest()[:16]


def outputs_match(x: np.ndarray, y: np.ndarray, rtol: float = MATCH_RTOL) -> bool:
    """Whether two probe outputs agree: NaN and +-Inf in the same places, and elsewhere
    |x - y| <= rtol * |y| + FLUSH * (the larger finite peak), the flush of `quantize`."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        return False
    finite = np.isfinite(x)
    if not np.array_equal(finite, np.isfinite(y)) or not np.array_equal(np.isnan(x), np.isnan(y)):
        return False
    if not np.array_equal(x[np.isinf(x)], y[np.isinf(x)]):
        return False
    atol = FLUSH * max(_finite_peak(x), _finite_peak(y))
    with np.errstate(all="ignore"):
        return bool(np.all(np.abs(x[finite] - y[finite]) <= atol + rtol * np.abs(y[finite])))


def scale_normalized(x: np.ndarray) -> np.ndarray:
    """x / RMS(x) over finite entries (unchanged when the RMS is 0 or not finite)."""
    finite = np.isfinite(x)
    peak = _finite_peak(x)
    if peak == 0.0:
        return x
    scaled = x / peak  # dividing by the peak first keeps the squares from overflowing
    return scaled / float(np.sqrt(np.mean(np.square(scaled[finite]))))


def fingerprints(outputs: np.ndarray) -> tuple[str, str]:
    """(fingerprint, scale_fingerprint) from the probe outputs of a rule's `fingerprint_form`."""
    return hash_outputs(outputs), hash_outputs(scale_normalized(outputs))
