"""The share of samples the pre-screen rejects, with the sampling mask off and on (no training).

Each strategy is built fresh and asked for N proposals one at a time (as the search asks); every proposal
is parsed and pre-screened (nos_symbolic/prescreen.py), nothing is trained and nothing is observed, so
PPO's policy stays at its initialisation. Printed per strategy: the rejected share of samples and of
distinct rules, with the mask off (`screen=False`) and on (controller/screen.py), and the seconds per
proposal.

    python bench/bench_sampling.py                 # 2000 samples each, mask off then on
    python bench/bench_sampling.py --n 500 --strategies ppo --no-before
"""
from __future__ import annotations

import argparse
import time

from controller.screen import passes
from controller.space import SearchSpace
from controller.strategies import build_strategy

STRATEGIES = ("ppo", "random", "evolution")


def rejected_share(name: str, screen: bool, n: int, seed: int) -> tuple[float, float, float]:
    """(rejected share of samples, rejected share of distinct rules, seconds per proposal)."""
    strategy = build_strategy(name, SearchSpace(), seed=seed, round_size=16, screen=screen)
    start = time.perf_counter()
    texts = [strategy.propose(1)[0].text for _ in range(n)]
    seconds = (time.perf_counter() - start) / n
    verdicts = {text: passes(text) for text in set(texts)}
    by_sample = sum(not verdicts[t] for t in texts) / n
    by_rule = sum(not ok for ok in verdicts.values()) / len(verdicts)
    return by_sample, by_rule, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="proposals per strategy and setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--no-before", action="store_true", help="skip the mask-off measurement")
    parser.add_argument("--no-mask", action="store_true", help="measure with the mask off only")
    args = parser.parse_args()
    settings = [False] if args.no_mask else ([True] if args.no_before else [False, True])
    print(f"{args.n} proposals per row, seed {args.seed}; a fresh strategy (evolution: no rewards, so "
          f"every proposal is one of its uniform samples)")
    print(f"{'strategy':<10} {'mask':<5} {'rejected samples':>17} {'rejected rules':>15} {'ms/proposal':>12}")
    for name in args.strategies:
        for screen in settings:
            by_sample, by_rule, seconds = rejected_share(name, screen, args.n, args.seed)
            print(f"{name:<10} {'on' if screen else 'off':<5} {by_sample:>17.1%} {by_rule:>15.1%} "
                  f"{1000 * seconds:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
