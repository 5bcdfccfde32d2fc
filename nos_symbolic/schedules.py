"""Schedules of the step t over T total steps (Bello et al. 2017; TensorFlow's decay code).

Sign decays, the f(t) of PowerSign and AddSign and the DSL's ld, cd, rd (the registry's torch
implementations, called here on plain numbers), with t the global step (the steps already taken,
0-based, TensorFlow's global_step: an optimizer's first step reads t = 0) clipped to T:

    ld(t)    = (T - t) / T
    cd(t; n) = 0.5 * (1 + cos(2 pi n t / T))             n = 0.5
    rd(t; n) = 0.5 * (1 + cos(pi * ((n t) mod T) / T))   n = 1

Learning-rate schedules, as torch.optim.lr_scheduler.LambdaLR objects (step t = the number of
scheduler.step() calls so far, TensorFlow's 0-based global step; call it after optimizer.step()).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.optim.lr_scheduler import LambdaLR

from nos_symbolic.errors import NosError
from nos_symbolic.registry import REGISTRY


@dataclass(frozen=True)
class _Step:
    """The two fields of an Env (see compile.py) a schedule reads."""

    t: Any
    T: Any


def _checked_total(total_steps: Any) -> int:
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise NosError(f"total_steps must be a positive integer, got {total_steps!r}")
    return total_steps


def linear_decay(t: float, total_steps: int) -> float:
    """ld(t) = (T - t) / T, t clipped to T: 1 at t = 0, 0 from t = T on."""
    return REGISTRY["ld"].torch(_Step(t, _checked_total(total_steps)))


def cosine_decay(t: float, total_steps: int, n: float = 0.5) -> float:
    """cd(t; n) = 0.5 * (1 + cos(2 pi n t / T)), t clipped to T; n = 0.5 falls from 1 to 0 once."""
    return REGISTRY["cd"].torch(_Step(t, _checked_total(total_steps)), n)


def restart_decay(t: float, total_steps: int, n: float = 1.0) -> float:
    """rd(t; n) = 0.5 * (1 + cos(pi * ((n t) mod T) / T)), t clipped to T: n falls from 1 to 0,
    each followed by a restart at 1."""
    return REGISTRY["rd"].torch(_Step(t, _checked_total(total_steps)), n)


def _linear_cosine(t: int, total_steps: int, num_periods: float, alpha: float, beta: float,
                   noise: float = 0.0) -> float:
    t = min(t, total_steps)
    linear = (total_steps - t) / total_steps + noise
    cosine = 0.5 * (1.0 + math.cos(math.pi * 2.0 * num_periods * t / total_steps))
    return (alpha + linear) * cosine + beta


def linear_cosine_decay(optimizer: torch.optim.Optimizer, total_steps: int, num_periods: float = 0.5,
                        alpha: float = 0.0, beta: float = 0.001) -> LambdaLR:
    r"""Linear cosine decay of every group's learning rate (the paper's schedule).

    .. math::

        \mathrm{linear} = \frac{T - t}{T}, \quad
        \mathrm{cosine} = \tfrac12\left(1 + \cos\frac{2\pi\,\mathrm{num\_periods}\; t}{T}\right), \quad
        \mathrm{lr}_t = \mathrm{lr}_0 \left((\alpha + \mathrm{linear})\,\mathrm{cosine} + \beta\right)

    with t clipped to T = total_steps.

    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> scheduler = linear_cosine_decay(opt, total_steps=100)  # then scheduler.step() every step
    """
    total_steps = _checked_total(total_steps)
    return LambdaLR(optimizer, lambda t: _linear_cosine(t, total_steps, num_periods, alpha, beta))


def noisy_linear_cosine_decay(optimizer: torch.optim.Optimizer, total_steps: int,
                              initial_variance: float = 1.0, variance_decay: float = 0.55,
                              num_periods: float = 0.5, alpha: float = 0.0, beta: float = 0.001,
                              seed: int = 0) -> LambdaLR:
    r"""Linear cosine decay with Gaussian noise added to the linear part.

    .. math::

        \epsilon_t \sim \mathcal N\!\left(0,
            \frac{\mathrm{initial\_variance}}{(1 + t)^{\mathrm{variance\_decay}}}\right), \quad
        \mathrm{lr}_t = \mathrm{lr}_0 \left((\alpha + \mathrm{linear} + \epsilon_t)\,\mathrm{cosine}
        + \beta\right)

    (linear and cosine as in `linear_cosine_decay`; t clipped to T). The draw at step t depends only
    on (seed, t), so the schedule is reproducible and resumes exactly from a checkpoint.
    """
    total_steps = _checked_total(total_steps)
    if initial_variance < 0:
        raise NosError(f"initial_variance must be >= 0, got {initial_variance!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise NosError(f"seed must be an integer >= 0, got {seed!r}")

    def factor(t: int) -> float:
        clipped = min(t, total_steps)
        std = math.sqrt(initial_variance / (1.0 + clipped) ** variance_decay)
        noise = std * float(np.random.default_rng([seed, t]).standard_normal())
        return _linear_cosine(t, total_steps, num_periods, alpha, beta, noise)

    return LambdaLR(optimizer, factor)
