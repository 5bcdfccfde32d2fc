"""`SymbolicOptimizer`: any rule of the DSL as a real torch.optim.Optimizer.

The update is written once, in optim_reference.py (`reference_update`: one parameter, one short
function; `ReferenceSymbolicOptimizer` runs it); the step here takes the same steps on flat buffers,
faster, and is tested equal to it.

`optimizer.state` is the state: ``state[p]`` holds ``step`` and the averages the rule reads (and,
once a scheduler changed the betas, the ``betas`` they were last updated with), as views of the flat
buffers the step runs on (optim_flat.py), so an in-place edit of them is the step's data. Any other
edit a torch user can make (``state.clear()``, ``state[p] = {}``, a new tensor for ``state[p]["m"]``,
an in-place edit of a step, `load_state_dict`, a parameter moved by ``model.double()`` or
``.to(...)``) is seen at the next step, which then builds its buffers from ``state`` again
(converted to the parameter's dtype and device). Everything to resume, the random
draws of noise, anneal and drop included, is in torch's state_dict layout.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable
from operator import is_
from typing import Any, Callable

import torch

from nos_symbolic.errors import NosError
from nos_symbolic.optim_flat import AVERAGES, Bucket, StepArgs, fused_update
from nos_symbolic.optim_state import adam_state_dict, check_loadable, same_rule
from nos_symbolic.optim_watch import Edits, WatchedState, plain
from nos_symbolic.rule import Rule, parse_rule

DEFAULT_BETAS = (0.9, 0.999, 0.999)
_data_ptr = torch.Tensor.data_ptr


class SymbolicOptimizer(torch.optim.Optimizer):
    r"""Any update rule of the DSL as a torch optimizer.

    .. math::

        w_t = w_{t-1}(1 - \mathrm{lr}\,\lambda) - \mathrm{lr} \cdot u(g_t, \hat m_t, \hat v_t, \hat y_t,
        w_{t-1}, s, T)

    where u is the rule, :math:`\lambda` the ``weight_decay``, s = t - 1 the global step (the
    schedules ld, cd, rd and anneal are taken there, as TensorFlow's code does) and T =
    ``total_steps``. The running averages are bias-corrected, as Adam's (the paper's hats):

    .. math::

        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad \hat m_t = m_t / (1 - \beta_1^t)

    and likewise v of g^2 with beta2 and y of g^3 with beta3, with the betas of the group at that
    step (schedulers such as OneCycleLR cycle beta1). The state keeps the corrected averages
    themselves (``state[p]["m"]`` is :math:`\hat m_t`). So ``m / sqrt(v)``, that is m / (delta +
    sqrt(v)) with delta = 1e-8, takes the steps of ``torch.optim.Adam(eps=1e-8)`` (AdamW's with
    weight_decay). Only the averages the rule reads are kept: PowerSign keeps one buffer per
    parameter where Adam keeps two.

    Args:
        params: parameters or parameter groups; a group may set its own ``lr``, ``betas``,
            ``weight_decay``, ``maximize``, ``total_steps`` and ``seed``, read at every step.
        rule: DSL text (``"exp(sign(g) * sign(m)) * g"``, ``"powersign-cd"``) or a parsed `Rule`.
        lr: learning rate (a number or a 1-element tensor); lr schedulers work.
        betas: (beta1, beta2, beta3) of the averages m, v and y.
        total_steps: T of the schedules ld, cd, rd and anneal; rules using them need it.
        seed: the random draws of noise, anneal and drop are a function of (seed, parameter
            index, step), so a reloaded optimizer continues bit for bit.
        compile: run each bucket's averages and rule through ``torch.compile``, one fused kernel:
            for GPUs; on a CPU the default in-place path is faster (bench/bench_step.py).
        weight_decay: decoupled weight decay, w <- w - lr * weight_decay * w before the update.
        maximize: ascend the objective (the rule sees -grad).

    The update is bit for bit ``rule.program(env)`` (see `InplaceRunner`), except that a final
    product a * b is fused into the weight update (``w.addcmul_(a, b, value=-lr)``) and that lr = 0
    leaves w as it is. Numerically wild rules do not raise: the weights become inf or NaN.

    >>> model = torch.nn.Linear(3, 1)
    >>> opt = SymbolicOptimizer(model.parameters(), "exp(sign(g) * sign(m)) * g", lr=0.1)
    >>> model(torch.ones(1, 3)).sum().backward(); opt.step()
    """

    def __init__(self, params: Iterable[Any], rule: str | Rule, lr: float | torch.Tensor = 1e-3,
                 betas: tuple[float, ...] = DEFAULT_BETAS, total_steps: int | None = None, seed: int = 0,
                 compile: bool = False, *, weight_decay: float = 0.0, maximize: bool = False) -> None:
        self.rule = rule if isinstance(rule, Rule) else parse_rule(rule)
        self.compile = compile
        self._reset()
        defaults = {"lr": lr, "betas": betas, "weight_decay": weight_decay, "maximize": maximize,
                    "total_steps": total_steps, "seed": seed, "rule": self.rule.text}
        _checked_group(defaults, self.rule)
        super().__init__(params, defaults)
        self.state = WatchedState(self._edits, self.state)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's add_param_group, after checking every hyperparameter: a refused group leaves the
        optimizer as it was."""
        if isinstance(param_group, dict):
            params = param_group.get("params")
            if isinstance(params, torch.Tensor):
                param_group["params"] = [params]
            elif params is not None and not isinstance(params, set):
                param_group["params"] = list(params)  # a generator is read once, here
            args = _checked_group({**self.defaults, **param_group}, self.rule)
            for item in param_group.get("params") or ():
                p = item[1] if isinstance(item, tuple) else item
                if isinstance(p, torch.Tensor):
                    check_real(p)
            param_group["betas"] = args.betas
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient; returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not self._state_unchanged():
            self._groups.clear()
        offset = 0
        try:
            for index, group in enumerate(self.param_groups):
                args = self._step_args(index, group)
                for bucket in self._group_buckets(index, group, offset, args):
                    bucket.step(args, self.state)
                offset += len(group["params"])
        except RuntimeError as err:
            for group in self.param_groups:
                check_dense(group["params"], err)
            raise
        finally:
            self._seen = self._edits.count  # this step's own edits
        return loss

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict, its per-parameter entries plain dicts."""
        state_dict = super().state_dict()
        state_dict["state"] = {k: dict(v) if isinstance(v, dict) else v for k, v in state_dict["state"].items()}
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's load_state_dict, for a state dict of this rule only (see optim_state.py)."""
        check_loadable(type(self).__name__, self.rule, state_dict)
        super().load_state_dict(state_dict)

    def load_adam_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Start from torch.optim.Adam's or AdamW's state: m and v from exp_avg and exp_avg_sq
        (bias-corrected), its step counts, lr, beta1, beta2, weight decay and maximize."""
        self.load_state_dict(adam_state_dict(self.state_dict(), state_dict, self.rule.program.operands))

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.update(state=plain(self.state), rule=self.rule, compile=self.compile)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # load_state_dict comes here with a new state and param_groups
        self._reset()
        self.state = WatchedState(self._edits, self.state)

    def _reset(self) -> None:
        """Forget the buffers; the next step builds them from `state`."""
        self._averages = tuple(a for a in AVERAGES if a in self.rule.program.operands)
        self._groups: dict[int, tuple[list[torch.Tensor], list[int], list[Bucket]]] = {}
        self._edits = Edits()
        self._seen = -1  # the edit count after the last step
        self._args: dict[int, tuple[tuple, StepArgs]] = {}
        self._fused = None

    def _step_args(self, index: int, group: dict[str, Any]) -> StepArgs:
        """The group's checked hyperparameters, checked again only when one of them was replaced
        (a tensor lr is read at every step)."""
        get = group.get
        raw = (get("lr"), get("betas"), get("weight_decay"), get("maximize"), get("total_steps"), get("seed"),
               get("rule"))
        cached = self._args.get(index)
        if (cached is not None and all(map(is_, raw, cached[0])) and isinstance(raw[1], tuple)
                and not isinstance(raw[0], torch.Tensor)):
            return cached[1]
        args = _checked_group(group, self.rule, index)
        self._args[index] = (raw, args)
        return args

    def _state_unchanged(self) -> bool:
        """No edit of `state` since the last step (see optim_watch.py); a state put in its place
        is watched from now on."""
        state = self.state
        if type(state) is not WatchedState or state.edits is not self._edits:
            self.state = WatchedState(self._edits, state)
            return False
        return self._edits.count == self._seen

    def _group_buckets(self, index: int, group: dict[str, Any], offset: int, args: StepArgs) -> list[Bucket]:
        """The group's buckets, built again when its parameters with a gradient, their storage or
        `state` changed."""
        active = [p for p in group["params"] if p.grad is not None]
        pointers = list(map(_data_ptr, active))
        cached = self._groups.get(index)
        if (cached is not None and len(cached[0]) == len(active) and all(map(is_, cached[0], active))
                and cached[1] == pointers and all(b.unchanged() for b in cached[2])):
            return cached[2]
        for p in active:
            check_real(p)
        check_dense(active)
        position = {id(p): offset + i for i, p in enumerate(group["params"])}
        by_key: dict[tuple, list[torch.Tensor]] = {}
        for p in active:
            entry = self.state.get(p) or {}
            step = int(entry.get("step", 0))
            before = entry.get("betas") if step else None
            key = (p.device, p.dtype, step, None if before is None else tuple(float(b) for b in before))
            by_key.setdefault(key, []).append(p)
        if self.compile and self._fused is None:
            self._fused = fused_update(self.rule.program)
        buckets = [Bucket(ps, [position[id(p)] for p in ps], step, before, self.rule.program, self._averages,
                          args.total_steps, self._fused, self.state)
                   for (_, _, step, before), ps in by_key.items()]
        self._groups[index] = (active, pointers, buckets)
        return buckets


def _checked_lr(lr: Any, at_step: bool) -> float:
    """lr as a float; below 0 only at a step (a scheduler may set it so, as the noisy decays do)."""
    if isinstance(lr, torch.Tensor):
        if lr.numel() != 1:
            raise NosError(f"Tensor lr must be 1-element, got one of shape {tuple(lr.shape)}")
        value = float(lr)
    elif isinstance(lr, numbers.Real) and not isinstance(lr, bool):
        value = float(lr)
    else:
        raise NosError(f"lr must be a number or a 1-element tensor, got {lr!r}")
    if not (value >= 0.0 or at_step and value == value):
        raise NosError(f"Invalid learning rate: {lr!r} (lr must be >= 0)")
    return value


def _checked_betas(betas: Any) -> tuple[float, float, float]:
    try:
        values = tuple(float(b) for b in betas)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(0.0 <= b < 1.0 for b in values):
        raise NosError(f"betas must be three numbers in [0, 1) for m, v and y, got {betas!r}")
    return values


def _checked_group(group: dict[str, Any], rule: Rule, index: int | None = None) -> StepArgs:
    """A group's hyperparameters, checked (at a step when `index` is given); NosError naming the
    first bad one."""
    where = "" if index is None else f" (param group {index})"
    if not same_rule(group.get("rule"), rule):
        raise NosError(f"param group{where} runs rule '{group.get('rule')}', this optimizer rule "
                       f"'{rule.text}': one rule per optimizer (build one optimizer per rule)")
    decay, maximize = group.get("weight_decay", 0.0), group.get("maximize", False)
    total, seed = group.get("total_steps"), group.get("seed", 0)
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not decay >= 0.0:
        raise NosError(f"Invalid weight_decay value: {decay!r}{where} (a number >= 0)")
    if not isinstance(maximize, bool):
        raise NosError(f"maximize must be True or False, got {maximize!r}{where}")
    if total is None and "scheduled" in rule.flags:
        raise NosError(f"rule {rule} uses a schedule of the step (ld, cd, rd or anneal): "
                       f"pass total_steps=T, the number of steps of the run")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 1):
        raise NosError(f"total_steps must be a positive integer, got {total!r}{where}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise NosError(f"seed must be an integer, got {seed!r}{where}")
    return StepArgs(_checked_lr(group["lr"], index is not None), _checked_betas(group["betas"]), float(decay), maximize,
                    total, seed)


def check_real(p: torch.Tensor) -> None:
    if p.is_complex():
        raise NosError("complex parameters are not supported: the DSL's functions (sign, clip, "
                       "comparisons in drop) are defined on real numbers; pass torch.view_as_real(p) "
                       "views as real parameters instead")


def check_dense(params: list[torch.Tensor], cause: Exception | None = None) -> None:
    if any(p.grad is not None and p.grad.is_sparse for p in params):
        raise NosError("sparse gradients are not supported (the rule's state is dense); use a "
                       "dense embedding (sparse=False) or torch.optim.SparseAdam") from cause
