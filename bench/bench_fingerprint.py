"""Functional deduplication: how many functionally equal rules the fingerprint meets, before and after.

    python bench/bench_fingerprint.py [--n 2000] [--seed 0]

"before" is the old fingerprint: the probe outputs with delta = 1e-8 rounded to 20 bits of mantissa.
"after" is today's: outputs with delta = 1e-30 rounded to 16 bits (probes.py), each candidate confirmed by
`same_behaviour`. Ground truth: two rules behave the same when their probe outputs (delta = 1e-8)
match within tolerance (probes.outputs_match), compared over all pairs.

Prints, for a set of hand-made equal pairs and for N random rules of the default search space
(controller.space.SearchSpace, uniform tokens): the share of behaviour-equal pairs of distinct keys
that share a fingerprint; how many distinct keys collapse onto an earlier rule's behaviour (trainings a
store can skip) against the ground truth; wrong merges by the fingerprint alone; and the time per rule.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from controller.space import SearchSpace
from nos_symbolic.compile import compile_expr
from nos_symbolic.probes import FLUSH, MATCH_RTOL, fingerprint_form, fingerprints, hash_outputs, probe_outputs
from nos_symbolic.rule import Rule, parse_rule, same_behaviour

OLD_MANTISSA_BITS = 20

PAIRS = [
    ("g / 1", "g"), ("g * 2 / 2", "g"), ("(g * 3) / 3", "g"), ("sqrt(g2)", "sign(g) * g"),
    ("m / 1 / 1", "m"), ("g / 2", "0.5 * g"), ("exp(g / 1)", "exp(g)"), ("clip(g * 2 / 2, 1e-3)", "clip(g, 1e-3)"),
    ("rmsprop / 1", "g / sqrt(v)"), ("sign(g) * exp(sign(m) * sign(g) / 1) * abs(g)", "powersign"),
    ("adam * 2 / 2", "adam"), ("(g + m) / 1 - m / 1", "g"), ("g * ld / 1", "ld * g"),
    ("drop(g, 0.5) / 1", "drop(g, 0.5)"), ("exp(log(g) / 1)", "abs(g)"), ("sign(m) / 1 * g", "g * sign(m)"),
]


def old_fingerprint(rule: Rule) -> str:
    return hash_outputs(probe_outputs(rule.program), OLD_MANTISSA_BITS)


def behaviour_classes(outputs: np.ndarray) -> np.ndarray:
    """Ground truth: the class of each row, rows joined when outputs_match (union-find over pairs)."""
    n = len(outputs)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    finite = np.isfinite(outputs)
    nan = np.isnan(outputs)
    peak = np.array([np.max(np.abs(r[f])) if f.any() else 0.0 for r, f in zip(outputs, finite)])
    clean = np.where(finite, outputs, 0.0)
    with np.errstate(all="ignore"):
        for i in range(n):
            same_kind = (finite == finite[i]).all(1) & (nan == nan[i]).all(1)
            same_inf = (np.where(finite | nan, 0.0, outputs) == np.where(finite[i] | nan[i], 0.0, outputs[i])).all(1)
            atol = FLUSH * np.maximum(peak, peak[i])[:, None]
            close = (np.abs(clean - clean[i]) <= atol + MATCH_RTOL * np.abs(clean)).all(1)
            for j in np.flatnonzero(same_kind & same_inf & close):
                parent[find(int(j))] = find(i)
    return np.array([find(i) for i in range(n)])


def collapse(keys: list[str]) -> int:
    """How many rules share their key with an earlier one."""
    return len(keys) - len(set(keys))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    caught = {"before": 0, "after": 0}
    for a, b in PAIRS:
        ra, rb = parse_rule(a), parse_rule(b)
        caught["before"] += old_fingerprint(ra) == old_fingerprint(rb)
        caught["after"] += ra.fingerprint == rb.fingerprint and same_behaviour(ra, rb)
    print(f"hand-made equal pairs: {len(PAIRS)}; caught before {caught['before']}, after {caught['after']}")

    space, rng = SearchSpace(), np.random.default_rng(args.seed)
    texts = [space.render(space.sample_uniform(rng)) for _ in range(args.n)]
    parse_rule("g")
    start = time.process_time()
    rules = [parse_rule(t) for t in texts]
    parse_cpu = time.process_time() - start
    by_key = list({r.key: r for r in rules}.values())  # one rule per distinct key

    before = [old_fingerprint(r) for r in by_key]
    old_cpu = _fingerprint_cpu(by_key, lambda r: hash_outputs(probe_outputs(compile_expr(r.canonical)),
                                                               OLD_MANTISSA_BITS))
    new_cpu = _fingerprint_cpu(by_key, _new_fingerprint_work)

    truth = behaviour_classes(np.stack([probe_outputs(r.program) for r in by_key]))
    after_groups: dict[str, list[Rule]] = {}
    confirmed = 0  # rules that find an earlier, confirmed-equal rule under their fingerprint
    checks, check_cpu = 0, 0.0
    for r in by_key:
        group = after_groups.setdefault(r.fingerprint, [])
        start = time.process_time()
        hit = any(same_behaviour(r, other) for other in group)
        check_cpu += time.process_time() - start
        checks += len(group)
        confirmed += hit
        group.append(r)

    n_keys, redundant = len(by_key), collapse([str(c) for c in truth])
    pairs = [(i, j) for c in set(truth) for i in np.flatnonzero(truth == c) for j in np.flatnonzero(truth == c) if i < j]
    after_fp = [r.fingerprint for r in by_key]
    pair_hits = {"before": sum(before[i] == before[j] for i, j in pairs),
                 "after": sum(after_fp[i] == after_fp[j] for i, j in pairs)}
    wrong = {"before": _wrong_merges(before, truth), "after": _wrong_merges(after_fp, truth)}

    print(f"random rules: {args.n} ({n_keys} distinct keys, {n_keys - redundant} distinct behaviours)")
    print(f"behaviour-equal pairs of distinct keys: {len(pairs)}; sharing a fingerprint: "
          f"before {pair_hits['before']} ({_pct(pair_hits['before'], len(pairs))}), "
          f"after {pair_hits['after']} ({_pct(pair_hits['after'], len(pairs))})")
    print(f"distinct keys collapsing onto an earlier behaviour: truth {redundant}; "
          f"before {collapse(before) - wrong['before']} ({_pct(collapse(before) - wrong['before'], redundant)}), "
          f"after {confirmed} ({_pct(confirmed, redundant)}) with confirmation")
    print(f"wrong merges by the fingerprint alone: before {wrong['before']}, after {wrong['after']} "
          f"(after confirmation: 0)")
    print(f"CPU time per rule: parse + key + flags + fingerprints {1e3 * parse_cpu / args.n:.2f} ms; "
          f"probes and fingerprints (compile + probe + hash) before {1e3 * old_cpu:.3f} ms, after "
          f"{1e3 * new_cpu:.3f} ms; same_behaviour {1e3 * check_cpu / max(checks, 1):.3f} ms a check "
          f"({checks} checks)")


def _new_fingerprint_work(rule: Rule) -> None:
    """What parse_rule now does for flags and fingerprints: probe the rule, and its form with
    delta = 1e-30 when it has a protected division."""
    outputs = probe_outputs(compile_expr(rule.canonical))
    shrunk = fingerprint_form(rule.canonical)
    fingerprints(outputs if shrunk is rule.canonical else probe_outputs(compile_expr(shrunk)))


def _fingerprint_cpu(rules: list[Rule], fingerprint) -> float:
    """CPU seconds per rule of `fingerprint`, every rule compiled afresh."""
    compile_expr.cache_clear()
    start = time.process_time()
    for r in rules:
        fingerprint(r)
    return (time.process_time() - start) / len(rules)


def _wrong_merges(fingerprints: list[str], truth: np.ndarray) -> int:
    """Rules whose fingerprint meets an earlier rule of another behaviour and of none of its own."""
    seen: dict[str, set] = {}
    wrong = 0
    for fp, cls in zip(fingerprints, truth):
        classes = seen.setdefault(fp, set())
        wrong += bool(classes) and cls not in classes
        classes.add(cls)
    return wrong


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "-"


if __name__ == "__main__":
    main()
