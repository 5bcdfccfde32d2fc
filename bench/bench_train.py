"""Time one default MNIST-1D evaluation (lr grid + final run) of torch's SGD and Adam on one thread.

Also reports the share of wall time spent in the network's forward and backward passes during
training (timed around each call); the rest is the optimizer step, data handling, checks and
validation. The search trains thousands of these, so this share says how much an optimizer's own
cost can matter.

    python bench/bench_train.py [--repeats 3] [--task mnist1d]     (with the project installed,
                                                                    or PYTHONPATH=. from the root)
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
from torch import nn

from nos_symbolic.tasks import get_task
from nos_symbolic.tasks.baselines import BASELINES
from nos_symbolic.tasks.train import evaluate_factory


class Stopwatch:
    """Accumulates seconds spent in training-mode forward and backward passes."""

    def __init__(self) -> None:
        self.forward = 0.0
        self.backward = 0.0

    def wrap_model(self, make_model):
        watch = self

        class Timed(nn.Module):
            def __init__(self, inner: nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                if torch.is_inference_mode_enabled():  # validation, not training
                    return self.inner(x)
                t = time.perf_counter()
                out = self.inner(x)
                watch.forward += time.perf_counter() - t
                return out

        return lambda seed: Timed(make_model(seed))

    def patch_backward(self):
        original = torch.Tensor.backward
        watch = self

        def backward(tensor, *args, **kwargs):
            t = time.perf_counter()
            original(tensor, *args, **kwargs)
            watch.backward += time.perf_counter() - t

        torch.Tensor.backward = backward
        return lambda: setattr(torch.Tensor, "backward", original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--task", default="mnist1d")
    args = parser.parse_args()
    torch.set_num_threads(1)

    t = time.perf_counter()
    task = get_task(args.task)
    print(f"task {task.name}: {len(task.train)} train / {len(task.val)} val / {len(task.test)} "
          f"test, {task.steps_per_epoch} steps per epoch, "
          f"loaded in {time.perf_counter() - t:.2f} s")
    evaluate_factory(task, BASELINES["sgd"], lrs=(0.1,), epochs=1)  # warm-up: first-call costs

    for name in ("sgd", "adam"):
        walls, shares = [], []
        for seed in range(args.repeats):
            watch = Stopwatch()
            timed = dataclasses.replace(task, make_model=watch.wrap_model(task.make_model))
            restore = watch.patch_backward()
            try:
                t = time.perf_counter()
                result = evaluate_factory(timed, BASELINES[name], seed=seed)
                wall = time.perf_counter() - t
            finally:
                restore()
            walls.append(wall)
            shares.append((watch.forward + watch.backward) / wall)
        print(f"{name:5s} default evaluation: {statistics.median(walls):.3f} s median of "
              f"{args.repeats} ({min(walls):.3f}-{max(walls):.3f}), {result.steps} steps, "
              f"forward+backward {100 * statistics.median(shares):.0f}% of wall, "
              f"last reward {result.reward:.3f} at lr {result.lr:g}")


if __name__ == "__main__":
    main()
