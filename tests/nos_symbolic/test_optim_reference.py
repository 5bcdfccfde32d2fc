"""The default SymbolicOptimizer step (flat buffers, optim_flat.py) takes the steps of the readable
per-parameter reference (optim_reference.py) for every named rule and a spread of DSL rules, with
parameter groups, weight decay, maximize, lr = 0, a skipped gradient, betas changed mid-run and
chunked buckets; and the comparison fails when the reference's math is broken."""
import pytest
import torch

import nos_symbolic.optim_flat as optim_flat
import nos_symbolic.optim_reference as optim_reference
from nos_symbolic.optim import SymbolicOptimizer
from nos_symbolic.optim_reference import ReferenceSymbolicOptimizer, corrected_average
from nos_symbolic.registry import DECAYS, NAMED_RULES, named_rule_text

NAMED = sorted({named_rule_text(name, decay) for name in NAMED_RULES for decay in (None, *DECAYS)})
# Every operand (noise, anneal, drop draws among them), function and schedule; wild ones too.
DSL = ["m / sqrt(v)", "adam * rd", "rmsprop", "g + noise", "anneal * g + noise * m", "drop(g, 0.3)",
       "drop(g, 0.1) - drop(m, 0.5) * anneal", "y / v + 1e-3 * w", "sign(m) / abs(y)", "clip(g3, 1e-3) * ld",
       "rd(2) * cd(0.25) * g", "keep(g, m) * cd", "1", "drop(2, 0.5)", "neg(m) ^ g", "exp(exp(exp(g)))",
       "(g + v + 1) * (m * 2)"]
# (Not "(g + m + v + 1) * (g * m * v * 2)": where a * b overflows, the default step's fused
# w.addcmul_(a, b, value=-lr) may stay finite, as SymbolicOptimizer's docstring says.)
# Not bit for bit: the default step folds each bias correction into two weights (hat_t = a hat_{t-1}
# + c g^k, a lerp for m) and fuses a final product into w.addcmul_, where the reference undoes and
# redoes the correction and computes w - lr * rule(...): equal sums rounded differently, an ulp or
# two a step, which the gradients of the next steps carry and rules such as y / v amplify (at most
# 2.5e-12 relative in float64, 3e-6 in float32 over these runs). A dropped correction or a wrong draw
# is off by far more (see the last test). (rtol, atol):
TOLERANCE = {torch.float64: (1e-10, 1e-12), torch.float32: (1e-5, 1e-6)}
STEPS = 6
SHAPES = [(3, 4), (5,), (0,), (2, 3), (7,), (1,)]


def run(cls: type, rule: str, dtype: torch.dtype = torch.float64) -> list:
    """Weights and state after each step of a run with three groups, which exercises per-group
    hyperparameters, a parameter with no gradient at one step and betas and lr changed mid-run."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(shape, generator=gen, dtype=dtype, requires_grad=True) for shape in SHAPES]
    targets = [torch.randn(shape, generator=gen, dtype=dtype) for shape in SHAPES]
    groups = [{"params": params[:3]},
              {"params": params[3:5], "lr": 0.02, "betas": (0.5, 0.9, 0.8), "weight_decay": 0.1,
               "maximize": True, "seed": 7},
              {"params": params[5:], "lr": 0.0}]
    opt = cls(groups, rule, lr=0.05, total_steps=STEPS, seed=3)
    history = []
    for step in range(STEPS):
        opt.zero_grad()
        sum(((1 + i) * (p - y) ** 2).sum() + p.sum() for i, (p, y) in enumerate(zip(params, targets))).backward()
        if step == 1:
            params[1].grad = None  # its step count falls behind the others'
        if step == 3:  # as a momentum-cycling scheduler does
            opt.param_groups[0].update(betas=(0.8, 0.99, 0.95), lr=0.03)
        opt.step()
        history.append([(p.detach().clone(), _state(opt, p, group)) for group in opt.param_groups
                        for p in group["params"]])
    return history


def _state(opt: torch.optim.Optimizer, p: torch.Tensor, group: dict) -> dict:
    """p's state, copied; betas as the averages' (absent in the default step's state: the group's)."""
    entry = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in opt.state.get(p, {}).items()}
    if any(name in entry for name in optim_flat.AVERAGES):
        entry["betas"] = tuple(entry.get("betas", group["betas"]))
    return entry


def assert_same_runs(fast: list, reference: list, dtype: torch.dtype) -> None:
    rtol, atol = TOLERANCE[dtype]
    for step, (a, b) in enumerate(zip(fast, reference)):
        for i, ((wa, sa), (wb, sb)) in enumerate(zip(a, b)):
            where = f"step {step}, parameter {i}"
            torch.testing.assert_close(wb, wa, rtol=rtol, atol=atol, equal_nan=True, msg=lambda m: f"{where} w: {m}")
            assert sa.keys() == sb.keys(), where
            for key in sa:
                if isinstance(sa[key], torch.Tensor):
                    torch.testing.assert_close(sb[key], sa[key], rtol=rtol, atol=atol, equal_nan=True,
                                               msg=lambda m: f"{where} {key}: {m}")
                else:
                    assert sb[key] == sa[key], f"{where} {key}"


@pytest.mark.parametrize("rule", NAMED + DSL)
def test_default_step_is_the_reference_step(rule):
    assert_same_runs(run(SymbolicOptimizer, rule), run(ReferenceSymbolicOptimizer, rule), torch.float64)


@pytest.mark.parametrize("rule", ["adam", "powersign-cd", "drop(g, 0.3) * sign(y) + 1e-3 * w + anneal"])
def test_chunked_float32_step_is_the_reference_step(rule, monkeypatch):
    monkeypatch.setattr(optim_flat, "CHUNK", 5)  # parameters split across chunks, one sliced
    assert_same_runs(run(SymbolicOptimizer, rule, torch.float32), run(ReferenceSymbolicOptimizer, rule, torch.float32),
                     torch.float32)


def test_reference_adam_rule_is_torch_adamw():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    adamw = torch.optim.AdamW([a], lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.1)
    ours = ReferenceSymbolicOptimizer([b], "m / sqrt(v)", lr=0.01, betas=(0.8, 0.99, 0.9), weight_decay=0.1)
    for _ in range(5):
        for p, opt in ((a, adamw), (b, ours)):
            opt.zero_grad()
            (p ** 3).sum().backward()
            opt.step()
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


def _uncorrected(hat, x, b, b_before, t):
    return b * hat + (1.0 - b) * x


@pytest.mark.parametrize("rule, name, broken", [
    ("m / sqrt(v)", "corrected_average", _uncorrected),
    ("powersign-cd", "corrected_average", lambda hat, x, b, b_before, t: corrected_average(hat, x, b, b, t)),
    ("g + noise", "stream_seed", lambda seed, index, t: optim_flat.stream_seed(seed, index + 1, t)),
    ("anneal * g", "stream_seed", lambda seed, index, t: optim_flat.stream_seed(seed, index, t - 1)),
])
def test_a_broken_reference_is_caught(rule, name, broken, monkeypatch):
    """The comparison can fail: without the bias correction, with the betas of the step before
    ignored, or with the draws of another parameter or step."""
    fast = run(SymbolicOptimizer, rule)
    monkeypatch.setattr(optim_reference, name, broken)
    with pytest.raises(AssertionError):
        assert_same_runs(fast, run(ReferenceSymbolicOptimizer, rule), torch.float64)
