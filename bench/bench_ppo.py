"""How fast PPO finds high-reward rules against random search, under several PPO settings, with no training.

    python bench/bench_ppo.py [--evaluations 300] [--seeds 3] [--reward target] [--level 0.99 ...]
                              [--settings default lr=2e-3 ent_coef=0.01 batch_size=8 ...]
                              [--baselines random evolution]

The search loop's rounds against the synthetic rewards of bench/bench_evolution.py (deterministic per
rule; `target` by default: mean cos(update, PowerSign's update) on the pre-screen's probes, where g
scores 0.93 and only PowerSign- or AddSign-like rules reach 0.99). A setting is `default` (PPOConfig's
defaults, batch = round size as in the search) or comma-separated PPOConfig fields, e.g.
`lr=2e-3,ent_coef=0.01`. Prints, per strategy and setting, mean +- standard deviation over seeds of: the
evaluations until a reward >= each level (runs that never get there count as the budget + 1, and are
counted), the best reward after 100 evaluations and at the end, the mean reward of the last 50
evaluations; the per-seed values of the first and the best; the cache-hit rate and the wall time per run.
Random search and evolution run on the same seeds as references (`--baselines` picks them; none, to
split a long comparison over several invocations); with random among them, `p` is the two-sided Welch
t-test p-value of a strategy's evaluations-to-level or best reward against random's (with 3 seeds only
a large, steady difference gets below 0.05).
"""
from __future__ import annotations

import statistics
import warnings
from dataclasses import fields
from typing import Callable

from bench_evolution import REWARDS, Run, emulate, emulation_parser
from controller.ppo import PPOConfig
from controller.space import SearchSpace
from controller.strategies import PPOStrategy, Strategy, build_strategy

DEFAULT_SETTINGS = ("default", "lr=1e-4", "lr=2e-3", "ent_coef=0.01", "ent_coef=0.05", "batch_size=8",
                    "batch_size=32", "lr=2e-3,ent_coef=0.01")


def ppo_config(setting: str, round_size: int) -> PPOConfig:
    """PPOConfig from "default" or "name=value,..." (batch_size defaults to the round size)."""
    types = {f.name: f.type for f in fields(PPOConfig)}
    values: dict[str, object] = {"batch_size": round_size}
    for item in ([] if setting == "default" else setting.split(",")):
        name, _, value = item.partition("=")
        if name not in types:
            raise SystemExit(f"unknown PPOConfig field {name!r}; expected one of {', '.join(types)}")
        values[name] = int(value) if name in ("batch_size", "update_epochs") else float(value)
    return PPOConfig(**values)


def first_at(run: Run, level: float) -> int | None:
    """The number of evaluations until the first reward >= level, or None."""
    return next((i + 1 for i, r in enumerate(run.rewards) if r >= level), None)


def evaluations_to(runs: list[Run], level: float, evaluations: int) -> list[float]:
    """Per run, the evaluations until a reward >= level; a run that never got there counts budget + 1."""
    return [float(n) if (n := first_at(r, level)) is not None else evaluations + 1.0 for r in runs]


def spread(values: list[float], digits: int) -> str:
    """mean +- sample standard deviation over seeds."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} +- {sd:.{digits}f}"


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch t-test p-value of mean(a) = mean(b) (seeds do not pair different strategies)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None
    if statistics.pstdev(a) == statistics.pstdev(b) == 0:  # scipy gives NaN; the answer is plain
        return 1.0 if a[0] == b[0] else 0.0
    with warnings.catch_warnings():  # best rewards equal to the last digits: scipy warns, p is near 1
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def report(label: str, runs: list[Run], levels: list[float], evaluations: int,
           reference: list[Run] | None) -> str:
    """One line per strategy: means +- sd over seeds, per-seed values, and Welch p against random."""
    parts = [f"{label:26s}"]
    best = [r.best_by(evaluations) for r in runs]
    for level in levels:
        until = evaluations_to(runs, level, evaluations)
        reached = sum(first_at(r, level) is not None for r in runs)
        parts.append(f"evals to >= {level}: {spread(until, 1)} [{' '.join(f'{n:.0f}' for n in until)}] "
                     f"({reached}/{len(runs)})")
        if reference is not None:
            parts.append(f"p {_p(welch_p(until, evaluations_to(reference, level, evaluations)))}")
    parts.append(f"best@100 {spread([r.best_by(100) for r in runs], 4)}")
    parts.append(f"best {spread(best, 4)} [{' '.join(f'{b:.4f}' for b in best)}]")
    if reference is not None:
        parts.append(f"p {_p(welch_p(best, [r.best_by(evaluations) for r in reference]))}")
    parts.append(f"last-50 {spread([statistics.fmean(r.rewards[-50:]) for r in runs], 4)}")
    parts.append(f"hits {statistics.fmean(r.hit_rate for r in runs):5.1%}")
    parts.append(f"{statistics.fmean(r.wall for r in runs):5.1f} s/run")
    return "  ".join(parts)


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3f}"


def main() -> None:
    parser = emulation_parser(__doc__, "target")
    parser.add_argument("--level", type=float, nargs="+", default=[0.99])
    parser.add_argument("--settings", nargs="*", default=list(DEFAULT_SETTINGS))
    parser.add_argument("--baselines", nargs="*", choices=("random", "evolution"), default=["random", "evolution"])
    args = parser.parse_args()
    space = SearchSpace()
    reward = REWARDS[args.reward]

    def runs(make: Callable[[int], Strategy]) -> list[Run]:
        return [emulate(make(seed), reward, args.evaluations, args.round_size) for seed in range(args.seeds)]

    # Random search, when it runs, is the reference of every p-value.
    reference = None
    for name in args.baselines:
        found = runs(lambda seed: build_strategy(name, space, seed))
        print(report(name, found, args.level, args.evaluations, reference), flush=True)
        reference = found if name == "random" else reference
    for setting in args.settings:
        config = ppo_config(setting, args.round_size)
        print(report(f"ppo {setting}", runs(lambda seed: PPOStrategy(space, seed, config=config)), args.level,
                     args.evaluations, reference), flush=True)


if __name__ == "__main__":
    main()
