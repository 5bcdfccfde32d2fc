"""A tabular replay of the search strategies: no child training, rewards from a lookup table.

    python bench/bench_strategies.py [--table bench/fidelity_truth.csv|RUN_DIR] [--seeds 10] [--budget 300]
                                     [--strategies ppo-mean ppo-best evolution random] [--target 0.80]

The table is the fidelity study's truth (each rule's test accuracy after 30 epochs, lr tuned: the
long-horizon reward), or the rewards of the trained rules of a run's store (read-only), keyed by rule
key and by fingerprint. A rule outside the table that passes the pre-screen is scored by a behavioural nearest
neighbour: with s = max(0, cosine of its update with the closest table rule's, on the pre-screen's 16
descent probes, each probe's update scaled to unit norm),

    reward = s * r_nearest + (1 - s) * r_low      (r_low: the table's 10th percentile of trained rewards)

A rejected rule scores 0 and costs no budget; a rule drawn again is a cache hit (its reward again, no
budget), as in the search, which this loop follows: rounds of 16 new evaluations, observed in proposal
order. Per strategy and seed it records the best reward after each evaluation (the anytime curve);
it prints per strategy the mean best, with a 95% t-band, at a few budgets, the evaluations until the
best first reaches --target (median over seeds; budget + 1 when never), the share of samples rejected,
and Welch's t-test and the Mann-Whitney U test of the final best against random's (two-sided).
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy import stats

from controller.screen import passes
from controller.space import SearchSpace
from controller.store import RunStore
from controller.strategies import Strategy, build_strategy
from nos_symbolic.prescreen import descent_probes
from nos_symbolic.probes import probe_outputs
from nos_symbolic.rule import Rule, parse_rule

ROUND_SIZE = 16
MAX_SAMPLES_PER_ROUND = 50  # x ROUND_SIZE, as the search
CHECKPOINTS = (25, 50, 100, 200, 300)
# name -> (strategy, constructor options)
VARIANTS: dict[str, tuple[str, dict]] = {
    "ppo-mean": ("ppo", {}),
    "ppo-best": ("ppo", {"objective": "best"}),
    "ppo-best-warm": ("ppo", {"objective": "best", "warm_start": ("all",)}),
    "ppo-mean-nomask": ("ppo", {"screen": False}),
    "evolution": ("evolution", {}),
    "evolution-warm": ("evolution", {"warm_start": ("all",)}),
    "evolution-nomask": ("evolution", {"screen": False}),
    "random": ("random", {}),
    "random-mask": ("random", {"screen": True}),
}


def behaviour(rule: Rule) -> np.ndarray | None:
    """The rule's updates on the descent probes, each scaled to unit norm and concatenated (None when
    one is zero or not finite)."""
    parts = []
    for env in descent_probes():
        u = probe_outputs(rule.program, env)
        norm = np.linalg.norm(u)
        if not np.isfinite(u).all() or not np.isfinite(norm) or norm == 0:
            return None
        parts.append(u / norm)
    return np.concatenate(parts) / np.sqrt(len(parts))


@dataclass
class Table:
    """Rewards by key and fingerprint, and the behaviours of the table's trained rules."""

    by_key: dict[str, float]
    by_fingerprint: dict[str, float]
    behaviours: np.ndarray  # [N, D]
    rewards: np.ndarray  # [N]
    low: float

    @classmethod
    def from_store(cls, path: Path) -> "Table":
        store = RunStore.open_readonly(path)
        try:
            trained = [r for r in store.rules() if r.result.status != "rejected"]
        finally:
            store.close()
        rows = [(behaviour(parse_rule(r.text)), r.result.reward) for r in trained]
        rows = [(b, r) for b, r in rows if b is not None]
        rewards = np.array([r for _, r in rows])
        return cls({r.key: r.result.reward for r in trained}, {r.fingerprint: r.result.reward for r in trained},
                   np.stack([b for b, _ in rows]), rewards, float(np.percentile(rewards, 10)))

    @classmethod
    def from_csv(cls, path: Path) -> "Table":
        """The fidelity study's truth (bench/fidelity_truth.csv): each rule's test accuracy after 30
        epochs with its lr tuned, the long-horizon reward; torch's baselines (not DSL rules) left out."""
        import csv

        from nos_symbolic.evaluate import BASELINE_NAMES

        with open(path, newline="") as f:
            table = [(parse_rule(row["rule"]), float(row["truth"])) for row in csv.DictReader(f)
                     if row["truth"] and row["rule"] not in BASELINE_NAMES]
        rows = [(behaviour(rule), truth) for rule, truth in table]
        rows = [(b, r) for b, r in rows if b is not None]
        rewards = np.array([r for _, r in rows])
        return cls({rule.key: truth for rule, truth in table}, {rule.fingerprint: truth for rule, truth in table},
                   np.stack([b for b, _ in rows]), rewards, float(np.percentile(rewards, 10)))

    def score(self, rule: Rule) -> float:
        """The table's reward, else the nearest neighbour's surrogate (module docstring)."""
        if rule.key in self.by_key:
            return self.by_key[rule.key]
        if rule.fingerprint in self.by_fingerprint:
            return self.by_fingerprint[rule.fingerprint]
        b = behaviour(rule)
        if b is None:
            return 0.0
        similarity = self.behaviours @ b  # [N], cosines in [-1, 1]
        nearest = int(np.argmax(similarity))
        s = max(0.0, float(similarity[nearest]))
        return s * float(self.rewards[nearest]) + (1 - s) * self.low


@dataclass
class Replay:
    curve: list[float]  # best reward after each evaluation
    samples: int
    rejected: int


def replay(strategy: Strategy, score: Callable[[str], float], budget: int) -> Replay:
    """The search loop against a table: rounds of ROUND_SIZE new evaluations, hits and rejects free."""
    seen: dict[str, float] = {}
    curve: list[float] = []
    samples = rejected = 0
    while len(curve) < budget:
        scored, new = [], 0
        target = min(ROUND_SIZE, budget - len(curve))
        while new < target and len(scored) < MAX_SAMPLES_PER_ROUND * ROUND_SIZE:
            proposal = strategy.propose(1)[0]
            rule = _rule(proposal.text)
            samples += 1
            identity = rule.fingerprint
            if identity not in seen:
                ok = passes(proposal.text)
                seen[identity] = score(proposal.text) if ok else 0.0
                if ok:
                    new += 1
                    curve.append(max(seen[identity], curve[-1] if curve else 0.0))
            rejected += not passes(proposal.text)
            scored.append((proposal, seen[identity]))
        strategy.observe(scored)
        if new == 0:
            break  # the strategy found nothing new in a whole round
    return Replay(curve + [curve[-1]] * (budget - len(curve)) if curve else [0.0] * budget, samples, rejected)


@lru_cache(maxsize=65536)
def _rule(text: str) -> Rule:
    return parse_rule(text)


def band(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, float(stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5)


def first_reaching(curve: list[float], target: float) -> int:
    """The 1-based evaluation at which the best first reaches target; len(curve) + 1 when never."""
    return next((i + 1 for i, best in enumerate(curve) if best >= target), len(curve) + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default=str(Path(__file__).resolve().parent / "fidelity_truth.csv"),
                        help="the rewards: the fidelity study's CSV (30-epoch truth; the default) or a run directory "
                             "(its store's 3-epoch rewards)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--strategies", nargs="+", default=["ppo-mean", "ppo-best", "evolution", "random"],
                        choices=list(VARIANTS))
    parser.add_argument("--target", type=float, default=0.80, help="the quality whose first reach is timed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = Path(args.table)
    table = Table.from_store(source) if source.is_dir() else Table.from_csv(source)
    score = lru_cache(maxsize=None)(lambda text: table.score(_rule(text)))
    print(f"table: {len(table.by_key)} trained rules of {args.table} (best {table.rewards.max():.4f}, "
          f"r_low {table.low:.4f}); budget {args.budget}, seeds 0..{args.seeds - 1}, target {args.target}")
    results: dict[str, list[Replay]] = {}
    for name in args.strategies:
        kind, options = VARIANTS[name]
        start = time.perf_counter()
        results[name] = [replay(build_strategy(kind, SearchSpace(), seed=seed, round_size=ROUND_SIZE,
                                               **options), score, args.budget) for seed in range(args.seeds)]
        print(f"  {name}: {time.perf_counter() - start:.0f} s", flush=True)
    report(results, args.budget, args.target)


def report(results: dict[str, list[Replay]], budget: int, target: float) -> None:
    """The anytime table, the first reach of target, the rejected share and the tests against random."""
    points = [c for c in CHECKPOINTS if c <= budget]
    print("\nbest reward after N evaluations: mean +- 95% t-band over seeds")
    print(f"{'strategy':<18}" + "".join(f"{f'N={n}':>17}" for n in points)
          + f"{'reach':>8}{'rejected':>10}{'Welch p':>9}{'MWU p':>8}")
    random_final = [r.curve[-1] for r in results["random"]] if "random" in results else None
    for name, runs in results.items():
        cells = "".join(f"{'%.4f +- %.4f' % band([r.curve[n - 1] for r in runs]):>17}" for n in points)
        reach = statistics.median(first_reaching(r.curve, target) for r in runs)
        rejected = sum(r.rejected for r in runs) / max(1, sum(r.samples for r in runs))
        final = [r.curve[-1] for r in runs]
        welch = mwu = float("nan")
        if random_final is not None and name != "random":
            welch = stats.ttest_ind(final, random_final, equal_var=False).pvalue
            mwu = stats.mannwhitneyu(final, random_final, alternative="two-sided").pvalue
        print(f"{name:<18}{cells}{reach:>8.0f}{rejected:>10.1%}{welch:>9.3f}{mwu:>8.3f}")


if __name__ == "__main__":
    main()
