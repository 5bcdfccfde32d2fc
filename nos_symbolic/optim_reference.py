r"""The update of `SymbolicOptimizer` for one parameter, in one readable function.

At step count t (1-based) and global step s = t - 1, for the parameter's gradient g (-g with
``maximize``) and weight w:

.. math::

    m_t = \beta_1 m_{t-1} + (1 - \beta_1) g, \qquad \hat m_t = m_t / (1 - \beta_1^t)
    \quad (\text{likewise } v \text{ of } g^2 \text{ with } \beta_2,\ y \text{ of } g^3 \text{ with } \beta_3)

    w_t = w_{t-1} (1 - \mathrm{lr}\,\lambda) - \mathrm{lr} \cdot
    \mathrm{rule}(g, \hat m_t, \hat v_t, \hat y_t, w_{t-1}, s, T)

with lambda the weight decay and T ``total_steps`` (lr = 0 leaves w as it is). The state keeps the
corrected averages :math:`\hat m_{t-1}`, so the step undoes the correction with the betas they were
made with (``state["betas"]``, absent: this step's), then redoes it with this step's. The random
draws of noise, anneal and drop come from a generator seeded with ``stream_seed(seed, index, t)``, in
the order the rule's program asks for them, each flat over the parameter's elements.

`reference_update` is pure: it reads the state dict and returns a new one. The default
`SymbolicOptimizer` takes the same steps on flat buffers (optim_flat.py), up to rounding: it folds
the correction into two weights per average and fuses the last product into the weight update.
`ReferenceSymbolicOptimizer` is SymbolicOptimizer running this function parameter by parameter.

>>> from nos_symbolic.rule import parse_rule
>>> w, g = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -2.0])
>>> w1, state = reference_update(parse_rule("m / sqrt(v)"), g, w, {}, lr=0.1)  # Adam's first step
>>> w1, state["m"], state["step"]
(tensor([0.9000, 2.1000]), tensor([ 0.5000, -2.0000]), tensor(1.))
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from nos_symbolic.optim import DEFAULT_BETAS, SymbolicOptimizer, check_dense, check_real
from nos_symbolic.optim_flat import AVERAGES, stream_seed
from nos_symbolic.rule import Rule


def corrected_average(hat: torch.Tensor, x: torch.Tensor, b: float, b_before: float, t: int) -> torch.Tensor:
    """hat_t = (b m_{t-1} + (1 - b) x) / (1 - b^t), where m_{t-1} = hat_{t-1} (1 - b_before^(t-1))."""
    m_before = hat * (1.0 - b_before ** (t - 1))  # undo the last correction (0 at t = 1)
    return (b * m_before + (1.0 - b) * x) / (1.0 - b ** t)


class _Env:
    """The Env (compile.py) of one parameter at one step; draws are made on first request."""

    def __init__(self, s: float, T: int | None, values: dict[str, torch.Tensor], seed: int) -> None:
        self.t, self.T, self.values, self.seed = s, T, values, seed
        self.drawn: dict[str, torch.Tensor] = {}
        self.generator: torch.Generator | None = None

    def tensor(self, name: str) -> torch.Tensor:
        return self.values[name]

    def randn(self, key: str) -> torch.Tensor:
        return self._draw(key, torch.Tensor.normal_)

    def rand(self, key: str) -> torch.Tensor:
        return self._draw(key, torch.Tensor.uniform_)

    def _draw(self, key: str, fill: Callable[..., torch.Tensor]) -> torch.Tensor:
        if key not in self.drawn:
            g = self.values["g"]
            if self.generator is None:
                self.generator = torch.Generator(device=g.device).manual_seed(self.seed)
            # flat, in row-major order: the fast path draws into a flat buffer of the parameter
            self.drawn[key] = fill(g.new_empty(g.numel()), generator=self.generator).view(g.shape)
        return self.drawn[key]


def reference_update(rule: Rule, g: torch.Tensor, w: torch.Tensor, state: dict[str, Any], *,
                     lr: float, betas: tuple[float, float, float] = DEFAULT_BETAS, weight_decay: float = 0.0,
                     maximize: bool = False, total_steps: int | None = None, seed: int = 0,
                     index: int = 0) -> tuple[torch.Tensor, dict[str, Any]]:
    r"""One step of `rule` on one parameter: (new weight, new state).

    .. math::

        \hat m_t = \frac{\beta_1 m_{t-1} + (1 - \beta_1) g}{1 - \beta_1^t}, \qquad
        w_t = w_{t-1} (1 - \mathrm{lr}\,\lambda) - \mathrm{lr} \cdot
        \mathrm{rule}(g, \hat m_t, \hat v_t, \hat y_t, w_{t-1}, t - 1, T)

    `state` is the parameter's entry of ``optimizer.state`` ({} before its first step): ``step``
    (t - 1), the corrected averages the rule reads and, optionally, the ``betas`` they were made
    with. `index` is the parameter's place in the optimizer (its state_dict index), which with
    `seed` and t fixes the random draws. The new state records ``betas`` whenever it has averages.
    """
    t = int(state.get("step", 0)) + 1
    before = tuple(state.get("betas", betas))
    g = (-g if maximize else g).to(w.dtype)
    program = rule.program
    values, new_state = {"g": g, "w": w}, {"step": torch.tensor(float(t))}
    for k, name in enumerate(AVERAGES, start=1):  # m of g, v of g^2, y of g^3
        if name in program.operands:
            hat = state.get(name)
            hat = torch.zeros_like(w) if hat is None else hat.to(device=w.device, dtype=w.dtype)
            values[name] = new_state[name] = corrected_average(hat, g ** k, betas[k - 1], before[k - 1], t)
    if len(new_state) > 1:
        new_state["betas"] = tuple(float(b) for b in betas)
    if lr == 0.0:  # w - 0 * update is w, also where the update is not finite
        return w.clone(), new_state
    update = program(_Env(float(t - 1), total_steps, values, stream_seed(seed, index, t)))
    return w * (1.0 - lr * weight_decay) - lr * update, new_state


class ReferenceSymbolicOptimizer(SymbolicOptimizer):
    """`SymbolicOptimizer` (same arguments, checks and state_dict) whose step runs
    `reference_update` on each parameter with a gradient, one after the other: slow, for reading
    and for checking the default step against."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient; returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        index = 0  # the parameter's state_dict index: the draws depend on it
        for group_index, group in enumerate(self.param_groups):
            args = self._step_args(group_index, group)
            check_dense(group["params"])
            for p in group["params"]:
                if p.grad is not None:
                    check_real(p)
                    w, self.state[p] = reference_update(
                        self.rule, p.grad, p, dict(self.state.get(p) or {}), lr=args.lr, betas=args.betas,
                        weight_decay=args.weight_decay, maximize=args.maximize,
                        total_steps=args.total_steps, seed=args.seed, index=index)
                    p.copy_(w)
                index += 1
        return loss
