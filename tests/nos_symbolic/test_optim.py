"""SymbolicOptimizer: a real torch optimizer that takes the steps of torch's SGD and Adam for the
rules that are SGD and Adam, checkpoints bit for bit, and runs every rule in place."""
import hashlib
import io

import pytest
import torch
from torch import nn

import nos_symbolic.optim as optim
from nos_symbolic import NosError, parse_rule
from nos_symbolic.compile import InplaceRunner
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
        monkeypatch.setattr(optim, "CHUNK", chunk)
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
    assert len(optim._layout(runs[1], 7)) > 4
    for a, b in zip(*runs):
        assert torch.equal(a.nan_to_num(), b.nan_to_num())


@pytest.mark.parametrize("rule", ["powersign-cd", "m / sqrt(v)", "g + noise", "drop(g, 0.3)",
                                  "y / v + 1e-3 * w", "anneal * m"])
def test_checkpoint_continues_bit_for_bit(rule):
    x, y = data()

    def make(seed: int = 0):
        model = mlp(seed=seed)
        return model, SymbolicOptimizer(model.parameters(), rule, lr=1e-2, total_steps=40, seed=3)

    model, opt = make()
    for _ in range(5):
        train_step(model, opt, x, y)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    for _ in range(5):
        train_step(model, opt, x, y)

    buffer.seek(0)
    saved = torch.load(buffer)
    fresh_model, fresh_opt = make(seed=123)
    fresh_model.load_state_dict(saved["model"])
    fresh_opt.load_state_dict(saved["opt"])
    for _ in range(5):
        train_step(fresh_model, fresh_opt, x, y)
    for a, b in zip(model.parameters(), fresh_model.parameters()):
        assert torch.equal(a, b)
    for p, q in zip(model.parameters(), fresh_model.parameters()):
        assert set(opt.state[p]) == set(fresh_opt.state[q])
        for key in opt.state[p]:
            assert torch.equal(opt.state[p][key], fresh_opt.state[q][key])


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
