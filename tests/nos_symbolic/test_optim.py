"""SymbolicOptimizer: a real torch optimizer that takes the steps of torch's SGD, Adam and AdamW for
the rules that are SGD and Adam, runs every rule in place, keeps its state in `optimizer.state`
(every edit honoured), checks its hyperparameters and refuses other optimizers' state dicts.
Checkpoints, schedulers and the other torch-style checks over many rules are in test_conformance.py."""
import collections
import hashlib
import io
import re

import pytest
import torch
from torch import nn

import nos_symbolic.optim_flat as optim_flat
from nos_symbolic import NosError, parse_rule
from nos_symbolic.compile import InplaceRunner
from nos_symbolic import named as optim_named
from nos_symbolic.optim import SymbolicOptimizer

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}

# A spread of rules: every operand, function and schedule, stochastic and wild ones among them.
RULES = [
    "g", "m / sqrt(v)", "adam", "rmsprop", "powersign", "addsign-ld", "powersign-cd", "addsign-rd",
    "2^(sign(g) * sign(m)) * g", "g + noise", "drop(g, 0.3)", "drop(g, 0.1) - drop(g, 0.1)",
    "anneal * g", "y / v + 1e-3 * w", "clip(g3, 1e-3) + log(v) * 1e-4", "g^1.5 - sqrt(g2) * ld",
    "exp(exp(exp(g)))", "1", "drop(2, 0.5)", "neg(m) ^ g", "(g + m + v + 1) * (g * m * v * 2)",
    "rd(2) * cd(0.25) * g", "sign(m) / abs(y)",
]


def mlp(dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4), nn.Tanh(),
                         nn.Linear(4, 3)).to(dtype)


def data(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(32, 8, generator=gen, dtype=dtype), torch.randn(32, 3, generator=gen, dtype=dtype)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    opt.step()


def assert_same_params(a: nn.Module, b: nn.Module, tol: float) -> None:
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pb, pa, rtol=tol, atol=tol * float(pa.detach().abs().max()))


def test_rule_g_is_sgd():
    x, y = data()
    a, b = mlp(), mlp()
    sgd, ours = torch.optim.SGD(a.parameters(), lr=0.05), SymbolicOptimizer(b.parameters(), "g", lr=0.05)
    for _ in range(50):
        train_step(a, sgd, x, y)
        train_step(b, ours, x, y)
        assert_same_params(a, b, 1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("rule", ["m / sqrt(v)", "adam"])
def test_adam_rule_is_torch_adam_step_for_step(rule, dtype):
    x, y = data(dtype)
    a, b = mlp(dtype), mlp(dtype)
    adam = torch.optim.Adam(a.parameters(), lr=1e-2, eps=1e-8)
    ours = SymbolicOptimizer(b.parameters(), rule, lr=1e-2)
    for _ in range(100):
        train_step(a, adam, x, y)
        train_step(b, ours, x, y)
        assert_same_params(a, b, TOLERANCE[dtype])


def test_only_the_averages_the_rule_reads_are_kept():
    model = mlp()
    x, y = data()
    for rule, kept in [("powersign", {"m"}), ("m / sqrt(v)", {"m", "v"}), ("g", set()),
                       ("y * g", {"y"})]:
        opt = SymbolicOptimizer(model.parameters(), rule)
        train_step(model, opt, x, y)
        for p in model.parameters():
            state = opt.state[p]
            assert set(state) == kept | {"step"}
            assert int(state["step"]) == 1
            assert all(state[k].shape == p.shape for k in kept)


@pytest.mark.parametrize("rule", RULES)
def test_inplace_runner_gives_the_programs_values_bit_for_bit(rule):
    program = parse_rule(rule).program
    gen = torch.Generator().manual_seed(0)
    values = {k: torch.randn(300, generator=gen, dtype=torch.float64) * 10.0 ** torch.randint(
        -4, 3, (300,), generator=gen) for k in "gmyw"}
    values["v"] = values["g"].square() + 1e-6
    copies = {k: t.clone() for k, t in values.items()}

    class Env:
        t, T = 7.0, 20.0

        def tensor(self, name):
            return values[name]

        def randn(self, key):
            return torch.randn(300, generator=self.gen(key), dtype=torch.float64)

        def rand(self, key):
            return torch.rand(300, generator=self.gen(key), dtype=torch.float64)

        @staticmethod
        def gen(key):
            return torch.Generator().manual_seed(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))

    expected = program(Env())
    runner = InplaceRunner(program, torch.float64, "cpu", 20.0)
    buffers = [torch.empty(300, dtype=torch.float64) for _ in range(runner.n_buffers)]
    for _ in range(2):  # buffers hold the last call's values
        a, b = runner(Env(), buffers)
        got = a if b is None else a * b
        torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)
    assert all(torch.equal(values[k], copies[k]) for k in values), "an operand was overwritten"


@pytest.mark.parametrize("rule", ["m / sqrt(v)", "powersign-cd", "g + noise", "drop(g, 0.3) * y + 1e-3*w",
                                  "anneal * g", "1"])
def test_chunked_buckets_take_the_same_steps(rule, monkeypatch):
    shapes = [(5, 3), (3,), (20,), (4, 4), (2,), (3, 2)]
    runs = []
    for chunk in (1 << 20, 7):
        monkeypatch.setattr(optim_flat, "CHUNK", chunk)
        params = [nn.Parameter(torch.randn(s, generator=torch.Generator().manual_seed(i)))
                  for i, s in enumerate(shapes)]
        params[-1] = nn.Parameter(params[-1].detach().t())  # not contiguous: never split
        opt = SymbolicOptimizer(params, rule, lr=0.01, total_steps=10)
        gen = torch.Generator().manual_seed(5)
        for _ in range(4):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
        runs.append(params)
    assert len(optim_flat.layout(runs[1], 7)) > 4
    for a, b in zip(*runs):
        assert torch.equal(a.nan_to_num(), b.nan_to_num())


def test_lr_schedulers_closures_and_groups():
    w1, w2 = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2))
    opt = SymbolicOptimizer([w1], "g", lr=1.0)
    opt.add_param_group({"params": [w2], "lr": 0.5})
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    calls = []

    def closure():
        calls.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = w1.sum() + w2.sum()  # g = 1 everywhere
        loss.backward()
        return loss

    expected1, expected2 = 0.0, 0.0
    for step in range(5):
        loss = opt.step(closure)
        assert isinstance(loss, torch.Tensor)
        expected1 -= 1.0 * 0.1 ** (step // 2)
        expected2 -= 0.5 * 0.1 ** (step // 2)
        scheduler.step()
        torch.testing.assert_close(w1.detach(), torch.full((3,), expected1))
        torch.testing.assert_close(w2.detach(), torch.full((2,), expected2))
    assert calls == [True] * 5


def test_parameters_without_gradient_are_left_alone():
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(3))
    opt = SymbolicOptimizer([a, b], "m / sqrt(v)", lr=0.1)
    for step in range(4):
        a.grad = torch.ones(2)
        b.grad = torch.ones(3) if step % 2 == 0 else None
        opt.step()
    assert int(opt.state[a]["step"]) == 4 and int(opt.state[b]["step"]) == 2
    torch.testing.assert_close(a.detach(), torch.full((2,), 1 - 0.4))  # Adam's step is lr for g = 1
    torch.testing.assert_close(b.detach(), torch.full((3,), 1 - 0.2))


def test_scheduled_rule_needs_total_steps():
    with pytest.raises(NosError, match="total_steps"):
        SymbolicOptimizer([nn.Parameter(torch.ones(1))], "powersign-cd")
    with pytest.raises(NosError, match="total_steps"):
        SymbolicOptimizer([nn.Parameter(torch.ones(1))], "g", total_steps=0)


@pytest.mark.parametrize("kwargs", [{"lr": -1.0}, {"betas": (0.9, 0.999)}, {"betas": (0.9, 1.0, 0.9)}])
def test_bad_hyperparameters(kwargs):
    with pytest.raises(NosError):
        SymbolicOptimizer([nn.Parameter(torch.ones(1))], "g", **kwargs)


def test_sparse_gradients_and_complex_parameters_are_refused():
    emb = nn.Embedding(5, 3, sparse=True)
    opt = SymbolicOptimizer(emb.parameters(), "g")
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(NosError, match="sparse"):
        opt.step()
    with pytest.raises(NosError, match="complex"):
        SymbolicOptimizer([nn.Parameter(torch.ones(2, dtype=torch.complex64))], "g")


def test_wild_rule_makes_weights_nonfinite_without_raising():
    model = mlp(torch.float32)
    opt = SymbolicOptimizer(model.parameters(), "exp(exp(exp(g)))", lr=1e30)
    x, y = data(torch.float32)
    for _ in range(3):
        train_step(model, opt, x, y)
    assert not all(torch.isfinite(p).all() for p in model.parameters())


def test_compiled_update_takes_the_eager_steps():
    try:
        torch.compile(lambda t: t + 1)(torch.ones(2))
    except Exception as err:  # no C++ toolchain for inductor
        pytest.skip(f"torch.compile unavailable: {err}")
    runs = []
    for use_compile in (False, True):
        torch.manual_seed(0)
        params = [nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(3))]
        opt = SymbolicOptimizer(params, "powersign-cd + noise", lr=0.01, total_steps=10,
                                compile=use_compile)
        gen = torch.Generator().manual_seed(1)
        for _ in range(3):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
        runs.append(params)
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# --- optimizer.state is the state -------------------------------------------------------------

def adam_pair(dtype=torch.float64, **kwargs):
    a, b = mlp(dtype), mlp(dtype)
    return a, torch.optim.Adam(a.parameters(), lr=1e-2, eps=1e-8, **kwargs), b, \
        SymbolicOptimizer(b.parameters(), "m / sqrt(v)", lr=1e-2)


@pytest.mark.parametrize("edit", ["clear", "new state", "empty dict", "replace m", "update m", "replace step",
                                  "in-place step"])
def test_every_edit_of_the_state_is_honoured(edit):
    """Edited alike, torch's Adam and the Adam rule keep taking the same steps."""
    x, y = data()
    a, adam, b, ours = adam_pair()
    for _ in range(3):
        train_step(a, adam, x, y)
        train_step(b, ours, x, y)
    for (pa, sa), (pb, sb) in zip(((p, adam.state) for p in a.parameters()),
                                  ((p, ours.state) for p in b.parameters())):
        if edit in ("clear", "new state"):
            continue
        if edit == "empty dict":
            sa[pa], sb[pb] = {}, {}
        elif edit in ("replace m", "update m"):
            sa[pa]["exp_avg"] = torch.ones_like(pa) * (1 - 0.9 ** 3)  # so that m_hat = 1
            if edit == "replace m":
                sb[pb]["m"] = torch.ones_like(pb)
            else:
                sb[pb].update(m=torch.ones_like(pb))
        elif edit == "replace step":
            sa[pa]["step"], sb[pb]["step"] = torch.tensor(1.0), torch.tensor(1.0)
        else:
            sa[pa]["step"].fill_(1.0)
            sb[pb]["step"].fill_(1.0)
    if edit == "clear":
        adam.state.clear()
        ours.state.clear()
    if edit == "new state":
        adam.state, ours.state = collections.defaultdict(dict), collections.defaultdict(dict)
    if edit in ("replace step", "in-place step"):  # averages now read as corrected at t = 1
        for pa, pb in zip(a.parameters(), b.parameters()):
            adam.state[pa]["exp_avg"] = ours.state[pb]["m"] * (1 - 0.9)
            adam.state[pa]["exp_avg_sq"] = ours.state[pb]["v"] * (1 - 0.999)
    for _ in range(3):
        train_step(a, adam, x, y)
        train_step(b, ours, x, y)
        assert_same_params(a, b, 1e-10)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert int(ours.state[pb]["step"]) == int(adam.state[pa]["step"])
    buffer = io.BytesIO()
    torch.save(ours.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    assert len(saved["state"]) == len(list(b.parameters()))
    for index, pb in enumerate(b.parameters()):
        assert torch.equal(saved["state"][index]["m"], ours.state[pb]["m"])


# --- parameter groups and hyperparameters -----------------------------------------------------

@pytest.mark.parametrize("bad", [{"lr": -1.0}, {"betas": (0.9, 2.0, 0.9)}, {"weight_decay": -0.1},
                                 {"maximize": "yes"}, {"total_steps": 0}, {"rule": "g"},
                                 {"lr": torch.tensor([0.1, 0.2])}])
def test_a_refused_param_group_changes_nothing(bad):
    w1, w2 = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2))
    opt = SymbolicOptimizer([w1], "powersign", lr=0.1)
    with pytest.raises(NosError):
        opt.add_param_group({"params": [w2], **bad})
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"] == [w1]
    w1.grad, w2.grad = torch.ones(3), torch.ones(2)
    opt.step()
    assert torch.equal(w2.detach(), torch.ones(2)) and w2 not in opt.state


def test_zero_size_parameters():
    empty, full = nn.Parameter(torch.zeros(0, 3)), nn.Parameter(torch.ones(2))
    opt = SymbolicOptimizer([{"params": [empty]}, {"params": [full, nn.Parameter(torch.zeros(0))]}],
                            "m / sqrt(v) + noise", lr=0.1)
    for p in opt.param_groups[0]["params"] + opt.param_groups[1]["params"]:
        p.grad = torch.ones_like(p)
    opt.step()
    opt.step()
    assert opt.state[empty]["m"].shape == (0, 3) and int(opt.state[empty]["step"]) == 2
    assert torch.all(full < 1)


def test_non_contiguous_gradients_of_any_size():
    n = 1100  # n * n > 2^20 elements: the parameter is split into chunks
    runs = []
    for transposed in (False, True):
        w = nn.Parameter(torch.zeros(n, n))
        opt = SymbolicOptimizer([w, nn.Parameter(torch.zeros(3, 2))], "m / sqrt(v) + 1e-3 * w", lr=0.1)
        gen = torch.Generator().manual_seed(0)
        for _ in range(2):
            g = torch.randn(n, n, generator=gen)
            w.grad = g.t().contiguous().t() if transposed else g.clone()
            opt.param_groups[0]["params"][1].grad = torch.randn(2, 3, generator=gen).t()
            assert w.grad.is_contiguous() != transposed
            opt.step()
        runs.append(w.detach().clone())
    assert torch.equal(*runs)


def test_tensor_lr():
    w = nn.Parameter(torch.zeros(3))
    opt = SymbolicOptimizer([w], "g", lr=torch.tensor(0.5))
    w.grad = torch.ones(3)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((3,), -0.5))
    opt.param_groups[0]["lr"] = torch.tensor([0.1, 0.2])
    with pytest.raises(NosError, match="Tensor lr must be 1-element"):
        opt.step()
    with pytest.raises(NosError, match="Tensor lr must be 1-element"):
        SymbolicOptimizer([nn.Parameter(torch.zeros(3))], "g", lr=torch.tensor([0.1, 0.2]))


@pytest.mark.parametrize("scheduler", ["OneCycleLR", "CyclicLR"])
def test_momentum_cycling_schedulers_keep_the_adam_rule_adam(scheduler):
    x, y = data()
    a, adam, b, ours = adam_pair()

    def make(opt):
        if scheduler == "OneCycleLR":
            return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=60)
        return torch.optim.lr_scheduler.CyclicLR(opt, base_lr=1e-3, max_lr=0.05, step_size_up=7)

    sched_a, sched_b = make(adam), make(ours)
    betas = set()
    for _ in range(60):
        train_step(a, adam, x, y)
        train_step(b, ours, x, y)
        sched_a.step()
        sched_b.step()
        betas.add(ours.param_groups[0]["betas"][0])
        assert_same_params(a, b, 1e-10)
    assert len(betas) > 10  # beta1 did cycle


def test_weight_decay_is_adamw_and_maximize_is_adams():
    x, y = data()
    for torch_opt, kwargs in [(torch.optim.AdamW, {"weight_decay": 0.1}), (torch.optim.Adam, {"maximize": True})]:
        a, b = mlp(), mlp()
        theirs = torch_opt(a.parameters(), lr=1e-2, eps=1e-8, **kwargs)
        ours = SymbolicOptimizer(b.parameters(), "m / sqrt(v)", lr=1e-2, **kwargs)
        for _ in range(30):
            train_step(a, theirs, x, y)
            train_step(b, ours, x, y)
            assert_same_params(a, b, 1e-10)


def test_weight_decay_per_group():
    w1, w2 = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    opt = SymbolicOptimizer([{"params": [w1], "weight_decay": 0.5}, {"params": [w2]}], "g", lr=0.1)
    w1.grad, w2.grad = torch.zeros(2), torch.zeros(2)
    opt.step()
    torch.testing.assert_close(w1.detach(), torch.full((2,), 1 - 0.1 * 0.5))
    assert torch.equal(w2.detach(), torch.ones(2))


# --- state dicts of other optimizers -------------------------------------------------------

def stepped(opt_factory, model=None):
    model = model or mlp()
    opt = opt_factory(model.parameters())
    x, y = data()
    train_step(model, opt, x, y)
    return opt


@pytest.mark.parametrize("other, named", [
    (lambda ps: SymbolicOptimizer(ps, "powersign"), "'powersign'"),
    (lambda ps: optim_named.AddSign(ps), "'(1 + 1 * sign(g) * sign(m)) * g'"),
    (lambda ps: torch.optim.Adam(ps), "Adam"),
    (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), "SGD"),
])
def test_another_rules_or_optimizers_state_is_refused(other, named):
    theirs = stepped(other).state_dict()
    ours = stepped(lambda ps: SymbolicOptimizer(ps, "m / sqrt(v)"))
    before = {k: v.clone() for k, v in ours.state_dict()["state"][0].items()}
    with pytest.raises(NosError, match=re.escape(named)) as err:
        ours.load_state_dict(theirs)
    assert "'m / sqrt(v)'" in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict()["state"][0].items())


def test_the_rule_and_total_steps_are_saved_and_a_respelling_loads():
    opt = stepped(lambda ps: SymbolicOptimizer(ps, "powersign-cd", total_steps=50, seed=7))
    group = opt.state_dict()["param_groups"][0]
    assert (group["rule"], group["total_steps"], group["seed"]) == ("powersign-cd", 50, 7)
    same = stepped(lambda ps: SymbolicOptimizer(ps, "exp(cd * sign(g) * sign(m)) * g", total_steps=9))
    same.load_state_dict(opt.state_dict())
    assert same.param_groups[0]["total_steps"] == 50


def test_adams_averages_load_explicitly():
    x, y = data()
    a, adam, b, ours = adam_pair()
    for _ in range(5):
        train_step(a, adam, x, y)
    b.load_state_dict(a.state_dict())
    ours.load_adam_state_dict(adam.state_dict())
    for _ in range(5):
        train_step(a, adam, x, y)
        train_step(b, ours, x, y)
        assert_same_params(a, b, 1e-10)
    with pytest.raises(NosError, match="y"):
        stepped(lambda ps: SymbolicOptimizer(ps, "y * g")).load_adam_state_dict(adam.state_dict())
