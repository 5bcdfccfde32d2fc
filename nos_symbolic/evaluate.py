"""Score one rule (or one of torch's baselines) on a child task: the paper's reward.

    result = evaluate("powersign-cd", EvalConfig())          # pre-screen, lr grid, final run
    result = evaluate("adam", EvalConfig())                   # torch.optim.Adam, same protocol

The protocol: (1) pre-screen the rule without training (prescreen.py); a rejection is a result with
its reason. (2) Search the learning rate and train the final run at the best, by the config's
protocol (tasks/protocol.py: `halving` by default, or the paper's grid-then-final-run `full`).
(3) Early kills end hopeless runs as diverged or failed. An evaluation that raises is recorded as
`error` with the exception, never propagated: numerically wild rules are a normal outcome of a
search. Same seed, same result on CPU.

`evaluate_job` is the entry point worker processes run: its payload is plain data (rule text and
config), and each worker builds the task's data once, not once per evaluation.
"""
from __future__ import annotations

import time
from dataclasses import replace
from functools import lru_cache
from typing import Any, Sequence

from nos_symbolic.eval_config import AUTO, BASELINE_NAMES, DEFAULT_PROTOCOL, EvalConfig, halving_pairs
from nos_symbolic.result import EvalResult

__all__ = ["AUTO", "BASELINE_NAMES", "DEFAULT_PROTOCOL", "EvalConfig", "evaluate", "evaluate_job", "halving_pairs",
           "load_task", "reward_of", "rule_factory", "run_protocol", "task_for", "warm_worker"]


@lru_cache(maxsize=4)
def load_task(name: str, options: tuple[tuple[str, Any], ...], path: str | None = None):
    """The task's data and model, built once per process and configuration; a task of the user's
    own is imported with path on sys.path."""
    from nos_symbolic.tasks import get_task, is_custom

    if is_custom(name):
        from nos_symbolic.tasks.custom import build_custom_task

        return build_custom_task(name, dict(options), path)
    return get_task(name, **dict(options))


def task_for(config: EvalConfig):
    """The task an EvalConfig names (cached)."""
    return load_task(config.task, tuple(sorted(config.get_task_options().items())), config.task_path)


def rule_factory(rule, seed: int):
    """(params, lr, total_steps) -> SymbolicOptimizer running `rule`."""
    from nos_symbolic.optim import SymbolicOptimizer

    def make(params, lr: float, total_steps: int):
        return SymbolicOptimizer(params, rule=rule, lr=lr, total_steps=total_steps, seed=seed)

    return make


def evaluate(spec: str, config: EvalConfig, curve: bool = False,
             hurdle_curves: Sequence[Sequence[tuple[int, float]]] = ()) -> EvalResult:
    """Score a rule (DSL text or a rule name) or a torch baseline (sgd, momentum, adam, rmsprop).

    curve=True also records the final run's per-epoch validation accuracy (EvalResult.val_curve).
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
    return run_protocol(task, factory, config, curve, hurdle_curves)


def run_protocol(task, factory, config: EvalConfig, curve: bool = False,
                 hurdle_curves: Sequence[Sequence[tuple[int, float]]] = ()) -> EvalResult:
    """config's protocol (the lr search and the final run), with failures turned into `error`
    results. hurdle_curves: the validation curves of the search's recent rules; the halving
    protocol's hurdle is config.hurdle_quantile of their accuracies at the hurdle step (no hurdle
    while too few reached it)."""
    from nos_symbolic.tasks.protocol import DEFAULT_HALVING, hurdle_threshold, run_named_protocol

    knobs = config.halving_knobs() or DEFAULT_HALVING
    hurdle = None
    if config.hurdle_quantile is not None and hurdle_curves:
        hurdle = hurdle_threshold(hurdle_curves, knobs.hurdle_epoch * task.steps_per_epoch,
                                  config.hurdle_quantile)

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
        result = run_named_protocol(config.protocol, task, factory, lrs=config.lrs, epochs=config.epochs,
                                    grid_epochs=config.grid_epochs, seed=config.seed, device=config.device,
                                    curve=curve, hurdle_threshold=hurdle if config.protocol != "full" else None,
                                    halving_knobs=knobs)
        return replace(result, reward=reward_of(task, result.val_acc, config.seed, config.device))
    except Exception as err:  # a wild rule or a bug in one evaluation must not end a search
        return EvalResult(status="error", seed=config.seed, seconds=time.perf_counter() - start,
                          reason=f"{type(err).__name__}: {err}"[:500])
    finally:
        torch.set_num_threads(threads)
        if flush:
            torch.set_flush_denormal(False)


def reward_of(task, val: float | None, seed: int = 0, device: str = "cpu") -> float:
    """The search's reward for a validation score val: max(0, val - floor), with floor 0 for a task
    scored by accuracy (the reward is the accuracy) and, for any other metric, the score of the
    untrained network from seed (so a rule that does no better than not training earns 0, as a
    rejected or crashed one does, whatever the metric's sign or scale). 0 when val is None."""
    from nos_symbolic.tasks import accuracy
    from nos_symbolic.tasks.train import untrained_score

    if val is None:
        return 0.0
    floor = 0.0 if task.metric is accuracy else untrained_score(task, seed, device)
    return max(0.0, val - floor)


def evaluate_job(payload: dict[str, Any]) -> EvalResult:
    """Worker entry point: payload = {"rule": text, "config": EvalConfig.to_dict()}, and optionally
    "curve": True for the per-epoch validation curve and "hurdle_curves": recent rules' validation
    curves, [[step, accuracy], ...] each (the halving protocol's hurdle)."""
    curves = [tuple((int(step), float(acc)) for step, acc in c) for c in payload.get("hurdle_curves", ())]
    return evaluate(payload["rule"], EvalConfig.from_dict(payload["config"]), bool(payload.get("curve")),
                    curves)


def warm_worker(config: dict[str, Any]) -> None:
    """Worker initializer: build the task's data once per process."""
    task_for(EvalConfig.from_dict(config))
