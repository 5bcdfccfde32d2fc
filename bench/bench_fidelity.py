"""Which cheap reward ranks rules as full-length training does? A fidelity study on mnist1d.

    python bench/bench_fidelity.py rules RUN_DIR      # pick the rule set from a run (writes the CSV's rules)
    python bench/bench_fidelity.py truth [--workers 2]    # fill in the truth (resumable: rows already there are kept)
    python bench/bench_fidelity.py protocols [--workers 2]   # score the rules under every candidate protocol
    python bench/bench_fidelity.py study [--workers 2]    # every candidate protocol against the truth

The rule set (bench/fidelity_truth.csv, kept in the repository so the study repeats without the
truth's compute): the distinct trained rules of a real search run spread over its reward range (its
top 30 and every k-th of the rest, whatever their status), the named rules (PowerSign, AddSign and
their decays), torch's baselines with Adam-with-cosine-decay, and sign-momentum / Adam with a decay.

The truth of a rule: its test accuracy after 30 epochs, the lr tuned at that length. The lr the
halving protocol's screens pick for a 30-epoch run (l*) and its neighbours l* x 10^(k/2), k = -2..1,
each trained the whole 30 epochs on seed A (extended downwards while the lowest wins), the best by
final validation accuracy retrained on seed B; truth = mean test accuracy of A and B (a run that
diverges or fails counts as chance, 0.1). Seeds A, B = 101, 102, disjoint from the search's seed 0.
The truth's own noise is printed: the rank correlation of seed A's and seed B's test accuracies.

A candidate protocol scores every rule once (seed 0, no hurdle); its figures are the Spearman rank
correlation with the truth, how many of the truth's top 10 its own top 10 holds, and optimizer steps
per evaluation, and the truth of the rules it ranks first (its top 1, the best of its top 3: what a
search's leaderboard hands a user). `promotion` is simulated from the per-length results: every rule at 3 epochs, the
best quarter of those at 10, the best quarter of those at 30; rules are ranked by the longest
length reached, then by their score there; its steps count each rule's runs at every length it got.
Results are cached in bench/.fidelity_cache.jsonl, so a second run redoes nothing.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing as mp
import sys
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRUTH_CSV = HERE / "fidelity_truth.csv"
CACHE = HERE / ".fidelity_cache.jsonl"
TRUTH_EPOCHS = 30
TRUTH_SEEDS = (101, 102)
CHANCE = 0.1
HALF = math.sqrt(10.0)
COLUMNS = ("rule", "source", "search_reward", "lr", "val_a", "test_a", "test_b", "truth", "status", "steps")
NAMED = ("powersign", "addsign", "powersign-ld", "powersign-cd", "powersign-rd", "addsign-ld",
         "addsign-cd", "addsign-rd")
BASELINES = ("sgd", "momentum", "adam", "rmsprop", "adam-cosine")
VARIANTS = ("sign(m)", "sign(m)*ld", "sign(m)*cd", "adam*ld", "adam*cd", "drop(sign(m), 0.1)", "m", "m*ld",
            "sign(g)", "g*ld", "rmsprop*cd", "sign(m)*rd")
# name -> (final epochs, wrap every optimizer in a cosine decay to zero, halving knob overrides)
PROTOCOLS: dict[str, tuple[int, bool, dict]] = {
    "halving-3": (3, False, {}),
    "halving-3-anneal": (3, True, {}),
    "halving-10": (10, False, {}),
    "halving-10-anneal": (10, True, {}),
    "long-screen-10": (10, False, {"screen_epochs": 1.0, "halvings": 1, "hurdle_epoch": 3,
                                   "lrs": (1e-3, 1e-2, 1e-1)}),
    "halving-30": (30, False, {}),
}


# --- one evaluation (worker side) -------------------------------------------------------------------

def _init() -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)


def _factory(spec: str, seed: int, anneal: bool = False):
    from nos_symbolic.evaluate import BASELINE_NAMES, rule_factory
    from nos_symbolic.rule import parse_rule
    from nos_symbolic.tasks.baselines import BASELINES as TORCH, cosine_to_zero

    factory = TORCH[spec] if spec in BASELINE_NAMES else rule_factory(parse_rule(spec), seed)
    return cosine_to_zero(factory) if anneal else factory


def _task():
    from nos_symbolic.evaluate import EvalConfig, task_for

    return task_for(EvalConfig(epochs=TRUTH_EPOCHS))


def _acc(x):
    return CHANCE if x is None else x


def truth_job(spec: str) -> dict:
    """The truth row of one rule (see the module docstring)."""
    from nos_symbolic.tasks.protocol import DEFAULT_HALVING, halving
    from nos_symbolic.tasks.train import train_run

    task, (a, b) = _task(), TRUTH_SEEDS
    screened = halving(task, _factory(spec, a), epochs=TRUTH_EPOCHS, seed=a, knobs=replace(DEFAULT_HALVING, tail=1))
    steps = screened.steps
    if screened.lr is None:
        return {"rule": spec, "lr": "", "val_a": "", "test_a": CHANCE, "test_b": CHANCE, "truth": CHANCE,
                "status": screened.status, "steps": steps}
    runs = {screened.lr: (screened.status, screened.val_acc, screened.test_acc)}

    def run(lr: float, seed: int):
        out = train_run(task, _factory(spec, seed), lr, TRUTH_EPOCHS, seed, test=True)
        nonlocal steps
        steps += out.steps
        return out.status, (out.val_acc if out.status == "ok" else None), out.test_acc

    for k in (-2, -1, 1):
        lr = screened.lr * HALF ** k
        runs[lr] = run(lr, a)
    while min(runs) == max(runs, key=lambda lr: _acc(runs[lr][1])) and min(runs) > 1e-7:
        low = min(runs) / HALF
        runs[low] = run(low, a)
    best = max(sorted(runs), key=lambda lr: _acc(runs[lr][1]) if runs[lr][0] == "ok" else -1)
    status_a, val_a, test_a = runs[best]
    status_b, _, test_b = run(best, b)
    test_a = test_a if status_a == "ok" else None
    test_b = test_b if status_b == "ok" else None
    return {"rule": spec, "lr": f"{best:.3g}", "val_a": "" if val_a is None else f"{val_a:.4f}",
            "test_a": f"{_acc(test_a):.4f}", "test_b": f"{_acc(test_b):.4f}",
            "truth": f"{(_acc(test_a) + _acc(test_b)) / 2:.4f}",
            "status": status_a if status_a != "ok" else status_b, "steps": steps}


def protocol_job(job: tuple[str, str]) -> dict:
    """One rule under one candidate protocol, seed 0, no hurdle."""
    from nos_symbolic.tasks.protocol import DEFAULT_HALVING, halving
    from nos_symbolic.tasks.train import DEFAULT_LRS

    spec, name = job
    epochs, anneal, knobs = PROTOCOLS[name]
    knobs = dict(knobs)
    lrs = knobs.pop("lrs", DEFAULT_LRS)
    try:
        r = halving(_task(), _factory(spec, 0, anneal), lrs=lrs, epochs=epochs, seed=0,
                    knobs=replace(DEFAULT_HALVING, **knobs))
        score, steps = (r.val_acc if r.status == "ok" else None), r.steps
    except Exception as err:  # a wild rule: scored as chance, as the search would record an error
        score, steps = None, 0
        print(f"  {spec} under {name}: {type(err).__name__}: {err}", file=sys.stderr)
    return {"rule": spec, "protocol": name, "score": score, "steps": steps}


# --- the rule set and the truth (driver side) ---------------------------------------------------------

def read_truth() -> list[dict]:
    if not TRUTH_CSV.exists():
        return []
    with open(TRUTH_CSV, newline="") as f:
        return list(csv.DictReader(f))


def write_truth(rows: list[dict]) -> None:
    with open(TRUTH_CSV, "w", newline="") as f:
        out = csv.DictWriter(f, COLUMNS)
        out.writeheader()
        out.writerows({c: row.get(c, "") for c in COLUMNS} for row in rows)


def pick_rules(run_dir: Path, top: int = 30, spread: int = 65) -> list[dict]:
    """The rule set: a run's distinct trained rules (its top `top` and `spread` more evenly over the
    rest of its ranking), then the named rules, the baselines and the decay variants."""
    from controller.store import RunStore

    with RunStore.open_readonly(run_dir) as store:
        trained = [r for r in store.rules() if r.result.status not in ("rejected", "error")]
    seen, distinct = set(), []
    for r in sorted(trained, key=lambda r: -r.result.reward):
        if r.fingerprint not in seen:
            seen.add(r.fingerprint)
            distinct.append(r)
    rest = distinct[top:]
    step = max(1, len(rest) / spread)
    chosen = distinct[:top] + [rest[int(i * step)] for i in range(min(spread, len(rest)))]
    from nos_symbolic.dsl import dsl_text

    rows = [{"rule": dsl_text(r.text), "source": "run", "search_reward": f"{r.result.reward:.4f}"} for r in chosen
            if dsl_text(r.text) not in BASELINES]  # `adam` the rule is trained as torch's Adam, the baseline
    rows += [{"rule": n, "source": "named"} for n in NAMED]
    rows += [{"rule": n, "source": "baseline"} for n in BASELINES]
    have = {row["rule"] for row in rows}
    rows += [{"rule": v, "source": "variant"} for v in VARIANTS if v not in have]
    return rows


def fill_truth(workers: int) -> None:
    rows = read_truth()
    todo = [row["rule"] for row in rows if not row.get("truth")]
    by_rule = {row["rule"]: row for row in rows}
    print(f"truth: {len(rows) - len(todo)} of {len(rows)} rules done, {len(todo)} to train", file=sys.stderr)
    with mp.get_context("spawn").Pool(workers, initializer=_init) as pool:
        for i, out in enumerate(pool.imap_unordered(truth_job, todo), 1):
            by_rule[out["rule"]].update(out)
            write_truth(rows)  # after every rule: a crash loses at most the rules in flight
            print(f"  [{i}/{len(todo)}] {out['truth']}  lr {out['lr']}  {out['rule']}", file=sys.stderr)


# --- the study ------------------------------------------------------------------------------------------

def cached() -> dict[tuple[str, str], dict]:
    out = {}
    if CACHE.exists():
        for line in CACHE.read_text().splitlines():
            try:
                row = json.loads(line)
                out[(row["rule"], row["protocol"])] = row
            except (ValueError, KeyError):
                continue
    return out


def run_protocols(rules: list[str], names: list[str], workers: int) -> dict[tuple[str, str], dict]:
    done = cached()
    todo = [(r, n) for n in names for r in rules if (r, n) not in done]
    print(f"study: {len(todo)} evaluations to run", file=sys.stderr)
    if todo:
        with mp.get_context("spawn").Pool(workers, initializer=_init) as pool, open(CACHE, "a") as f:
            for i, out in enumerate(pool.imap_unordered(protocol_job, todo), 1):
                done[(out["rule"], out["protocol"])] = out
                f.write(json.dumps(out) + "\n")
                f.flush()
                if i % 50 == 0:
                    print(f"  {i}/{len(todo)}", file=sys.stderr)
    return done


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def top_overlap(rules: list[str], a: dict[str, float], b: dict[str, float], k: int = 10) -> int:
    best = lambda d: set(sorted(rules, key=lambda r: -d[r])[:k])  # noqa: E731
    return len(best(a) & best(b))


def promotion(rules: list[str], done, rungs=("halving-3", "halving-10", "halving-30"), eta: int = 4):
    """Rank by the longest rung reached, then the score there; steps of every rung a rule got."""
    alive, key, steps = list(rules), {}, {r: 0 for r in rules}
    for level, name in enumerate(rungs):
        for r in alive:
            row = done[(r, name)]
            steps[r] += row["steps"]
            key[r] = (level, _acc(row["score"]))
        alive = sorted(alive, key=lambda r: -key[r][1])[: len(alive) // eta]
    order = sorted(rules, key=lambda r: key[r], reverse=True)
    rank = {r: len(rules) - i for i, r in enumerate(order)}
    return {r: float(rank[r]) for r in rules}, sum(steps.values()) / len(rules)


def study(workers: int) -> None:
    rows = [row for row in read_truth() if row.get("truth")]
    rules = [row["rule"] for row in rows]
    truth = {row["rule"]: float(row["truth"]) for row in rows}
    a = {row["rule"]: float(row["test_a"]) for row in rows}
    b = {row["rule"]: float(row["test_b"]) for row in rows}
    print(f"{len(rules)} rules; truth = test accuracy after {TRUTH_EPOCHS} epochs, lr tuned, seeds {TRUTH_SEEDS}")
    print(f"truth's own noise: seed A vs seed B Spearman {spearman([a[r] for r in rules], [b[r] for r in rules]):.3f}, "
          f"top-10 overlap {top_overlap(rules, a, b)}/10, mean |A - B| "
          f"{100 * sum(abs(a[r] - b[r]) for r in rules) / len(rules):.2f} points")
    done = run_protocols(rules, list(PROTOCOLS), workers)
    print(f"\n| protocol | steps / evaluation | Spearman with the truth | top-10 overlap | truth of its top 1 "
          f"| best truth of its top 3 |\n|---|---:|---:|---:|---:|---:|")
    rows_out = [(name, {r: _acc(done[(r, name)]["score"]) for r in rules},
                 sum(done[(r, name)]["steps"] for r in rules) / len(rules)) for name in PROTOCOLS]
    rows_out += [(f"promotion 3 -> 10 -> 30, top 1/{eta}", *promotion(rules, done, eta=eta)) for eta in (3, 4, 6)]
    for name, score, steps in rows_out:
        ranked = sorted(rules, key=lambda r: -score[r])
        print(f"| {name} | {steps:.0f} | {spearman([score[r] for r in rules], [truth[r] for r in rules]):.3f} | "
              f"{top_overlap(rules, score, truth)}/10 | {100 * truth[ranked[0]]:.2f} | "
              f"{100 * max(truth[r] for r in ranked[:3]):.2f} |")
    best = sorted(rules, key=lambda r: -truth[r])[:12]
    print("\ntruth's top 12: " + ", ".join(f"`{r}` {100 * truth[r]:.2f}" for r in best))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("rules", "truth", "protocols", "study"))
    parser.add_argument("run_dir", nargs="?", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.what == "rules":
        if args.run_dir is None:
            parser.error("rules needs the run directory to pick rules from")
        rows = pick_rules(args.run_dir)
        write_truth(rows)
        print(f"{len(rows)} rules written to {TRUTH_CSV}")
    elif args.what == "truth":
        fill_truth(args.workers)
    elif args.what == "protocols":
        run_protocols([row["rule"] for row in read_truth()], list(PROTOCOLS), args.workers)
    else:
        study(args.workers)


if __name__ == "__main__":
    main()
