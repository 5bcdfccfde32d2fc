"""PowerSign and AddSign take the steps of a reference written from the paper's formulas.

The reference follows NOS.md section 4 literally: per tensor, an uncorrected running average
m_t = beta m_{t-1} + (1 - beta) g, and update = alpha^(f(t) sign(g) sign(m_t)) g (PowerSign) or
(alpha + f(t) sign(g) sign(m_t)) g (AddSign). The optimizers keep the bias-corrected m_hat; since
m_hat = m / (1 - beta^t) with a positive factor, sign(m_hat) = sign(m) and the steps agree.
"""
import math

import pytest
import torch
from torch import nn

from nos_symbolic import NosError, parse_rule
from nos_symbolic.named import AddSign, PowerSign, addsign_rule, powersign_rule
from nos_symbolic.registry import named_rule_text

T = 30
DECAYS = [None, "ld", "cd", "rd"]


def reference_decay(name: str | None, t: int) -> float:
    """f(t) of NOS.md section 4, t clipped to T; cd with n = 0.5, rd with n = 1."""
    t = min(t, T)
    if name is None:
        return 1.0
    if name == "ld":
        return (T - t) / T
    if name == "cd":
        return 0.5 * (1 + math.cos(2 * math.pi * 0.5 * t / T))
    return 0.5 * (1 + math.cos(math.pi * ((1 * t) % T) / T))


class Reference:
    """Per-tensor loops straight from the formulas."""

    def __init__(self, params, kind, lr, alpha, beta, decay):
        self.params, self.kind, self.lr = params, kind, lr
        self.alpha, self.beta, self.decay = alpha, beta, decay
        self.m = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        f = reference_decay(self.decay, self.t)
        for p, m in zip(self.params, self.m):
            g = p.grad
            m.mul_(self.beta).add_((1 - self.beta) * g)
            s = f * torch.sign(g) * torch.sign(m)
            update = (self.alpha ** s) * g if self.kind == "powersign" else (self.alpha + s) * g
            p.sub_(self.lr * update)


def shapes_and_grads(steps: int):
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (3,), (2, 2, 2), (1,)]
    params = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    # grads with sign changes and exact zeros, so sign(m) flips and is sometimes 0
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64).mul_(torch.rand(s, generator=gen) > 0.1)
              for s in shapes] for _ in range(steps)]
    return params, grads


@pytest.mark.parametrize("decay", DECAYS, ids=str)
@pytest.mark.parametrize("kind, alpha", [("powersign", math.e), ("powersign", 2.0), ("addsign", 1.0),
                                         ("addsign", 0.5)])
def test_named_optimizer_matches_the_formula(kind, alpha, decay):
    init, grads = shapes_and_grads(T + 5)  # past T: the decays stay clipped
    ours = [nn.Parameter(p.clone()) for p in init]
    ref = [nn.Parameter(p.clone()) for p in init]
    if kind == "powersign":
        opt = PowerSign(ours, lr=0.05, base=alpha, beta=0.8, sign_decay=decay, total_steps=T)
    else:
        opt = AddSign(ours, lr=0.05, alpha=alpha, beta=0.8, sign_decay=decay, total_steps=T)
    reference = Reference(ref, kind, 0.05, alpha, 0.8, decay)
    for step_grads in grads:
        for p, q, g in zip(ours, ref, step_grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        reference.step()
        for p, q in zip(ours, ref):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("decay", DECAYS, ids=str)
def test_default_rules_are_the_registry_named_rules(decay):
    suffix = f"-{decay}" if decay else ""
    assert parse_rule(powersign_rule(sign_decay=decay)).key == parse_rule(f"powersign{suffix}").key
    assert parse_rule(addsign_rule(sign_decay=decay)).key == parse_rule(f"addsign{suffix}").key
    registry_text = named_rule_text("powersign", decay)
    assert parse_rule(powersign_rule(sign_decay=decay)).key == parse_rule(registry_text).key
    assert parse_rule(powersign_rule(base=2)).canonical_text == "2**(sign(g)*sign(m))*g"


def test_one_buffer_per_parameter():
    model = nn.Linear(3, 2)
    opt = PowerSign(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    assert all(set(opt.state[p]) == {"step", "m"} for p in model.parameters())


@pytest.mark.parametrize("make", [
    lambda ps: PowerSign(ps, sign_decay="cd"),  # no total_steps
    lambda ps: PowerSign(ps, sign_decay="xd", total_steps=10),
    lambda ps: PowerSign(ps, base=0.0),
    lambda ps: AddSign(ps, alpha=math.inf),
    lambda ps: AddSign(ps, beta=1.0),
])
def test_bad_arguments_are_user_errors(make):
    with pytest.raises(NosError):
        make([nn.Parameter(torch.ones(2))])
