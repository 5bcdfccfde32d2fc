"""The paper's baselines as optimizer factories, taken from torch itself so comparisons are fair.

Each takes (params, lr, total_steps) like every OptimizerFactory. Hyper-parameters other than lr are
torch's defaults except where the paper's baselines name one: momentum 0.9, Adam eps 1e-8.
`adam-cosine` is what a practitioner runs: Adam with its lr decayed to zero over the run,

    lr_t = lr * (1 + cos(pi * t / T)) / 2,     t = steps already taken, T = total_steps,

so "better than Adam" can mean better than the recipe people use, not only than constant-lr Adam.
"""
from __future__ import annotations

import math

import torch

from nos_symbolic.tasks.train import OptimizerFactory


def cosine_to_zero(factory: OptimizerFactory) -> OptimizerFactory:
    """factory with every group's lr multiplied by (1 + cos(pi t / T)) / 2 after each of its steps
    (t = steps taken so far, clipped to T = total_steps): 1 at the first step, 0 at the end."""

    def make(params, lr: float, total_steps: int) -> torch.optim.Optimizer:
        optimizer = factory(params, lr, total_steps)
        horizon = max(1, total_steps)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, horizon) / horizon)))
        optimizer.register_step_post_hook(lambda opt, args, kwargs: schedule.step())
        return optimizer

    return make


def _adam(params, lr: float, total_steps: int) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, eps=1e-8)


BASELINES: dict[str, OptimizerFactory] = {
    "sgd": lambda params, lr, total_steps: torch.optim.SGD(params, lr=lr),
    "momentum": lambda params, lr, total_steps: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "adam": _adam,
    "rmsprop": lambda params, lr, total_steps: torch.optim.RMSprop(params, lr=lr),
    "adam-cosine": cosine_to_zero(_adam),
}
