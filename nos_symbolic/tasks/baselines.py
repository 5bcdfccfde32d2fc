"""The paper's baselines as optimizer factories, taken from torch itself so comparisons are fair.

Each takes (params, lr, total_steps) like every OptimizerFactory; none of them uses total_steps.
Hyper-parameters other than lr are torch's defaults except where the paper's baselines name one:
momentum 0.9, Adam eps 1e-8.
"""
from __future__ import annotations

import torch

from nos_symbolic.tasks.train import OptimizerFactory

BASELINES: dict[str, OptimizerFactory] = {
    "sgd": lambda params, lr, total_steps: torch.optim.SGD(params, lr=lr),
    "momentum": lambda params, lr, total_steps: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "adam": lambda params, lr, total_steps: torch.optim.Adam(params, lr=lr, eps=1e-8),
    "rmsprop": lambda params, lr, total_steps: torch.optim.RMSprop(params, lr=lr),
}
