"""Rule-engine throughput: parse + canonical key + fingerprint for random rules of the paper's space.

    python bench/bench_rules.py [--n 5000] [--seed 0]

Prints rules per second on one core, cold (every rule new to the process) and warm (the text cache of
`parse_rule` hit), by the wall clock and by the process's CPU time (which a busy machine disturbs
less). Target: at least 500 rules/s cold, so deduplication never slows a search.
"""
from __future__ import annotations

import argparse
import random
import time

import torch

from nos_symbolic.registry import PRIMITIVES, SEARCH_CONSTANTS
from nos_symbolic.rule import parse_rule

OPERANDS = [s for p in PRIMITIVES if p.kind in ("operand", "schedule") for s in p.search] + list(SEARCH_CONSTANTS)
UNARY = [s for p in PRIMITIVES if p.kind == "unary" for s in p.search]
BINARY = [s for p in PRIMITIVES if p.kind == "binary" for s in p.search]


def random_rule(rng: random.Random, groups: int) -> str:
    """A rule of `groups` 5-token groups (op1, op2, u1, u2, b); each result joins the operand bank."""
    bank = list(OPERANDS)
    for _ in range(groups):
        x, y = (f"({rng.choice(UNARY).format(x=f'({rng.choice(bank)})')})" for _ in range(2))
        bank.append(rng.choice(BINARY).format(x=x, y=y))
    return bank[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    texts = [random_rule(rng, rng.randint(1, 3)) for _ in range(args.n)]
    parse_rule("g")  # load the grammar and probes once, outside the timing

    start, cpu = time.perf_counter(), time.process_time()
    keys = {parse_rule(t).key for t in texts}
    cold, cold_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    for t in texts:
        parse_rule(t)
    warm = time.perf_counter() - start

    print(f"rules: {len(texts)} ({len(set(texts))} distinct texts, {len(keys)} distinct keys)")
    print(f"cold: {len(texts) / cold:8.0f} rules/s  (target >= 500; {len(texts) / cold_cpu:.0f} rules/s of CPU time)")
    print(f"warm: {len(texts) / warm:8.0f} rules/s  (text cache; {cold / warm:.0f}x cold)")


if __name__ == "__main__":
    main()
