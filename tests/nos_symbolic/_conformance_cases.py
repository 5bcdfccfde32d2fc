"""What the conformance tests run on: the optimizers (a spread of rules and the named classes), the
devices, a tiny model and its data, one training step. One test body runs over every case, as
optax runs one test over every transform."""
from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn

from nos_symbolic.named import AddSign, PowerSign
from nos_symbolic.optim import SymbolicOptimizer

T = 40  # total_steps of the scheduled rules

# id -> factory(params, **overrides); deterministic and stochastic rules, every operand kind, the
# named classes with weight decay and maximize.
MAKERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda ps, **kw: SymbolicOptimizer(ps, "m / sqrt(v)", **{"lr": 1e-2, **kw}),
    "powersign-cd": lambda ps, **kw: SymbolicOptimizer(ps, "powersign-cd", total_steps=T, **{"lr": 1e-2, **kw}),
    "noise": lambda ps, **kw: SymbolicOptimizer(ps, "g + noise", seed=3, **{"lr": 1e-2, **kw}),
    "drop-anneal": lambda ps, **kw: SymbolicOptimizer(ps, "drop(m, 0.3) + anneal * 1e-2 * g + 1e-3 * w",
                                                      total_steps=T, **{"lr": 1e-2, **kw}),
    "y": lambda ps, **kw: SymbolicOptimizer(ps, "sign(y) * sqrt(v) + rd * g", total_steps=T,
                                            **{"lr": 1e-3, "weight_decay": 0.01, **kw}),
    "PowerSign": lambda ps, **kw: PowerSign(ps, sign_decay="ld", total_steps=T,
                                            **{"lr": 1e-2, "weight_decay": 0.1, **kw}),
    "AddSign": lambda ps, **kw: AddSign(ps, sign_decay="rd", total_steps=T, **{"lr": 1e-2, "maximize": True, **kw}),
}

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
# (device, compile): compile=True is for GPUs (on a CPU the eager path is the fast one)
CONFIGS = [pytest.param(("cpu", False), id="cpu"),
           pytest.param(("cuda", False), id="cuda", marks=needs_cuda),
           pytest.param(("cuda", True), id="cuda-compiled", marks=needs_cuda)]


def model(device: str = "cpu", seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2)).to(device, dtype)


def data(device: str = "cpu", dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 6, generator=gen), torch.randn(16, 2, generator=gen)
    return x.to(device, dtype), y.to(device, dtype)


def loss_of(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((net(x) - y) ** 2).mean()


def train_step(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad()
    loss_of(net, x, y).backward()
    opt.step()


def same_tensors(a, b) -> bool:
    """Bit for bit (NaN equal to NaN)."""
    return all(torch.equal(p.detach().nan_to_num(), q.detach().nan_to_num()) for p, q in zip(a, b))


def same_state(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    if sa["state"].keys() != sb["state"].keys():
        return False
    for key, entry in sa["state"].items():
        other = sb["state"][key]
        if entry.keys() != other.keys():
            return False
        for name, value in entry.items():
            same = torch.equal(value, other[name]) if isinstance(value, torch.Tensor) else value == other[name]
            if not same:
                return False
    return True
