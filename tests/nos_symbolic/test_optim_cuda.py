"""On a GPU, SymbolicOptimizer takes torch Adam's steps for `m / sqrt(v)` and the formula's steps for
PowerSign, its decay taken at TF's 0-based global step (skipped without CUDA; test_conformance.py runs
the torch-style checks on cuda too)."""
import io
import math

import pytest
import torch
from torch import nn

from nos_symbolic.named import PowerSign
from nos_symbolic.optim import SymbolicOptimizer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
T = 20


def mlp(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)).to("cuda", dtype)


def step(model, opt, x, y):
    opt.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    opt.step()


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=str)
@pytest.mark.parametrize("use_compile", [False, True], ids=["eager", "compiled"])
def test_adam_rule_on_cuda(dtype, tol, use_compile):
    gen = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(32, 8, device="cuda", dtype=dtype, generator=gen)
    y = torch.randn(32, 3, device="cuda", dtype=dtype, generator=gen)
    a, b = mlp(dtype), mlp(dtype)
    adam = torch.optim.Adam(a.parameters(), lr=1e-2, eps=1e-8)
    ours = SymbolicOptimizer(b.parameters(), "m / sqrt(v)", lr=1e-2, compile=use_compile)
    for _ in range(100):
        step(a, adam, x, y)
        step(b, ours, x, y)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pb, pa, rtol=tol, atol=tol * float(pa.detach().abs().max()))


@pytest.mark.parametrize("decay", [None, "cd"], ids=str)
def test_powersign_on_cuda_matches_the_formula(decay):
    gen = torch.Generator(device="cuda").manual_seed(0)
    shapes = [(64, 32), (32,), (10, 3, 3)]
    init = [torch.randn(s, device="cuda", dtype=torch.float64, generator=gen) for s in shapes]
    ours = [nn.Parameter(p.clone()) for p in init]
    ref = [p.clone() for p in init]
    m = [torch.zeros_like(p) for p in init]
    opt = PowerSign(ours, lr=0.05, sign_decay=decay, total_steps=T)
    for t in range(1, T + 3):
        f = 1.0 if decay is None else 0.5 * (1 + math.cos(math.pi * min(t - 1, T) / T))  # at global step t - 1
        for p, q, mi in zip(ours, ref, m):
            g = torch.randn(p.shape, device="cuda", dtype=torch.float64, generator=gen)
            p.grad = g
            mi.mul_(0.9).add_(0.1 * g)
            q.sub_(0.05 * torch.exp(f * torch.sign(g) * torch.sign(mi)) * g)
        opt.step()
        for p, q in zip(ours, ref):
            torch.testing.assert_close(p.detach(), q, rtol=1e-12, atol=1e-14)


def test_stochastic_rule_checkpoint_on_cuda():
    def run(opt_state=None, params=None):
        params = params or [nn.Parameter(torch.ones(50, device="cuda"))]
        opt = SymbolicOptimizer(params, "g + noise", lr=0.1, seed=4)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        return params, opt

    params, opt = run()
    for _ in range(3):
        params[0].grad = torch.ones(50, device="cuda")
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    saved_w = params[0].detach().clone()
    params[0].grad = torch.ones(50, device="cuda")
    opt.step()
    buffer.seek(0)
    fresh, fresh_opt = run(torch.load(buffer), [nn.Parameter(saved_w)])
    fresh[0].grad = torch.ones(50, device="cuda")
    fresh_opt.step()
    assert torch.equal(fresh[0], params[0])
