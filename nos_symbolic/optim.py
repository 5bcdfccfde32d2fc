"""`SymbolicOptimizer`: any rule of the DSL as a real torch.optim.Optimizer.

The weights move by the rule's update, computed over all parameters of a group at once:

    w <- w - lr * update,    update = rule(g, m, v, y, w, t, T, draws)

Per group, parameters that share device, dtype and step count form a bucket whose state lives in flat
buffers (one per running average the rule reads); the gradients are gathered into one flat tensor, so
each instruction of the rule is one kernel on one big tensor, written into a preallocated buffer (see
`InplaceRunner`), and the weights move with one multi-tensor `torch._foreach_*` call. `state[p]`
holds views of those buffers, so checkpoints look like any torch optimizer's.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any, Callable

import torch

from nos_symbolic.compile import InplaceRunner
from nos_symbolic.errors import NosError
from nos_symbolic.rule import Rule, parse_rule

DEFAULT_BETAS = (0.9, 0.999, 0.999)
AVERAGES = ("m", "v", "y")  # running averages of g, g^2, g^3 with betas[0], betas[1], betas[2]
# On CPU a bucket of more elements runs chunk by chunk, so that the rule's temporaries stay in cache
# between its kernels (2^20 timed best among 2^15..2^20 on bench/bench_step.py's 10M-parameter MLP).
CHUNK = 1 << 20


class SymbolicOptimizer(torch.optim.Optimizer):
    r"""Any update rule of the DSL as a torch optimizer.

    .. math::

        w_t = w_{t-1} - \mathrm{lr} \cdot u(g_t, \hat m_t, \hat v_t, \hat y_t, w_{t-1}, t, T)

    where u is the rule, t the 1-based step count and T = total_steps. The running averages are
    bias-corrected, as Adam's (the paper's hats):

    .. math::

        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad \hat m_t = m_t / (1 - \beta_1^t)

    and likewise v of g^2 with beta2 and y of g^3 with beta3. The state keeps the corrected averages
    themselves (``state[p]["m"]`` is :math:`\hat m_t`), updated as
    :math:`\hat m_t = \hat m_{t-1} + \frac{1 - \beta_1}{1 - \beta_1^t}(g_t - \hat m_{t-1})`, which
    is the same quantity. So ``m / sqrt(v)``, that is m / (delta + sqrt(v)) with delta = 1e-8, takes
    the steps of ``torch.optim.Adam(eps=1e-8)``. Only the averages the rule reads are kept: PowerSign
    keeps one buffer per parameter where Adam keeps two.

    Args:
        params: parameters or parameter groups; a group may set its own ``lr`` and ``betas``.
        rule: DSL text (``"exp(sign(g) * sign(m)) * g"``, ``"powersign-cd"``) or a parsed `Rule`.
        lr: learning rate, read from ``param_groups`` at every step (lr schedulers work).
        betas: (beta1, beta2, beta3) of the averages m, v and y.
        total_steps: T of the schedules ld, cd, rd and anneal; rules using them need it.
        seed: seeds the generator (one per device) behind noise, anneal and drop; its state is part
            of ``state_dict()``, so a reloaded optimizer continues bit for bit.
        compile: run each bucket's update through ``torch.compile``, one fused kernel: for GPUs; on
            a CPU the default in-place path is faster (bench/bench_step.py).

    The update is bit for bit ``rule.program(env)`` (see `InplaceRunner`), except that a final
    product a * b is fused into the weight update (``w.addcmul_(a, b, value=-lr)``). Numerically
    wild rules do not raise: the weights become inf or NaN.

    >>> model = torch.nn.Linear(3, 1)
    >>> opt = SymbolicOptimizer(model.parameters(), "exp(sign(g) * sign(m)) * g", lr=0.1)
    >>> model(torch.ones(1, 3)).sum().backward(); opt.step()
    """

    def __init__(self, params: Iterable[Any], rule: str | Rule, lr: float = 1e-3,
                 betas: tuple[float, ...] = DEFAULT_BETAS, total_steps: int | None = None,
                 seed: int = 0, compile: bool = False) -> None:
        self.rule = rule if isinstance(rule, Rule) else parse_rule(rule)
        if total_steps is None and "scheduled" in self.rule.flags:
            raise NosError(f"rule {self.rule} uses a schedule of the step (ld, cd, rd or anneal): "
                           f"pass total_steps=T, the number of steps of the run")
        if total_steps is not None and (isinstance(total_steps, bool) or not isinstance(total_steps, int)
                                        or total_steps < 1):
            raise NosError(f"total_steps must be a positive integer, got {total_steps!r}")
        self.total_steps = total_steps
        self.seed = seed
        self.compile = compile
        self._averages = tuple(a for a in AVERAGES if a in self.rule.program.operands)
        self._generators: dict[torch.device, torch.Generator] = {}
        self._buckets: dict[int, tuple[list[torch.Tensor], Any, list[_Bucket]]] = {}
        super().__init__(params, {"lr": lr, "betas": betas})

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if not isinstance(group["lr"], (int, float, torch.Tensor)) or group["lr"] < 0:
            raise NosError(f"lr must be a number >= 0, got {group['lr']!r}")
        group["betas"] = _checked_betas(group["betas"])
        for p in group["params"]:
            if p.is_complex():
                raise NosError("complex parameters are not supported: the DSL's functions (sign, "
                               "clip, comparisons in drop) are defined on real numbers; pass "
                               "torch.view_as_real(p) views as real parameters instead")

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient; returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        try:
            for index, group in enumerate(self.param_groups):
                for bucket in self._group_buckets(index, group):
                    bucket.step(group, self._generator(bucket.device))
        except RuntimeError as err:
            _check_dense([p for group in self.param_groups for p in group["params"]], err)
            raise
        return loss

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict (state keyed by parameter) plus the generators' states."""
        state = super().state_dict()
        state["generators"] = {str(d): g.get_state() for d, g in self._generators.items()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        generators = state_dict.pop("generators", {})
        super().load_state_dict(state_dict)
        self._buckets.clear()
        devices = {p.device for group in self.param_groups for p in group["params"]}
        for device, gen_state in generators.items():
            if torch.device(device) in devices:  # a checkpoint from another device has no use for it
                self._generator(torch.device(device)).set_state(gen_state)

    def __repr__(self) -> str:
        head, _, groups = super().__repr__().partition("\n")
        return f"{head}\nRule: {self.rule.text}\n    total_steps: {self.total_steps}\n{groups}"

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.update(rule=self.rule, total_steps=self.total_steps, seed=self.seed, compile=self.compile,
                     _averages=self._averages,
                     generators={str(d): g.get_state() for d, g in self._generators.items()})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        generators = state.pop("generators", None)  # absent when load_state_dict calls this
        super().__setstate__(state)
        self._buckets = {}
        if generators is not None:
            self._generators = {}
            for device, gen_state in generators.items():
                self._generator(torch.device(device)).set_state(gen_state)

    def _generator(self, device: torch.device) -> torch.Generator:
        gen = self._generators.get(device)
        if gen is None:
            gen = self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return gen

    def _group_buckets(self, index: int, group: dict[str, Any]) -> list[_Bucket]:
        """The group's buckets, rebuilt when the parameters with a gradient or the state changed."""
        active = [p for p in group["params"] if p.grad is not None]
        cached = self._buckets.get(index)
        if (cached is not None and cached[1] is self.state and len(cached[0]) == len(active)
                and all(map(operator.is_, cached[0], active))):
            return cached[2]
        _check_dense(active)
        by_key: dict[tuple, list[torch.Tensor]] = {}
        for p in active:
            step = self.state[p].get("step", 0)
            by_key.setdefault((p.device, p.dtype, int(step)), []).append(p)
        buckets = [_Bucket(ps, step, self) for (_, _, step), ps in by_key.items()]
        self._buckets[index] = (active, self.state, buckets)
        return buckets


def _check_dense(params: list[torch.Tensor], cause: Exception | None = None) -> None:
    if any(p.grad is not None and p.grad.is_sparse for p in params):
        raise NosError("sparse gradients are not supported (the rule's state is dense); use a "
                       "dense embedding (sparse=False) or torch.optim.SparseAdam") from cause


def _checked_betas(betas: Any) -> tuple[float, float, float]:
    try:
        values = tuple(float(b) for b in betas)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(0.0 <= b < 1.0 for b in values):
        raise NosError(f"betas must be three numbers in [0, 1) for m, v and y, got {betas!r}")
    return values


def _split(flat: torch.Tensor, shapes: list[torch.Size]) -> list[torch.Tensor]:
    """Consecutive views of a flat tensor with the given shapes."""
    views, offset = [], 0
    for shape in shapes:
        n = math.prod(shape)
        views.append(flat[offset: offset + n].view(shape))
        offset += n
    return views


_ChunkSpec = tuple[int, int, "tuple[int, int] | None", int, int]  # first, last, span, lo, hi


def _layout(params: list[torch.Tensor], limit: int) -> list[_ChunkSpec]:
    """Chunks of at most `limit` elements: parameters first:last whole, or the slice span = (a, b)
    of the flattened parameter `first` when one contiguous parameter alone exceeds the limit; lo:hi
    is the chunk's place in the bucket's flat buffers."""
    chunks: list[_ChunkSpec] = []
    first, lo, offset = 0, 0, 0
    for i, p in enumerate(params):
        n = p.numel()
        if offset > lo and (offset + n - lo > limit or n > limit):
            chunks.append((first, i, None, lo, offset))
            first, lo = i, offset
        if n > limit and p.is_contiguous():
            chunks += [(i, i + 1, (a, min(a + limit, n)), offset + a, offset + min(a + limit, n))
                       for a in range(0, n, limit)]
            first, lo = i + 1, offset + n
        offset += n
    if offset > lo:
        chunks.append((first, len(params), None, lo, offset))
    return chunks


class _StepEnv:
    """The Env (see compile.py) of one chunk at one step; random draws are made beforehand."""

    __slots__ = ("t", "T", "values", "drawn")

    def __init__(self, t: Any, T: Any, values: dict[str, torch.Tensor],
                 drawn: dict[str, torch.Tensor]) -> None:
        self.t, self.T, self.values, self.drawn = t, T, values, drawn

    def tensor(self, name: str) -> torch.Tensor:
        return self.values[name]

    def randn(self, key: str) -> torch.Tensor:
        return self.drawn[key]

    def rand(self, key: str) -> torch.Tensor:
        return self.drawn[key]


class _Chunk:
    """Elements [lo, hi) of a bucket: parameters first:last whole, or a slice of one, with views of
    the bucket's buffers: `values` (the operands g, w, m, v, y), `buffers` (the runner's scratch)
    and `views[id(x)]`, the pieces of any of them that line up with the chunk's parameters."""

    def __init__(self, params: list[torch.Tensor], first: int, last: int, span: tuple[int, int] | None,
                 lo: int, hi: int, full: dict[str, torch.Tensor], scratch: dict[str, torch.Tensor],
                 buffers: list[torch.Tensor]) -> None:
        n = hi - lo
        self.first, self.last, self.span, self.lo, self.hi = first, last, span, lo, hi
        self.values = {**{k: t[lo:hi] for k, t in full.items()}, **{k: t[:n] for k, t in scratch.items()}}
        self.buffers = [b[:n] for b in buffers]
        shapes = [p.shape for p in params[first:last]] if span is None else [torch.Size([n])]
        self.views = {id(t): _split(t, shapes) for t in (*self.values.values(), *self.buffers)}

    def pick(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """The chunk's part of a list of tensors shaped like the bucket's parameters."""
        if self.span is None:
            return tensors[self.first: self.last]
        a, b = self.span
        return [tensors[self.first].view(-1)[a:b]]

    def views_of(self, x: torch.Tensor) -> list[torch.Tensor]:
        views = self.views.get(id(x))
        return views if views is not None else _split(x, [v.shape for v in self.views[id(self.values["g"])]])


class _Bucket:
    """Parameters of one group sharing device, dtype and step count; their state in flat buffers.

    m, v, y live in flat buffers whose views are `state[p]["m"]`, ...; one shared 0-d tensor is
    every `state[p]["step"]`. g (and w when the rule reads it) are gathered chunk by chunk into
    scratch buffers as wide as the widest chunk.
    """

    def __init__(self, params: list[torch.Tensor], step: int, opt: SymbolicOptimizer) -> None:
        first = params[0]
        self.params, self.device, self.dtype = params, first.device, first.dtype
        self.t, self.T, self.averages = step, opt.total_steps, opt._averages
        self.step_count = torch.tensor(float(step))
        program = opt.rule.program
        self.runner = InplaceRunner(program, self.dtype, self.device, self.T)
        self.fused = _fused_update(program, self.T) if opt.compile else None
        size = sum(p.numel() for p in params)
        limit = CHUNK if self.device.type == "cpu" and self.fused is None else size
        layout = _layout(params, limit)
        width = max(hi - lo for *_, lo, hi in layout)
        full = {name: torch.cat([_state_or_zeros(opt.state[p], name, p).reshape(-1) for p in params])
                for name in self.averages}
        scratch = {"g": first.new_empty(width)}
        if "w" in program.operands:
            scratch["w"] = first.new_empty(width)
        if "y" in full:
            scratch["cube"] = first.new_empty(width)  # g^3 for y's update
        n_buffers = 1 if self.fused is not None else self.runner.n_buffers
        buffers = [first.new_empty(width) for _ in range(n_buffers)]
        self.chunks = [_Chunk(params, *chunk, full, scratch, buffers) for chunk in layout]
        state_views = {name: _split(t, [p.shape for p in params]) for name, t in full.items()}
        for i, p in enumerate(params):
            for name in self.averages:
                opt.state[p][name] = state_views[name][i]
            opt.state[p]["step"] = self.step_count

    def step(self, group: dict[str, Any], generator: torch.Generator) -> None:
        self.t += 1
        t = self.t
        self.step_count.fill_(t)
        lr, betas, params = float(group["lr"]), group["betas"], self.params
        weights = [(name, (1.0 - betas[i]) / (1.0 - betas[i] ** t))  # 1 at t = 1: avg starts at input
                   for i, name in enumerate(AVERAGES) if name in self.averages]
        drawn = self._draw(generator)
        grads = [p.grad for p in params]
        for chunk in self.chunks:
            values, targets = chunk.values, chunk.pick(params)
            torch._foreach_copy_(chunk.views[id(values["g"])], chunk.pick(grads))
            if "w" in values:
                torch._foreach_copy_(chunk.views[id(values["w"])], targets)
            part = drawn if len(self.chunks) == 1 else {k: d[chunk.lo: chunk.hi] for k, d in drawn.items()}
            if self.fused is not None:
                out = chunk.buffers[0]
                scalars = torch.tensor([float(t), *(w for _, w in weights)], dtype=torch.float64,
                                       device=self.device)  # one copy; no recompiling as they change
                self.fused(values, part, scalars, out)
                torch._foreach_add_(targets, chunk.views[id(out)], alpha=-lr)
                continue
            _update_averages(values, weights)
            a, b = self.runner(_StepEnv(float(t), self.T, values, part), chunk.buffers)
            if b is None:
                torch._foreach_add_(targets, chunk.views_of(a.to(self.dtype)), alpha=-lr)
            else:
                torch._foreach_addcmul_(targets, chunk.views_of(a), chunk.views_of(b), value=-lr)

    def _draw(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """This step's random draws for the whole bucket, in the order the program makes them."""
        shape = (self.chunks[-1].hi,)
        return {key: (torch.randn if method == "randn" else torch.rand)(
                    shape, generator=generator, dtype=self.dtype, device=self.device)
                for method, key in self.runner.draws}


def _update_averages(values: dict[str, torch.Tensor], weights: list[tuple[str, float]]) -> None:
    """hat_t = hat_{t-1} + weight * (g^k - hat_{t-1}), weight = (1 - beta) / (1 - beta^t)."""
    g = values["g"]
    for name, weight in weights:
        avg = values[name]
        if name == "m":
            avg.lerp_(g, weight)
        elif name == "v":
            avg.mul_(1.0 - weight).addcmul_(g, g, value=weight)
        else:
            square = torch.mul(g, g, out=values["cube"])
            avg.mul_(1.0 - weight).addcmul_(square, g, value=weight)


def _state_or_zeros(state: dict[str, Any], name: str, p: torch.Tensor) -> torch.Tensor:
    value = state.get(name)
    return value.to(p.dtype) if isinstance(value, torch.Tensor) else torch.zeros_like(p)


def _fused_update(program: Any, T: Any) -> Callable[..., None]:
    """A chunk's whole step (averages and rule) as one torch.compile'd function. The step t and the
    averages' weights enter as a float64 tensor [t, *weights], so it compiles once."""

    def update(values: dict[str, torch.Tensor], drawn: dict[str, torch.Tensor], scalars: torch.Tensor,
               out: torch.Tensor) -> None:
        g = values["g"]
        names = [name for name in AVERAGES if name in values]
        for i, name in enumerate(names):
            power = AVERAGES.index(name) + 1
            values[name].lerp_(g ** power if power > 1 else g, scalars[i + 1].to(g.dtype))
        out.copy_(program(_StepEnv(scalars[0], T, values, drawn)))

    return torch.compile(update, dynamic=False)
