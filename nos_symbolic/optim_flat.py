"""The flat layout a `SymbolicOptimizer` step runs on: buckets, chunks, in-place kernels.

A bucket is the parameters of one group that share device, dtype, step count and the betas their
averages were last corrected with. Its running averages live in flat buffers and `state[p]["m"]`
(likewise v, y and `state[p]["step"]`) is a view of them, so the optimizer's state is the bucket's
memory: an in-place edit of a state tensor is the bucket's data, and any other edit of the state is
seen by the optimizer, which then builds the bucket again from `state` (see optim.py).

One step of a bucket, at step count t (1-based, as torch counts) and global step s = t - 1:

    g     = grad (or -grad with maximize)
    hat_t = a * hat_{t-1} + c * g^k,   c = (1 - b) / (1 - b^t),   a = b (1 - b'^(t-1)) / (1 - b^t)
    w     <- w * (1 - lr * weight_decay) - lr * rule(g, m, v, y, w_{t-1}, s, T, draws)

for the averages m, v, y of g, g^2, g^3 with beta b of this step and b' of the step before: hat_t
is m_t / (1 - b^t), the bias-corrected average of m_t = b m_{t-1} + (1 - b) g^k, also when a
scheduler changes b between steps (a = 1 - c when b' = b). The gradients (and w when the rule reads
it) are gathered chunk by chunk into scratch buffers; each instruction of the rule is one kernel on a
chunk (`InplaceRunner`), and the weights move with one multi-tensor `torch._foreach_*` call.

Random draws (noise, anneal, drop) are a pure function of (seed, parameter index, t): each
parameter's draws at a step come from a generator seeded with those three numbers, so the step count
alone resumes them exactly, whatever the bucketing, the chunking or the checkpoint format.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from nos_symbolic.compile import InplaceRunner, Program

AVERAGES = ("m", "v", "y")  # running averages of g, g^2, g^3 with betas[0], betas[1], betas[2]
# On CPU a bucket of more elements runs chunk by chunk, so that the rule's temporaries stay in cache
# between its kernels (2^20 timed best among 2^15..2^20 on bench/bench_step.py's 10M-parameter MLP).
CHUNK = 1 << 20
_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class StepArgs:
    """A group's hyperparameters at one step, checked."""

    lr: float
    betas: tuple[float, float, float]
    weight_decay: float
    maximize: bool
    total_steps: int | None
    seed: int


def stream_seed(seed: int, index: int, t: int) -> int:
    """The seed of parameter `index`'s draws at step t (splitmix64 of the three numbers)."""
    x = (seed * 0x9E3779B97F4A7C15 + (index + 1) * 0xBF58476D1CE4E5B9 + t * 0x94D049BB133111EB) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def average_weights(betas: tuple[float, ...], before: tuple[float, ...] | None, t: int,
                    names: tuple[str, ...]) -> list[tuple[str, float, float]]:
    """(name, a, c) of each average: hat_t = a * hat_{t-1} + c * g^k (see the module docstring)."""
    out = []
    for name in names:
        i = AVERAGES.index(name)
        b = betas[i]
        b_before = b if before is None else before[i]
        c = (1.0 - b) / (1.0 - b ** t)  # 1 at t = 1: the average starts at its input
        a = 1.0 - c if b_before == b else b * (1.0 - b_before ** (t - 1)) / (1.0 - b ** t)
        out.append((name, a, c))
    return out


def _split(flat: torch.Tensor, shapes: list[torch.Size]) -> list[torch.Tensor]:
    """Consecutive views of a flat tensor with the given shapes."""
    views, offset = [], 0
    for shape in shapes:
        n = math.prod(shape)
        views.append(flat[offset: offset + n].view(shape))
        offset += n
    return views


_ChunkSpec = tuple[int, int, "tuple[int, int] | None", int, int]  # first, last, span, lo, hi


def layout(params: list[torch.Tensor], limit: int) -> list[_ChunkSpec]:
    """Chunks of at most `limit` elements: parameters first:last whole, or the slice span = (a, b)
    of the flattened parameter `first` when one contiguous parameter alone exceeds the limit; lo:hi
    is the chunk's place in the bucket's flat buffers. Parameters of no elements belong to no chunk."""
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
        if offset == lo:  # nothing pending (zero-size parameters): the next chunk starts after i
            first = i + 1
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
    the bucket's buffers: `values` (the operands g, w, m, v, y), `buffers` (the runner's scratch),
    `drawn` (this step's random draws) and `views[id(x)]`, the pieces of any of them that line up
    with the chunk's parameters."""

    def __init__(self, params: list[torch.Tensor], spec: _ChunkSpec, full: dict[str, torch.Tensor],
                 scratch: dict[str, torch.Tensor], buffers: list[torch.Tensor],
                 drawn: dict[str, torch.Tensor]) -> None:
        first, last, span, lo, hi = spec
        n = hi - lo
        self.first, self.last, self.span, self.lo, self.hi = first, last, span, lo, hi
        self.values = {**{k: t[lo:hi] for k, t in full.items()}, **{k: t[:n] for k, t in scratch.items()}}
        self.buffers = [b[:n] for b in buffers]
        self.drawn = {k: d[lo:hi] for k, d in drawn.items()}
        shapes = [p.shape for p in params[first:last]] if span is None else [torch.Size([n])]
        self.views = {id(t): _split(t, shapes) for t in (*self.values.values(), *self.buffers)}

    def pick(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """The chunk's part of a list of tensors shaped like the bucket's parameters (a sliced one
        must be contiguous)."""
        if self.span is None:
            return tensors[self.first: self.last]
        a, b = self.span
        return [tensors[self.first].view(-1)[a:b]]

    def views_of(self, x: torch.Tensor) -> list[torch.Tensor]:
        views = self.views.get(id(x))
        return views if views is not None else _split(x, [v.shape for v in self.views[id(self.values["g"])]])


def _state_tensor(state: dict[str, Any] | None, name: str, p: torch.Tensor) -> torch.Tensor:
    """state[name] on p's dtype and device (it follows the parameter), or zeros when absent."""
    value = None if state is None else state.get(name)
    if not isinstance(value, torch.Tensor):
        return torch.zeros_like(p)
    if value.shape != p.shape:
        raise ValueError(f"state {name!r} has shape {tuple(value.shape)}, its parameter {tuple(p.shape)}")
    return value.to(device=p.device, dtype=p.dtype)


class Bucket:
    """Parameters of one group sharing device, dtype, step count and correction betas.

    `params[i]` is parameter `indices[i]` of the optimizer (its state_dict index). m, v, y live in
    flat buffers whose views are `state[p]["m"]`, ...; `state[p]["step"]` is a 0-d view of the flat
    `steps`. Once the betas change between two steps, `state[p]["betas"]` records those the averages
    were last updated with (absent, they are the group's betas).
    """

    def __init__(self, params: list[torch.Tensor], indices: list[int], t: int,
                 betas_before: tuple[float, ...] | None, program: Program, averages: tuple[str, ...],
                 total_steps: int | None, fused: Callable[..., None] | None,
                 state: dict[torch.Tensor, dict[str, Any]]) -> None:
        first = params[0]
        self.params, self.indices, self.device, self.dtype = params, indices, first.device, first.dtype
        self.t, self.betas_before, self.averages, self.fused = t, betas_before, averages, fused
        self.runner = InplaceRunner(program, self.dtype, self.device, total_steps)
        self.size = sum(p.numel() for p in params)
        limit = CHUNK if self.device.type == "cpu" and fused is None else max(self.size, 1)
        specs = layout(params, limit)
        self.sliced = sorted({spec[0] for spec in specs if spec[2] is not None})
        width = max((hi - lo for *_, lo, hi in specs), default=0)
        full = {name: torch.cat([_state_tensor(state.get(p), name, p).reshape(-1) for p in params])
                for name in averages}
        scratch = {"g": first.new_empty(width)}
        if "w" in program.operands:
            scratch["w"] = first.new_empty(width)
        if "y" in full:
            scratch["cube"] = first.new_empty(width)  # g^3 for y's update
        buffers = [first.new_empty(width) for _ in range(1 if fused is not None else self.runner.n_buffers)]
        self.drawn = {key: first.new_empty(self.size) for _, key in self.runner.draws}
        self.chunks = [_Chunk(params, spec, full, scratch, buffers, self.drawn) for spec in specs]
        self.generator = torch.Generator(device=self.device) if self.drawn else None
        self.steps = torch.full((len(params),), float(t))  # on the CPU, as torch keeps "step"
        views = {name: _split(flat, [p.shape for p in params]) for name, flat in full.items()}
        for i, p in enumerate(params):
            entry = state[p]
            entry["step"] = self.steps[i]
            for name in averages:
                entry[name] = views[name][i]
        self.version = self.steps._version

    def unchanged(self) -> bool:
        """No in-place edit of a step count since the last step."""
        return self.steps._version == self.version

    def step(self, args: StepArgs, state: dict[torch.Tensor, dict[str, Any]]) -> None:
        """One update of the bucket's parameters."""
        self.t += 1
        t = self.t
        self.steps.fill_(float(t))
        self.version = self.steps._version
        before, self.betas_before = self.betas_before, args.betas
        weights = average_weights(args.betas, before, t, self.averages)
        if self.averages and before is not None and args.betas != before:
            # a scheduler changed them: the state says which betas its averages hold
            for p in self.params:
                state[p]["betas"] = args.betas
        self._draw(args.seed)
        params, grads = self.params, [p.grad for p in self.params]
        for i in self.sliced:  # a sliced gradient is read through a flat view
            if not grads[i].is_contiguous():
                grads[i] = grads[i].contiguous()
        decay = 1.0 - args.lr * args.weight_decay
        for chunk in self.chunks:
            values, targets = chunk.values, chunk.pick(params)
            torch._foreach_copy_(chunk.views[id(values["g"])], chunk.pick(grads))
            if args.maximize:
                values["g"].neg_()
            if "w" in values:
                torch._foreach_copy_(chunk.views[id(values["w"])], targets)
            if self.fused is not None:
                out = chunk.buffers[0]
                scalars = torch.tensor([float(t - 1), float(args.total_steps or 1),
                                        *(x for _, a, c in weights for x in (a, c))],
                                       dtype=torch.float64, device=self.device)  # no recompiling as they change
                self.fused(values, chunk.drawn, scalars, out)
                a, b = out, None
            else:
                _update_averages(values, weights)
                a, b = self.runner(_StepEnv(float(t - 1), args.total_steps, values, chunk.drawn), chunk.buffers)
            if args.lr == 0.0:  # w - 0 * update is w, also where the update is not finite
                continue
            if decay != 1.0:
                torch._foreach_mul_(targets, decay)
            if b is None:
                torch._foreach_add_(targets, chunk.views_of(a.to(self.dtype)), alpha=-args.lr)
            else:
                torch._foreach_addcmul_(targets, chunk.views_of(a), chunk.views_of(b), value=-args.lr)

    def _draw(self, seed: int) -> None:
        """This step's draws, parameter by parameter, in the order the program makes them."""
        if self.generator is None:
            return
        offset = 0
        for p, index in zip(self.params, self.indices):
            n = p.numel()
            if n:
                self.generator.manual_seed(stream_seed(seed, index, self.t))
                for method, key in self.runner.draws:
                    part = self.drawn[key][offset: offset + n]
                    if method == "randn":
                        part.normal_(generator=self.generator)
                    else:
                        part.uniform_(generator=self.generator)
            offset += n


def _update_averages(values: dict[str, torch.Tensor], weights: list[tuple[str, float, float]]) -> None:
    """hat_t = a * hat_{t-1} + c * g^k; with a = 1 - c, m's update is one lerp."""
    g = values["g"]
    for name, a, c in weights:
        avg = values[name]
        if name == "m":
            if a == 1.0 - c:
                avg.lerp_(g, c)
            else:
                avg.mul_(a).add_(g, alpha=c)
        elif name == "v":
            avg.mul_(a).addcmul_(g, g, value=c)
        else:
            square = torch.mul(g, g, out=values["cube"])
            avg.mul_(a).addcmul_(square, g, value=c)


def fused_update(program: Program) -> Callable[..., None]:
    """A chunk's averages and rule as one torch.compile'd function. The global step, T and the
    averages' weights enter as a float64 tensor [s, T, a_1, c_1, ...], so it compiles once."""

    def update(values: dict[str, torch.Tensor], drawn: dict[str, torch.Tensor], scalars: torch.Tensor,
               out: torch.Tensor) -> None:
        g = values["g"]
        names = [name for name in AVERAGES if name in values]
        for i, name in enumerate(names):
            power = AVERAGES.index(name) + 1
            a, c = scalars[2 + 2 * i].to(g.dtype), scalars[3 + 2 * i].to(g.dtype)
            values[name].mul_(a).add_((g ** power if power > 1 else g) * c)
        out.copy_(program(_StepEnv(scalars[0], scalars[1], values, drawn)))

    return torch.compile(update, dynamic=False)
