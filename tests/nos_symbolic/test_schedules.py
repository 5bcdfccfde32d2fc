"""The sign decays and the learning-rate schedules follow NOS.md section 4."""
import math

import pytest
import torch
from torch import nn

from nos_symbolic import NosError
from nos_symbolic.optim import SymbolicOptimizer
from nos_symbolic.probes import ProbeEnv
from nos_symbolic.registry import REGISTRY
from nos_symbolic.schedules import (cosine_decay, linear_cosine_decay, linear_decay,
                                    noisy_linear_cosine_decay, restart_decay)

T = 40
STEPS = [0, 1, 7, 20, 33, 40, 41, 100]


@pytest.mark.parametrize("t", STEPS)
def test_sign_decays_follow_the_formulas(t):
    c = min(t, T)
    assert linear_decay(t, T) == pytest.approx((T - c) / T)
    assert cosine_decay(t, T) == pytest.approx(0.5 * (1 + math.cos(2 * math.pi * 0.5 * c / T)))
    assert cosine_decay(t, T, n=2) == pytest.approx(0.5 * (1 + math.cos(2 * math.pi * 2 * c / T)))
    assert restart_decay(t, T) == pytest.approx(0.5 * (1 + math.cos(math.pi * (c % T) / T)))
    assert restart_decay(t, T, n=3) == pytest.approx(0.5 * (1 + math.cos(math.pi * ((3 * c) % T) / T)))


def test_sign_decays_are_the_dsl_schedules():
    env = ProbeEnv({}, torch.tensor([float(t) for t in STEPS], dtype=torch.float64), float(T), 0)
    for name, fn in [("ld", linear_decay), ("cd", cosine_decay), ("rd", restart_decay)]:
        entry = REGISTRY[name]
        tensor = entry.torch(env, *(p.default for p in entry.params))
        assert [fn(t, T) for t in STEPS] == pytest.approx(tensor.tolist(), rel=1e-15, abs=1e-15)


def lrs(scheduler_factory, steps: int) -> list[float]:
    w = nn.Parameter(torch.zeros(1))
    opt = SymbolicOptimizer([w], "g", lr=0.1)
    scheduler = scheduler_factory(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        w.grad = torch.ones(1)
        opt.step()
        scheduler.step()
    return out


def linear_cosine(t, num_periods=0.5, alpha=0.0, beta=0.001, noise=0.0):
    t = min(t, T)
    linear = (T - t) / T + noise
    cosine = 0.5 * (1 + math.cos(math.pi * 2 * num_periods * t / T))
    return (alpha + linear) * cosine + beta


@pytest.mark.parametrize("kwargs", [{}, {"num_periods": 2.0, "alpha": 0.1, "beta": 0.01}])
def test_linear_cosine_decay(kwargs):
    got = lrs(lambda opt: linear_cosine_decay(opt, T, **kwargs), T + 5)
    assert isinstance(linear_cosine_decay(torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=1), T),
                      torch.optim.lr_scheduler.LambdaLR)
    assert got == pytest.approx([0.1 * linear_cosine(t, **kwargs) for t in range(T + 5)])


def test_noisy_linear_cosine_decay_is_seeded_and_noisy():
    first = lrs(lambda opt: noisy_linear_cosine_decay(opt, T, seed=1), T)
    assert first == lrs(lambda opt: noisy_linear_cosine_decay(opt, T, seed=1), T)
    assert first != lrs(lambda opt: noisy_linear_cosine_decay(opt, T, seed=2), T)
    assert first != pytest.approx([0.1 * linear_cosine(t) for t in range(T)])
    quiet = lrs(lambda opt: noisy_linear_cosine_decay(opt, T, initial_variance=0.0), T)
    assert quiet == pytest.approx([0.1 * linear_cosine(t) for t in range(T)])


def test_noise_variance_decays_as_documented():
    # eps_t = (lr_t / lr0 - ((alpha + linear) cosine + beta)) / cosine ~ N(0, 1 / (1 + t)^0.55)
    t, samples = 5, []
    for seed in range(400):
        opt = torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=1.0)
        factor = noisy_linear_cosine_decay(opt, T, seed=seed).lr_lambdas[0](t)
        cosine = 0.5 * (1 + math.cos(math.pi * t / T))
        samples.append((factor - linear_cosine(t)) / cosine)
    variance = sum(s * s for s in samples) / len(samples)
    assert variance == pytest.approx(1 / (1 + t) ** 0.55, rel=0.2)


@pytest.mark.parametrize("bad", [0, -3, 2.5, None])
def test_total_steps_must_be_a_positive_integer(bad):
    opt = torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=1.0)
    with pytest.raises(NosError):
        linear_cosine_decay(opt, bad)
    with pytest.raises(NosError):
        linear_decay(3, bad)
