"""Time one optimizer.step() of SymbolicOptimizer against torch.optim.Adam(foreach=True).

Rules: `m / sqrt(v)` (Adam's step) and PowerSign, each also written the way public ports write
rules (a Python loop over parameters, a few small ops each) as a baseline. Networks: the paper's
child ConvNet (10 small tensors), a stack of 12 conv blocks (50 small tensors) and an MLP of about
10M parameters in 6 tensors. Gradients are filled once; only step() is timed. Optimizers take turns
within every round, so a load change on the machine hits all of them alike; the figure is the median
over rounds of the mean step time within a round, and every ratio comes from the same run.

    python bench/bench_step.py [--threads 1] [--rounds 15] [--compile]

Targets: `m / sqrt(v)` at most 1.25x torch's Adam, PowerSign at most 1.0x, both at least 2x faster
than the per-parameter loop on the small-tensor networks.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

from nos_symbolic.named import PowerSign
from nos_symbolic.optim import SymbolicOptimizer
from nos_symbolic.tasks.models import CifarConvNet


def conv_stack(blocks: int = 12, width: int = 32) -> nn.Module:
    """conv3x3 + BN blocks and a linear head: 4 * blocks + 2 small tensors."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width)]
    for _ in range(blocks - 1):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(width, 10))


def large_mlp() -> nn.Module:
    """2048 -> 2048 -> 2048 -> 800: about 10.0M parameters in 6 tensors."""
    return nn.Sequential(nn.Linear(2048, 2048), nn.Linear(2048, 2048), nn.Linear(2048, 800))


NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "child convnet": CifarConvNet,
    "conv stack": conv_stack,
    "10M mlp": large_mlp,
}


class LoopAdamRule(torch.optim.Optimizer):
    """`m / sqrt(v)` as public ports write it: per parameter, bias-corrected, one op at a time."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["step"] += 1
                g, m, v = p.grad, state["m"], state["v"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                m_hat = m / (1 - beta1 ** state["step"])
                v_hat = v / (1 - beta2 ** state["step"])
                p.add_(m_hat / (v_hat.sqrt() + group["eps"]), alpha=-group["lr"])


class LoopPowerSign(torch.optim.Optimizer):
    """PowerSign as public ports write it: per parameter, e^(sign(g) sign(m)) g."""

    def __init__(self, params, lr=0.1, beta=0.9):
        super().__init__(params, {"lr": lr, "beta": beta})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta = group["beta"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state["m"] = torch.zeros_like(p)
                g, m = p.grad, state["m"]
                m.mul_(beta).add_(g, alpha=1 - beta)
                p.add_(torch.exp(torch.sign(g) * torch.sign(m)) * g, alpha=-group["lr"])


def optimizers(use_compile: bool) -> dict[str, Callable]:
    makers = {
        "torch Adam(foreach)": lambda ps: torch.optim.Adam(ps, lr=1e-3, eps=1e-8, foreach=True),
        "m / sqrt(v)": lambda ps: SymbolicOptimizer(ps, "m / sqrt(v)", lr=1e-3),
        "PowerSign": lambda ps: PowerSign(ps, lr=1e-3),
        "loop m / sqrt(v)": lambda ps: LoopAdamRule(ps, lr=1e-3),
        "loop PowerSign": lambda ps: LoopPowerSign(ps, lr=1e-3),
    }
    if use_compile:
        makers["m / sqrt(v) compiled"] = lambda ps: SymbolicOptimizer(ps, "m / sqrt(v)", lr=1e-3,
                                                                      compile=True)
        makers["PowerSign compiled"] = lambda ps: PowerSign(ps, lr=1e-3, compile=True)
    return makers


def time_network(make_net: Callable[[], nn.Module], use_compile: bool, rounds: int,
                 seconds_per_round: float) -> dict[str, float]:
    """Median over rounds of each optimizer's mean step time (seconds)."""
    torch.manual_seed(0)
    runs = {}
    for name, make_opt in optimizers(use_compile).items():
        net = make_net()
        for p in net.parameters():
            p.grad = torch.randn_like(p) * 1e-3
        opt = make_opt(list(net.parameters()))
        for _ in range(3):  # warm-up: state allocated, buffers built, kernels compiled
            opt.step()
        start = time.perf_counter()
        opt.step()
        once = max(time.perf_counter() - start, 1e-6)
        runs[name] = (opt, max(1, int(seconds_per_round / once)))
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (opt, reps) in runs.items():
            start = time.perf_counter()
            for _ in range(reps):
                opt.step()
            samples[name].append((time.perf_counter() - start) / reps)
    return {name: statistics.median(s) for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.05, help="per optimizer per round")
    parser.add_argument("--compile", action="store_true", help="also time compile=True")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds")
    for net_name, make_net in NETWORKS.items():
        net = make_net()
        n_tensors = sum(1 for _ in net.parameters())
        n_params = sum(p.numel() for p in net.parameters())
        times = time_network(make_net, args.compile, args.rounds, args.seconds)
        adam = times["torch Adam(foreach)"]
        print(f"\n{net_name}: {n_tensors} tensors, {n_params:,} parameters")
        for name, seconds in times.items():
            loop = times.get(f"loop {name.removesuffix(' compiled')}")
            vs_loop = f"   {loop / seconds:5.2f}x faster than its loop" if loop and "loop" not in name else ""
            print(f"  {name:24s} {seconds * 1e6:10.1f} us   {seconds / adam:5.2f}x Adam{vs_loop}")


if __name__ == "__main__":
    main()
