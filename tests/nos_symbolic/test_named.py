"""PowerSign and AddSign take the steps of TensorFlow contrib's PowerSignOptimizer and AddSignOptimizer.

The reference is written here, independently, from TF contrib's documented code
(tensorflow/contrib/opt/python/training/powersign.py, addsign.py, sign_decay.py): per tensor, an
uncorrected running average m_t = beta m_{t-1} + (1 - beta) g, the sign decay taken at TF's
global_step (the steps already taken, 0-based, clipped to decay_steps), and

    PowerSign: var -= lr * exp(logbase * sign_decay * sign(g) * sign(m_t)) * g
    AddSign:   var -= lr * (alpha + sign_decay * sign(g) * sign(m_t)) * g

The optimizers keep the bias-corrected m_hat; m_hat = m / (1 - beta^t) with a positive factor, so
sign(m_hat) = sign(m) and the steps agree to float error.
"""
import math

import pytest
import torch
from torch import nn

from nos_symbolic import NosError, parse_rule
from nos_symbolic.named import AddSign, PowerSign, addsign_rule, powersign_rule
from nos_symbolic.registry import named_rule_text

T = 100
DECAYS = [None, "ld", "cd", "rd"]


def tf_linear_decay_fn(decay_steps):
    def linear_decay_fn(global_step):
        global_step = min(global_step, decay_steps)
        remaining_steps = int(decay_steps) - int(global_step)
        return max(0.0, float(remaining_steps) / float(decay_steps))
    return linear_decay_fn


def tf_cosine_decay_fn(decay_steps, num_periods=0.5):
    def cosine_decay_fn(global_step):
        global_step = min(global_step, decay_steps)
        completed_fraction = float(global_step) / float(decay_steps)
        fraction = 2.0 * num_periods * completed_fraction
        return 0.5 * (1.0 + math.cos(math.pi * fraction))
    return cosine_decay_fn


def tf_restart_decay_fn(decay_steps, num_periods=1):
    def restart_decay_fn(global_step):
        global_step = min(global_step, decay_steps)
        num = math.fmod(num_periods * float(global_step), decay_steps)
        fraction = num / float(decay_steps)
        return 0.5 * (1.0 + math.cos(math.pi * fraction))
    return restart_decay_fn


TF_DECAYS = {None: None, "ld": tf_linear_decay_fn, "cd": tf_cosine_decay_fn, "rd": tf_restart_decay_fn}


class TFSignOptimizer:
    """TF contrib's PowerSign (kind "powersign", base) or AddSign (kind "addsign", alpha)."""

    def __init__(self, variables, kind, learning_rate, beta, base_or_alpha, sign_decay_fn):
        self.variables, self.kind, self.lr, self.beta = variables, kind, learning_rate, beta
        self.base_or_alpha, self.sign_decay_fn = base_or_alpha, sign_decay_fn
        self.m = [torch.zeros_like(v) for v in variables]
        self.global_step = 0

    def apply_gradients(self, grads):
        sign_decay = None if self.sign_decay_fn is None else self.sign_decay_fn(self.global_step)
        for var, m, grad in zip(self.variables, self.m, grads):
            m.copy_(self.beta * m + (1.0 - self.beta) * grad)
            sign_gm = torch.sign(grad) * torch.sign(m)
            if self.kind == "powersign":
                if sign_decay is not None:
                    sign_gm = sign_decay * sign_gm
                multiplier = torch.exp(math.log(self.base_or_alpha) * sign_gm)
            else:
                multiplier = self.base_or_alpha + (sign_gm if sign_decay is None else sign_decay * sign_gm)
            var.sub_(self.lr * multiplier * grad)
        self.global_step += 1


def shapes_and_grads(steps: int):
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (3,), (2, 2, 2), (1,)]
    params = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    # grads with sign changes and exact zeros, so sign(m) flips and is sometimes 0
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64).mul_(torch.rand(s, generator=gen) > 0.1)
              for s in shapes] for _ in range(steps)]
    return params, grads


def make(kind, params, alpha, decay, **kwargs):
    if kind == "powersign":
        return PowerSign(params, base=alpha, sign_decay=decay, total_steps=T, **kwargs)
    return AddSign(params, alpha=alpha, sign_decay=decay, total_steps=T, **kwargs)


@pytest.mark.parametrize("decay", DECAYS, ids=str)
@pytest.mark.parametrize("kind, alpha", [("powersign", math.e), ("powersign", 2.0), ("addsign", 1.0),
                                         ("addsign", 0.5)])
def test_named_optimizer_is_tf_contrib_step_for_step(kind, alpha, decay):
    init, grads = shapes_and_grads(T + 20)  # past T: the decays stay clipped
    ours = [nn.Parameter(p.clone()) for p in init]
    ref = [p.clone() for p in init]
    opt = make(kind, ours, alpha, decay, lr=0.05, beta=0.8)
    tf = TFSignOptimizer(ref, kind, 0.05, 0.8, alpha, TF_DECAYS[decay] and TF_DECAYS[decay](T))
    for step_grads in grads:
        for p, g in zip(ours, step_grads):
            p.grad = g.clone()
        opt.step()
        tf.apply_gradients(step_grads)
        for p, q in zip(ours, ref):
            torch.testing.assert_close(p.detach(), q, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind, alpha", [("powersign", math.e), ("addsign", 1.0)])
def test_weight_decay_and_maximize(kind, alpha):
    """w <- w (1 - lr wd) - lr * update(-g): decoupled decay, the rule ascending."""
    init, grads = shapes_and_grads(30)
    ours = [nn.Parameter(p.clone()) for p in init]
    ref = [p.clone() for p in init]
    opt = make(kind, ours, alpha, "cd", lr=0.05, weight_decay=0.1, maximize=True)
    tf = TFSignOptimizer(ref, kind, 0.05, 0.9, alpha, tf_cosine_decay_fn(T))
    for step_grads in grads:
        for p, g in zip(ours, step_grads):
            p.grad = g.clone()
        opt.step()
        for q in ref:
            q.mul_(1 - 0.05 * 0.1)
        tf.apply_gradients([-g for g in step_grads])
        for p, q in zip(ours, ref):
            torch.testing.assert_close(p.detach(), q, rtol=1e-10, atol=1e-12)


def test_the_first_step_takes_the_decay_at_global_step_zero():
    """ld = cd = rd = 1 at the first step (global_step 0); rd never restarts within the run."""
    for decay in ("ld", "cd", "rd"):
        w = nn.Parameter(torch.zeros(1, dtype=torch.float64))
        opt = AddSign([w], lr=1.0, sign_decay=decay, total_steps=T)
        deltas = []
        for _ in range(T):
            before = float(w.detach())
            w.grad = torch.ones(1, dtype=torch.float64)  # sign(g) sign(m) = 1: update = 1 + f(s)
            opt.step()
            deltas.append(before - float(w.detach()) - 1.0)
        assert deltas[0] == pytest.approx(1.0, abs=1e-15)
        expected = [TF_DECAYS[decay](T)(s) for s in range(T)]
        assert deltas == pytest.approx(expected, abs=1e-12)
        assert deltas[-1] < 0.05 or decay == "ld" and deltas[-1] == pytest.approx(1 / T)


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
