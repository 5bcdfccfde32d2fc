"""Evolution's cache-hit rate without training a network: the search loop against a synthetic reward.

    python bench/bench_evolution.py [--evaluations 300] [--round-size 16] [--seeds 3] [--reward descent]

Runs the search loop's round logic (`controller/search.py`: draw samples one by one until `round_size`
new evaluations, then observe every reward in proposal order) with the store replaced by a dict and the
training replaced by a reward that is a deterministic function of the rule:

    descent: the pre-screen's mean cos(update, g) over its descent probes (higher: more downhill)
    target:  mean cos(update, PowerSign's update) over the same probes (1 only for PowerSign's behaviour)
    hash:    the rule's key read as a number in [0, 1) (no structure: no strategy can learn it)

A sample is a cache hit when its rule's key or fingerprint was drawn before, as in the search; a rule the
pre-screen rejects is stored with reward 0 and does not count as an evaluation. Prints, per variant and
seed, the samples drawn, the cache-hit rate, the rejected share, the best and the mean reward of the last
50 evaluations, and the wall time; then the mean hit rate per variant. Variants:

    one-token: the earlier evolution, one token anywhere, the first mutation drawn
    live:      one live token (`SearchSpace.live_positions`), the first mutation drawn
    default:   one live token, the first of `mutation_tries` mutations whose rule is new

Target: the default's cache-hit rate below 50% on the default space.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from controller.space import SearchSpace
from controller.strategies import EvolutionStrategy, Strategy
from nos_symbolic.evaluate import EvalConfig
from nos_symbolic.prescreen import descent_probes, prescreen
from nos_symbolic.probes import probe_outputs
from nos_symbolic.rule import Rule, parse_rule

MAX_SAMPLES_PER_ROUND = 50  # x round_size, as in the search loop
STALL_ROUNDS = 50
TARGET_RULE = "exp(sign(g) * sign(m)) * g"  # PowerSign


def descent_reward(rule: Rule, cosine: float) -> float:
    return cosine


def hash_reward(rule: Rule, cosine: float) -> float:
    return int(rule.key[:8], 16) / 16**8


@functools.cache
def _target_outputs() -> tuple[np.ndarray, ...]:
    """The target rule's update on each descent probe (the same for every rule scored)."""
    target = parse_rule(TARGET_RULE)
    return tuple(probe_outputs(target.program, env) for env in descent_probes())


def target_reward(rule: Rule, cosine: float) -> float:
    """Mean over the descent probes of cos(update, target update), clipped at 0."""
    cosines = []
    for env, t in zip(descent_probes(), _target_outputs()):
        u = probe_outputs(rule.program, env)
        norm = np.linalg.norm(u) * np.linalg.norm(t)
        cosines.append(float(u @ t / norm) if norm > 0 and np.isfinite(norm) else 0.0)
    return max(0.0, float(np.mean(cosines)))


REWARDS: dict[str, Callable[[Rule, float], float]] = {
    "descent": descent_reward, "target": target_reward, "hash": hash_reward}


@dataclass
class Run:
    """One emulated search: per evaluation its reward, and the sample counts."""

    rewards: list[float] = field(default_factory=list)
    samples: int = 0
    hits: int = 0
    rejected: int = 0
    wall: float = 0.0

    @property
    def hit_rate(self) -> float:
        return self.hits / max(self.samples, 1)

    def best_by(self, n: int) -> float:
        """The best reward among the first n evaluations."""
        return max(self.rewards[:n], default=0.0)


def emulate(strategy: Strategy, reward: Callable[[Rule, float], float], evaluations: int,
            round_size: int) -> Run:
    """The search loop's rounds with a dict for the store and `reward` for the training, on one torch
    thread as in `Search.run`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _emulate(strategy, reward, evaluations, round_size)
    finally:
        torch.set_num_threads(threads)


def _emulate(strategy: Strategy, reward: Callable[[Rule, float], float], evaluations: int,
             round_size: int) -> Run:
    start = time.perf_counter()
    threshold = EvalConfig().descent_threshold
    stored: dict[str, float] = {}  # key or fingerprint -> reward
    parsed: dict[str, Rule] = {}  # text -> rule: a converging policy draws the same texts again and again
    run, stalled = Run(), 0
    while len(run.rewards) < evaluations and stalled < STALL_ROUNDS:
        target = min(round_size, evaluations - len(run.rewards))
        proposals, rewards, new = [], [], 0
        while new < target and len(proposals) < MAX_SAMPLES_PER_ROUND * round_size:
            proposal = strategy.propose(1)[0]
            rule = parsed.get(proposal.text) or parsed.setdefault(proposal.text, parse_rule(proposal.text))
            known = stored.get(rule.key, stored.get(rule.fingerprint))
            if known is not None:
                run.hits += 1
                value = known
            else:
                screen = prescreen(rule, threshold)
                value = reward(rule, screen.cosine) if screen.passed else 0.0
                stored[rule.key] = stored[rule.fingerprint] = value
                if screen.passed:
                    run.rewards.append(value)
                    new += 1
                else:
                    run.rejected += 1
            proposals.append(proposal)
            rewards.append(value)
        run.samples += len(proposals)
        stalled = stalled + 1 if new == 0 else 0
        if target == round_size:
            strategy.observe(list(zip(proposals, rewards)))
    run.wall = time.perf_counter() - start
    return run


class OneTokenEvolution(EvolutionStrategy):
    """The earlier evolution: one token anywhere, dead or live, the first mutation drawn."""

    def _mutant(self, parent: Sequence[int]) -> list[int]:
        return self.space.mutate(parent, self.rng)


VARIANTS: dict[str, Callable[[SearchSpace, int], Strategy]] = {
    "one-token": lambda space, seed: OneTokenEvolution(space, seed),
    "live": lambda space, seed: EvolutionStrategy(space, seed, mutation_tries=1),
    "default": lambda space, seed: EvolutionStrategy(space, seed),
}


def summary(name: str, seed: int, run: Run) -> str:
    last = run.rewards[-50:]
    return (f"{name:10s} seed {seed}: {len(run.rewards)} evaluations, {run.samples:5d} samples, "
            f"cache hits {run.hit_rate:6.1%}, "
            f"rejected {run.rejected / max(run.samples, 1):6.1%}, best {run.best_by(len(run.rewards)):.4f}, "
            f"last-50 mean {statistics.fmean(last) if last else 0.0:.4f}, {run.wall:6.1f} s")


def emulation_parser(doc: str, reward: str) -> argparse.ArgumentParser:
    """The arguments every emulated-search benchmark takes."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=300)
    parser.add_argument("--round-size", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--reward", choices=sorted(REWARDS), default=reward)
    return parser


def main() -> None:
    parser = emulation_parser(__doc__, "descent")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    space = SearchSpace()
    rates: dict[str, list[float]] = {}
    for name in args.variants:
        for seed in range(args.seeds):
            run = emulate(VARIANTS[name](space, seed), REWARDS[args.reward], args.evaluations, args.round_size)
            rates.setdefault(name, []).append(run.hit_rate)
            print(summary(name, seed, run), flush=True)
    for name, values in rates.items():
        print(f"{name:10s} mean cache-hit rate over {len(values)} seeds: {statistics.fmean(values):.1%} "
              f"(reward {args.reward}, {args.evaluations} evaluations, round size {args.round_size})")


if __name__ == "__main__":
    main()
