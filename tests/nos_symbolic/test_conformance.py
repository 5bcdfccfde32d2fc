"""Conformance: SymbolicOptimizer, PowerSign and AddSign behave as torch's optimizers do in the code
that uses them.

The optimizer-agnostic checks of PyTorch's test/test_optim.py (state_dict round trip and continue,
a fresh optimizer loading it, weights_only loading, deepcopy, param_group edits, closures,
zero_grad, steps without gradients, hooks, dtype and device changes), every torch.optim.lr_scheduler
that makes sense, SWA's AveragedModel, CPU autocast with GradScaler, torch.distributed.checkpoint,
ZeroRedundancyOptimizer and a Lightning fit -> checkpoint -> resume: one body per check, run over
every optimizer of `MAKERS` and every device of `CONFIGS` (cuda skipped without a GPU).
"""
from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as S

from _conformance_cases import CONFIGS, MAKERS, T, data, loss_of, model, same_state, same_tensors, train_step

OPTIMIZERS = list(MAKERS)


def build(name, config, seed=0, **overrides):
    device, use_compile = config
    net = model(device, seed)
    return net, MAKERS[name](net.parameters(), compile=use_compile, **overrides)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_round_trip_continues_bit_for_bit(name, config):
    x, y = data(config[0])
    net, opt = build(name, config)
    for _ in range(3):
        train_step(net, opt, x, y)
    buffer = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buffer)
    for _ in range(3):
        train_step(net, opt, x, y)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # plain tensors, numbers and strings only
    fresh, fresh_opt = build(name, config, seed=9)
    fresh.load_state_dict(saved["model"])
    fresh_opt.load_state_dict(saved["opt"])
    for _ in range(3):
        train_step(fresh, fresh_opt, x, y)
    assert same_tensors(net.parameters(), fresh.parameters())
    assert same_state(opt, fresh_opt)
    assert set(opt.state_dict()) == {"state", "param_groups"}


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_deepcopy_continues_alike(name, config):
    x, y = data(config[0])
    net, opt = build(name, config)
    train_step(net, opt, x, y)
    twin = copy.deepcopy({"net": net, "opt": opt})
    for _ in range(3):
        train_step(net, opt, x, y)
        train_step(twin["net"], twin["opt"], x, y)
    assert same_tensors(net.parameters(), twin["net"].parameters())
    assert repr(opt).startswith(type(opt).__name__) and "rule" in repr(opt)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_steps_without_gradients_do_nothing(name, config):
    x, y = data(config[0])
    net, opt = build(name, config)
    opt.step()  # no gradient yet
    assert not opt.state
    train_step(net, opt, x, y)
    first, second = list(net[0].parameters()), list(net[2].parameters())
    before = [p.detach().clone() for p in net.parameters()]
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    loss_of(net[2], torch.tanh(net[0](x)).detach(), y).backward()  # no gradient for the first layer
    opt.step()
    assert same_tensors(first, before[:2])
    assert not same_tensors(second, before[2:])
    assert [int(opt.state[p]["step"]) for p in net.parameters()] == [1, 1, 2, 2]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_closure_and_hooks(name, config):
    x, y = data(config[0])
    a, opt_a = build(name, config)
    b, opt_b = build(name, config)
    calls = []
    opt_b.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    opt_b.register_step_post_hook(lambda opt, args, kwargs: calls.append("post"))
    opt_b.register_state_dict_post_hook(lambda opt, sd: calls.append("state_dict") or sd)

    def closure():
        assert torch.is_grad_enabled()
        opt_b.zero_grad()
        loss = loss_of(b, x, y)
        loss.backward()
        return loss

    for _ in range(3):
        train_step(a, opt_a, x, y)
        loss = opt_b.step(closure)
    assert isinstance(loss, torch.Tensor)
    assert same_tensors(a.parameters(), b.parameters())
    opt_b.state_dict()
    assert calls == ["pre", "post"] * 3 + ["state_dict"]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_param_group_edits_take_effect_at_the_next_step(name, config):
    x, y = data(config[0])
    net, opt = build(name, config)
    train_step(net, opt, x, y)
    for group in opt.param_groups:
        group["lr"] = 0.0
    before = [p.detach().clone() for p in net.parameters()]
    train_step(net, opt, x, y)
    assert same_tensors(net.parameters(), before)
    # a 1-element tensor lr takes the steps of the same float lr
    a, opt_a = build(name, config, lr=0.01)
    b, opt_b = build(name, config, lr=torch.tensor(0.01))
    for _ in range(2):
        train_step(a, opt_a, x, y)
        train_step(b, opt_b, x, y)
    assert same_tensors(a.parameters(), b.parameters())
    # a new group is stepped with its own lr
    extra = nn.Parameter(torch.ones(3, device=config[0]))
    opt_a.add_param_group({"params": [extra], "lr": 0.1, "weight_decay": 0.0})
    extra.grad = torch.ones(3, device=config[0])
    opt_a.step()
    assert not torch.equal(extra.detach(), torch.ones(3, device=config[0]))


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("name", ["adam", "noise", "PowerSign"])
def test_the_state_follows_dtype_and_device(name, config):
    device = config[0]
    x, y = data(device)
    net, opt = build(name, config)
    train_step(net, opt, x, y)
    ref, ref_opt = build(name, config, seed=5)
    ref.load_state_dict(net.state_dict())
    ref_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    net.double()
    ref.double()
    ref_opt.load_state_dict(ref_opt.state_dict())  # loading casts the state to the parameters
    x64, y64 = x.double(), y.double()
    train_step(net, opt, x64, y64)
    train_step(ref, ref_opt, x64, y64)
    assert all(t.dtype == torch.float64 for s in opt.state.values() for k, t in s.items() if k != "step")
    assert same_tensors(net.parameters(), ref.parameters())
    if device == "cuda":
        net.cpu()
        train_step(net, opt, x64.cpu(), y64.cpu())
        assert all(t.device.type == "cpu" for s in opt.state.values() for t in s.values())


# --- learning-rate schedulers -------------------------------------------------------------

SCHEDULERS = {
    "LambdaLR": lambda o: S.LambdaLR(o, lambda t: 0.9 ** t),
    "MultiplicativeLR": lambda o: S.MultiplicativeLR(o, lambda t: 0.95),
    "StepLR": lambda o: S.StepLR(o, step_size=2, gamma=0.5),
    "MultiStepLR": lambda o: S.MultiStepLR(o, milestones=[2, 5], gamma=0.3),
    "ConstantLR": lambda o: S.ConstantLR(o, factor=0.5, total_iters=3),
    "LinearLR": lambda o: S.LinearLR(o, start_factor=0.2, total_iters=4),
    "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.8),
    "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=6, power=2.0),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=5),
    "CosineAnnealingWarmRestarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3),
    "SequentialLR": lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.1, total_iters=2), S.ExponentialLR(o, 0.9)],
                                             milestones=[2]),
    "ChainedScheduler": lambda o: S.ChainedScheduler([S.ConstantLR(o, 0.5, total_iters=3), S.ExponentialLR(o, 0.9)]),
    "CyclicLR": lambda o: S.CyclicLR(o, base_lr=1e-3, max_lr=2e-2, step_size_up=3),
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=2e-2, total_steps=12),
    "ReduceLROnPlateau": lambda o: S.ReduceLROnPlateau(o, patience=0, factor=0.5),
}
STEPS = 10


def scheduled_run(net, opt, sched, x, y, steps, lrs=None):
    for _ in range(steps):
        if lrs is not None:  # the lr (and betas) the scheduler set, by hand
            for group, (lr, betas) in zip(opt.param_groups, lrs.pop(0)):
                group["lr"], group["betas"] = lr, betas
        train_step(net, opt, x, y)
        if sched is not None:
            sched.step(1.0) if isinstance(sched, S.ReduceLROnPlateau) else sched.step()


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("name", ["adam", "noise", "AddSign"])
def test_lr_schedulers(name, scheduler):
    """The scheduler sets lr (and beta1) as for torch's Adam; the steps are those of the same values
    set by hand; scheduler and optimizer resume together bit for bit."""
    config = ("cpu", False)
    x, y = data()
    net, opt = build(name, config)
    sched = SCHEDULERS[scheduler](opt)
    adam = torch.optim.Adam(model().parameters(), lr=opt.defaults["lr"])
    adam_sched = SCHEDULERS[scheduler](adam)
    trace = []
    for _ in range(STEPS):
        trace.append([(g["lr"], g["betas"]) for g in opt.param_groups])
        assert opt.param_groups[0]["lr"] == pytest.approx(adam.param_groups[0]["lr"], rel=1e-12)
        assert opt.param_groups[0]["betas"][:2] == pytest.approx(adam.param_groups[0]["betas"], rel=1e-12)
        scheduled_run(net, opt, sched, x, y, 1)
        adam.step()
        adam_sched.step(1.0) if isinstance(adam_sched, S.ReduceLROnPlateau) else adam_sched.step()
    assert len({lr for step in trace for lr, _ in step}) > 1
    by_hand, hand_opt = build(name, config)
    scheduled_run(by_hand, hand_opt, None, x, y, STEPS, lrs=list(trace))
    assert same_tensors(net.parameters(), by_hand.parameters())
    # resume: a checkpoint of model, optimizer and scheduler in the middle
    a, opt_a = build(name, config)
    sched_a = SCHEDULERS[scheduler](opt_a)
    scheduled_run(a, opt_a, sched_a, x, y, STEPS // 2)
    saved = copy.deepcopy({"model": a.state_dict(), "opt": opt_a.state_dict(), "sched": sched_a.state_dict()})
    b, opt_b = build(name, config, seed=4)
    sched_b = SCHEDULERS[scheduler](opt_b)
    b.load_state_dict(saved["model"])
    opt_b.load_state_dict(saved["opt"])
    sched_b.load_state_dict(saved["sched"])
    scheduled_run(a, opt_a, sched_a, x, y, STEPS - STEPS // 2)
    scheduled_run(b, opt_b, sched_b, x, y, STEPS - STEPS // 2)
    assert same_tensors(a.parameters(), b.parameters())


@pytest.mark.parametrize("name", ["adam", "PowerSign"])
def test_swa_averaged_model(name):
    from torch.optim.swa_utils import SWALR, AveragedModel

    x, y = data()
    net, opt = build(name, ("cpu", False))
    swa = AveragedModel(net)
    swa_sched = SWALR(opt, swa_lr=5e-3, anneal_epochs=2)
    snapshots = []
    for _ in range(5):
        train_step(net, opt, x, y)
        swa.update_parameters(net)
        swa_sched.step()
        snapshots.append([p.detach().clone() for p in net.parameters()])
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-3)
    for averaged, *history in zip(swa.module.parameters(), *snapshots):
        torch.testing.assert_close(averaged, torch.stack(history).mean(0), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_cpu_autocast_with_grad_scaler(name):
    """GradScaler's power-of-two scale unscales exactly: the same steps as without it; a step with
    an inf gradient is skipped, state and all."""
    x, y = data()
    a, opt_a = build(name, ("cpu", False))
    b, opt_b = build(name, ("cpu", False))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    for _ in range(3):
        for net, opt, use_scaler in ((a, opt_a, False), (b, opt_b, True)):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_of(net, x, y)
            if use_scaler:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
    assert same_tensors(a.parameters(), b.parameters())
    before = [p.detach().clone() for p in b.parameters()]
    state = copy.deepcopy(opt_b.state_dict())
    opt_b.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scaler.scale(loss_of(b, x, y) * float("inf")).backward()
    scaler.step(opt_b)
    scaler.update()
    assert same_tensors(b.parameters(), before)
    assert [int(s["step"]) for s in opt_b.state_dict()["state"].values()] == \
        [int(s["step"]) for s in state["state"].values()]


# --- distributed checkpoints and ZeRO ------------------------------------------------------

@pytest.fixture(scope="module")
def process_group(tmp_path_factory):
    """A single-process gloo group (ZeRO needs one; DCP uses it when there)."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    if dist.is_initialized():
        yield dist
        return
    store = tmp_path_factory.mktemp("pg") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield dist
    dist.destroy_process_group()


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_distributed_checkpoint_round_trip(name, process_group, tmp_path):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    x, y = data()
    net, opt = build(name, ("cpu", False))
    for _ in range(3):
        train_step(net, opt, x, y)
    dcp.save({"model": net.state_dict(), "optim": get_optimizer_state_dict(net, opt)}, checkpoint_id=tmp_path)
    for _ in range(3):
        train_step(net, opt, x, y)
    fresh, fresh_opt = build(name, ("cpu", False), seed=8)
    target = {"model": fresh.state_dict(), "optim": get_optimizer_state_dict(fresh, fresh_opt)}
    dcp.load(target, checkpoint_id=tmp_path)
    fresh.load_state_dict(target["model"])
    set_optimizer_state_dict(fresh, fresh_opt, target["optim"])
    for _ in range(3):
        train_step(fresh, fresh_opt, x, y)
    assert same_tensors(net.parameters(), fresh.parameters())


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_zero_redundancy_optimizer_round_trip(name, process_group):
    from torch.distributed.optim import ZeroRedundancyOptimizer

    def zero(net):
        holder = {}

        def capture(params, **kwargs):  # the local optimizer, built by MAKERS as the others
            holder["opt"] = MAKERS[name](params, **kwargs)
            return holder["opt"]

        return ZeroRedundancyOptimizer(net.parameters(), optimizer_class=capture)

    x, y = data()
    net = model()
    opt = zero(net)
    for _ in range(3):
        train_step(net, opt, x, y)
    opt.consolidate_state_dict()
    buffer = io.BytesIO()
    torch.save({"model": net.state_dict(), "opt": opt.state_dict()}, buffer)
    for _ in range(3):
        train_step(net, opt, x, y)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    fresh = model(seed=6)
    fresh.load_state_dict(saved["model"])
    fresh_opt = zero(fresh)
    fresh_opt.load_state_dict(saved["opt"])
    for _ in range(3):
        train_step(fresh, fresh_opt, x, y)
    assert same_tensors(net.parameters(), fresh.parameters())


# --- Lightning ----------------------------------------------------------------------------

def test_lightning_fit_checkpoint_resume_is_bit_exact(tmp_path):
    L = pytest.importorskip("lightning")
    from torch.utils.data import DataLoader, TensorDataset

    x, y = data()
    loader = lambda: DataLoader(TensorDataset(x, y), batch_size=4)  # noqa: E731

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = model()

        def training_step(self, batch, _):
            return loss_of(self.net, *batch)

        def configure_optimizers(self):
            opt = MAKERS["drop-anneal"](self.net.parameters())
            return {"optimizer": opt, "lr_scheduler": {"scheduler": S.OneCycleLR(opt, 2e-2, total_steps=T),
                                                       "interval": "step"}}

    def trainer(epochs):
        return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)

    straight = Module()
    trainer(4).fit(straight, loader())
    first = Module()
    half = trainer(2)
    half.fit(first, loader())
    half.save_checkpoint(tmp_path / "half.ckpt")
    resumed = Module()
    trainer(4).fit(resumed, loader(), ckpt_path=tmp_path / "half.ckpt")
    assert same_tensors(straight.parameters(), resumed.parameters())
    assert not same_tensors(straight.parameters(), first.parameters())
