"""Fixed probe values and the functional fingerprints of a rule.

A rule's fingerprint is a hash of its outputs on fixed, seeded probes in float64:
256 elements = 4 steps t in {1, 10, 300, 1000} (T = 1000) x 64 elements whose g spans both signs and
magnitudes 1e-6..1e2, with m agreeing in sign with g about half the time, v >= m^2-ish, and fixed draws
for noise, anneal and every drop. Outputs are rounded to 20 bits of mantissa (about 1e-6 relative) and
values below 1e-9 of the largest are flushed to 0, so rules equal up to float error share a fingerprint
even where SymPy cannot prove it (sqrt(g2), abs(g) and sign(g)*g). The scale fingerprint hashes the
outputs divided by their RMS: rules equal up to a positive factor (absorbed by the learning rate)
share it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from nos_symbolic.compile import Program

PROBE_SEED = 20170907
N_ELEMENTS = 64
STEPS = (1.0, 10.0, 300.0, 1000.0)
TOTAL_STEPS = 1000.0
MANTISSA_BITS = 20
FLUSH = 1e-9


@dataclass(frozen=True)
class ProbeEnv:
    """An Env (see compile.py) of fixed tensors; draws are fixed per key."""

    values: dict[str, torch.Tensor]
    t: torch.Tensor
    T: float
    seed: int

    def tensor(self, name: str) -> torch.Tensor:
        return self.values[name]

    def randn(self, key: str) -> torch.Tensor:
        return torch.randn(self.t.shape, generator=self._generator(key), dtype=torch.float64)

    def rand(self, key: str) -> torch.Tensor:
        return torch.rand(self.t.shape, generator=self._generator(key), dtype=torch.float64)

    def _generator(self, key: str) -> torch.Generator:
        digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def make_probe_env(seed: int = PROBE_SEED, n: int = N_ELEMENTS,
                   steps: tuple[float, ...] = STEPS, total_steps: float = TOTAL_STEPS) -> ProbeEnv:
    """Probe values for every operand, tiled over the steps."""
    rng = np.random.default_rng(seed)
    sign = rng.choice([-1.0, 1.0], size=n)
    g = sign * 10.0 ** rng.uniform(-6, 2, size=n)
    agree = rng.choice([-1.0, 1.0], size=n)  # m points with g about half the time
    m = agree * sign * 10.0 ** rng.uniform(-6, 2, size=n)
    v = m**2 * rng.uniform(1.0, 4.0, size=n) + g**2 * rng.uniform(0.0, 1.0, size=n)
    y = rng.choice([-1.0, 1.0], size=n) * 10.0 ** rng.uniform(-9, 3, size=n)
    w = rng.normal(0.0, 1.0, size=n) * 10.0 ** rng.uniform(-2, 1, size=n)
    tile = lambda a: torch.tensor(np.tile(a, len(steps)), dtype=torch.float64)  # noqa: E731
    t = torch.tensor(np.repeat(steps, n), dtype=torch.float64)
    values = {name: tile(a) for name, a in dict(g=g, m=m, v=v, y=y, w=w).items()}
    return ProbeEnv(values, t, total_steps, seed)


@lru_cache(maxsize=1)
def default_probes() -> ProbeEnv:
    """The fixed probes every fingerprint is computed on."""
    return make_probe_env()


def probe_outputs(program: Program, env: ProbeEnv | None = None) -> np.ndarray:
    """The rule's update on the probes, as float64 numpy (NaN/Inf kept)."""
    env = env or default_probes()
    with torch.no_grad(), np.errstate(all="ignore"):
        return program(env).detach().to(torch.float64).numpy().copy()


def quantize(x: np.ndarray) -> np.ndarray:
    """Round to MANTISSA_BITS of mantissa; flush values tiny next to the largest; NaN/Inf untouched."""
    x = np.array(x, dtype=np.float64)
    finite = np.isfinite(x)
    scale = np.max(np.abs(x[finite])) if finite.any() else 0.0
    x[finite & (np.abs(x) <= FLUSH * scale)] = 0.0
    mant, exp = np.frexp(x[finite])
    x[finite] = np.ldexp(np.round(np.ldexp(mant, MANTISSA_BITS)), exp - MANTISSA_BITS)
    x[np.isnan(x)] = np.nan  # one NaN bit pattern
    return x + 0.0  # -0.0 -> 0.0


def hash_outputs(x: np.ndarray) -> str:
    """16 hex digits of sha256 over the quantized outputs."""
    return hashlib.sha256(quantize(x).tobytes()).hexdigest()[:16]


def scale_normalized(x: np.ndarray) -> np.ndarray:
    """x / RMS(x) over finite entries (unchanged when the RMS is 0 or not finite)."""
    finite = np.isfinite(x)
    if not finite.any():
        return x
    peak = float(np.max(np.abs(x[finite])))
    if peak == 0.0:
        return x
    scaled = x / peak  # dividing by the peak first keeps the squares from overflowing
    return scaled / float(np.sqrt(np.mean(np.square(scaled[finite]))))


def fingerprints(outputs: np.ndarray) -> tuple[str, str]:
    """(fingerprint, scale_fingerprint) of a rule's probe outputs."""
    return hash_outputs(outputs), hash_outputs(scale_normalized(outputs))
