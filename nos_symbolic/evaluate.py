"""Score one rule (or one of torch's baselines) on a child task: the paper's reward.

    result = evaluate("powersign-cd", EvalConfig())          # pre-screen, lr grid, final run
    result = evaluate("adam", EvalConfig())                   # torch.optim.Adam, same protocol

The protocol: (1) pre-screen the rule without training (prescreen.py); a rejection is a result with
its reason. (2) Grid-search the learning rate with short runs, then train the full run at the best
(tasks/train.py: evaluate_factory). (3) Early kills end hopeless runs as diverged or failed. An
evaluation that raises is recorded as `error` with the exception, never propagated: numerically wild
rules are a normal outcome of a search. Same seed, same result on CPU.

`evaluate_job` is the entry point worker processes run: its payload is plain data (rule text and
config), and each worker builds the task's data once, not once per evaluation.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from nos_symbolic.errors import NosError, check_known_keys
from nos_symbolic.result import EvalResult
from nos_symbolic.tasks.train import DEFAULT_GRID_EPOCHS, DEFAULT_LRS

BASELINE_NAMES: tuple[str, ...] = ("sgd", "momentum", "adam", "rmsprop")


@dataclass(frozen=True)
class EvalConfig:
    """How a rule is scored. Every field is plain data so it travels to worker processes.

    task:        mnist1d (default), mnist1d-mlp or cifar10
    data_dir:    CIFAR-10 folder (cifar-10-batches-py/ or train/<class>/, test/<class>/)
    subset:      CIFAR-10 training images to use (class-balanced; None: all)
    epochs:      length of the final run
    lrs:         the learning-rate grid (one lr: no grid)
    grid_epochs: length of each grid run
    seed:        model initialisation, data order and the optimizer's random draws
    device:      cpu or cuda
    descent_threshold: pre-screen's minimum mean cos(update, g)
    """

    task: str = "mnist1d"
    data_dir: str | None = None
    subset: int | None = None
    epochs: int = 5
    lrs: tuple[float, ...] = DEFAULT_LRS
    grid_epochs: float = DEFAULT_GRID_EPOCHS
    seed: int = 0
    device: str = "cpu"
    descent_threshold: float = 0.15

    def task_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"epochs": self.epochs}
        if self.task == "cifar10":
            options.update(data_dir=self.data_dir, subset=self.subset)
        elif self.data_dir is not None or self.subset is not None:
            raise NosError(f"--data-dir and --subset apply to the cifar10 task, not {self.task}")
        return options

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lrs"] = list(self.lrs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalConfig":
        check_known_keys(cls, d, "evaluation")
        d = dict(d)
        if "lrs" in d:
            d["lrs"] = tuple(float(x) for x in d["lrs"])
        return cls(**d)


@lru_cache(maxsize=4)
def load_task(name: str, options: tuple[tuple[str, Any], ...]):
    """The task's data and model, built once per process and configuration."""
    from nos_symbolic.tasks import get_task

    return get_task(name, **dict(options))


def task_for(config: EvalConfig):
    """The task an EvalConfig names (cached)."""
    return load_task(config.task, tuple(sorted(config.task_options().items())))


def rule_factory(rule, seed: int):
    """(params, lr, total_steps) -> SymbolicOptimizer running `rule`."""
    from nos_symbolic.optim import SymbolicOptimizer

    def make(params, lr: float, total_steps: int):
        return SymbolicOptimizer(params, rule=rule, lr=lr, total_steps=total_steps, seed=seed)

    return make


def evaluate(spec: str, config: EvalConfig) -> EvalResult:
    """Score a rule (DSL text or a rule name) or a torch baseline (sgd, momentum, adam, rmsprop).

    Raises NosError only for the user's mistakes (bad rule text, missing data); anything that goes
    wrong inside training is an `error` result.
    """
    from nos_symbolic.prescreen import prescreen
    from nos_symbolic.rule import parse_rule
    from nos_symbolic.tasks.baselines import BASELINES

    task = task_for(config)
    if spec in BASELINE_NAMES:
        factory = BASELINES[spec]
    else:
        rule = parse_rule(spec)
        screen = prescreen(rule, config.descent_threshold)
        if not screen.passed:
            return EvalResult(status="rejected", seed=config.seed, reason=screen.reason)
        factory = rule_factory(rule, config.seed)
    return run_protocol(task, factory, config)


def run_protocol(task, factory, config: EvalConfig) -> EvalResult:
    """The lr grid and the final run, with failures turned into `error` results."""
    from nos_symbolic.tasks.train import evaluate_factory

    import torch

    start = time.perf_counter()
    threads = torch.get_num_threads()
    # One thread, as in a worker process: float reductions then add up in the same order, so a rule
    # scores the same in this process and on any worker. (Child networks this small gain little from
    # more threads; parallelism comes from running evaluations side by side.)
    torch.set_num_threads(1)
    # Wild rules drive weights into subnormal floats, which x86 processes up to 100x slower; flushing
    # them to zero keeps such an evaluation from running into the timeout.
    flush = torch.set_flush_denormal(True)
    try:
        return evaluate_factory(task, factory, lrs=config.lrs, epochs=config.epochs,
                                grid_epochs=config.grid_epochs, seed=config.seed, device=config.device)
    except Exception as err:  # a wild rule or a bug in one evaluation must not end a search
        return EvalResult(status="error", seed=config.seed, seconds=time.perf_counter() - start,
                          reason=f"{type(err).__name__}: {err}"[:500])
    finally:
        torch.set_num_threads(threads)
        if flush:
            torch.set_flush_denormal(False)


def evaluate_job(payload: dict[str, Any]) -> EvalResult:
    """Worker entry point: payload = {"rule": text, "config": EvalConfig.to_dict()}."""
    return evaluate(payload["rule"], EvalConfig.from_dict(payload["config"]))


def warm_worker(config: dict[str, Any]) -> None:
    """Worker initializer: build the task's data once per process."""
    task_for(EvalConfig.from_dict(config))
