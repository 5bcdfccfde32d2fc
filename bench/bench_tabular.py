"""A tabular benchmark of the search strategies (NAS-Bench-101 style): every distinct rule of a small
1-group space trained once, then the real strategies replayed against the table many times.

    python bench/bench_tabular.py table  [--vocab mini|full] [--out bench/tabular_1group.csv]
                                         [--max-rules N] [--count-only]
    python bench/bench_tabular.py replay [--seeds 100] [--budget 200] [--strategies random ppo-mean ...]
                                         [--quantiles 99 95] [--save RUNS.json]
    python bench/bench_tabular.py report RUNS.json [--budget N] [--quantiles 99.5 99]
    python bench/bench_tabular.py noise  [--top 24] [--seeds 1 2]

(Run from the repository root with the package importable: `pip install -e .` or PYTHONPATH=.)

`table` enumerates every token sequence of the 1-group space (n_groups=1) over the vocabulary
`--vocab`, renders it, and deduplicates the rules by fingerprint: the identity under which the
search's store meets functionally equal rules (RunStore.lookup: the key, else the first rule stored
with the fingerprint), so sequences that spell the same rule, or rules SymPy cannot prove equal but
that compute the same update on the probes, are one entry. The spelling trained for an entry is its
simplest (see `enumerate_rules` for why not the first). Each entry is pre-screened; every passing
one is trained once with the search's reward (nos_symbolic.evaluate, default EvalConfig: halving
protocol, 3 epochs, mnist1d, seed 0), one process. No hurdle applies (a table rule has no "recent
rules" to be hurdled against), so each reward is that of the whole final run. The CSV holds every
entry, rejected ones too (status "rejected", reward 0): rule (the spelling trained), key,
fingerprint, sequences (token sequences that spell it), keys (distinct rule keys merged into it),
status, reward, steps, seconds, reason. Trainings are appended as they finish; a rerun keeps them
and trains only what is missing.

The full 1-group space has 381,024 sequences and up to about 2e5 distinct rules (221 distinct unary
terms by fingerprint; ordered pairs for -, / and ^, unordered for + and *), of which 12-15% pass the
pre-screen: some 3e4 trainings, about ten hours on one core. So the default vocabulary `mini` (module
constant MINI) is a subset of the search's whose passing set is exhaustively trainable in under 20
minutes: 35,280 sequences, 8,711 distinct rules, 1,084 passing. The strategies are replayed in that
same space, so the table is exact: no rule a strategy can propose is missing. With `--max-rules` a
larger passing set is subsampled deterministically (lowest sha256 of the key first); a rule left out
then counts as rejected in the replay, which makes such a table a different (smaller) space.

`replay` runs the real Strategy objects (controller/strategies.py) in the table's space, scoring
each proposal by table lookup instead of training, in the search's loop (controller/search.py, as
bench/bench_strategies.py replays it): rounds of 16 new evaluations, a rejected rule scores 0 and
costs no budget, a rule drawn again is a cache hit (its reward again, no budget), each full round
observed in proposal order. Per variant and seed it records the best reward after each evaluation;
it prints per variant the mean best and its 95% t-band at each budget, the median evaluation at which
the best first reaches the table's 99th and 95th percentile reward (budget + 1 when never) and the
share of seeds that do, and Welch's t-test and the Mann-Whitney U test (two-sided) against random's,
of the best at each budget and of the evaluations to reach each percentile. `report` prints the
same from saved runs, at other budgets or percentiles.

The table's rewards are single trainings at one seed, and a 3-epoch reward moves by a few points
from seed to seed (bench/bench_protocol.py: 3.6 points mean difference over a run's rules; `noise`
retrains the table's top rules at other seeds), so the table's best rules are partly its luckiest.
The replay measures how fast a strategy finds the rules that scored best in this table, which is
what a search with this reward does; it does not say those rules are better.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import os
import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from scipy import stats

from bench_strategies import first_reaching
from controller.search import STALL_ROUNDS
from controller.space import DEFAULT_BINARY, DEFAULT_OPERANDS, DEFAULT_UNARY, SearchSpace
from controller.strategies import Strategy, build_strategy
from nos_symbolic.errors import NosError
from nos_symbolic.prescreen import prescreen
from nos_symbolic.rule import Rule, parse_rule

HERE = Path(__file__).resolve().parent
DEFAULT_TABLE = HERE / "tabular_1group.csv"
FIELDS = ("rule", "key", "fingerprint", "sequences", "keys", "status", "reward", "steps", "seconds", "reason")

# The mini vocabulary: what the named optimizers need (g, m, adam, rmsprop, their signs, the decays
# ld and cd, the constant 1 and keep, so sgd, momentum, adam, rmsprop and their -ld/-cd variants are
# warm starts), the unary functions that change a direction's shape (exp, log, sqrt, sign, neg) and
# the four arithmetic binaries. Left out: noise, anneal, drop (stochastic), weight decay, clip, rd and
# ^: together they would multiply the passing set past what one core trains in an hour.
MINI: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] = (
    ("g", "sign(g)", "g2", "g3", "m", "sign(m)", "v", "y", "adam", "rmsprop", "ld", "cd", "1", "2"),
    ("{x}", "neg({x})", "exp({x})", "log({x})", "sqrt({x})", "sign({x})"),
    ("{x} + {y}", "{x} - {y}", "{x} * {y}", "{x} / {y}", "keep({x}, {y})"),
)
VOCABS = {"mini": MINI, "full": (DEFAULT_OPERANDS, DEFAULT_UNARY, DEFAULT_BINARY)}

ROUND_SIZE = 16
MAX_SAMPLES_PER_ROUND = 50  # x ROUND_SIZE, as the search
BUDGETS = (10, 25, 50, 100, 200)
QUANTILES = (99.0, 95.0)  # the table percentiles whose first reach is timed
# name -> (strategy, constructor options)
VARIANTS: dict[str, tuple[str, dict]] = {
    "random": ("random", {}),
    "random-mask": ("random", {"screen": True}),
    "ppo-mean": ("ppo", {}),
    "ppo-best": ("ppo", {"objective": "best"}),
    "ppo-mean-warm": ("ppo", {"warm_start": ("all",)}),
    "ppo-best-warm": ("ppo", {"objective": "best", "warm_start": ("all",)}),
    "evolution": ("evolution", {}),
    "evolution-warm": ("evolution", {"warm_start": ("all",)}),
}


def space_of(vocab: str) -> SearchSpace:
    """The 1-group space over a named vocabulary."""
    operands, unary, binary = VOCABS[vocab]
    return SearchSpace(n_groups=1, operands=operands, unary=unary, binary=binary)


# --- the table ---


@dataclass
class Entry:
    """One distinct rule of the space (one fingerprint): the spelling trained for it, how many token
    sequences spell it and how many distinct rule keys share its fingerprint."""

    text: str
    rule: Rule
    sequences: int = 1
    keys: int = 1


def _simplicity(rule: Rule) -> tuple[int, str]:
    return len(rule.canonical_text), rule.canonical_text


def enumerate_rules(space: SearchSpace) -> list[Entry]:
    """Every distinct rule of the space, deduplicated by fingerprint, in order of first appearance.

    The spelling trained for a fingerprint is its simplest (shortest canonical text), not the first
    in token order: the fingerprint's probes hold no exact zeros and compare within a tolerance, so it
    also merges rules that differ in training, e.g. `log(sign(g)) + adam` (log(0) where a gradient is
    exactly 0: it diverges) with `adam`, or `g + exp(g)` with `exp(g)`. The simplest spelling is the
    rule the group stands for. Rendered texts are deduplicated first (cheap), so each distinct text is
    parsed once."""
    by_text: dict[str, int] = {}
    ranges = [range(space.n_valid(p)) for p in range(space.n_positions)]
    for tokens in itertools.product(*ranges):
        text = space.render(tokens)
        by_text[text] = by_text.get(text, 0) + 1
    entries: dict[str, Entry] = {}
    keys: dict[str, set[str]] = {}
    for text, count in by_text.items():
        try:
            rule = parse_rule(text)
        except (NosError, ValueError, ArithmeticError):
            continue  # cannot be built: the pre-screen would reject it; not a rule of the table
        entry = entries.get(rule.fingerprint)
        if entry is None:
            entries[rule.fingerprint] = Entry(text, rule, count)
            keys[rule.fingerprint] = {rule.key}
            continue
        entry.sequences += count
        keys[rule.fingerprint].add(rule.key)
        entry.keys = len(keys[rule.fingerprint])
        if _simplicity(rule) < _simplicity(entry.rule):
            entry.text, entry.rule = text, rule
    return list(entries.values())


def screened(entry: Entry) -> str:
    """The pre-screen's reason for rejecting the entry, "" when it passes."""
    try:
        verdict = prescreen(entry.rule)
    except (NosError, ValueError, ArithmeticError) as err:
        return f"{type(err).__name__}: {err}"[:200]
    return "" if verdict.passed else verdict.reason


def order_key(key: str) -> str:
    """A deterministic pseudo-random order of rules, independent of the vocabulary's order."""
    return hashlib.sha256(key.encode()).hexdigest()


def read_table(path: Path) -> dict[str, dict[str, str]]:
    """The CSV rows by fingerprint (empty when there is no file yet)."""
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {row["fingerprint"]: row for row in csv.DictReader(f)}


def _row(entry: Entry, **result: object) -> dict[str, object]:
    return {"rule": entry.text, "key": entry.rule.key, "fingerprint": entry.rule.fingerprint,
            "sequences": entry.sequences, "keys": entry.keys, **result}


def build_table(vocab: str, out: Path, max_rules: int | None, count_only: bool) -> None:
    """Enumerate, pre-screen and train (see the module docstring).

    The file is rewritten first with every rejected entry and every training it already holds for the
    same spelling (a training of another spelling, e.g. from before the simplest was chosen, is
    dropped and redone); then each new training is appended as it finishes."""
    from nos_symbolic.evaluate import EvalConfig, evaluate

    torch.set_num_threads(1)
    space = space_of(vocab)
    start = time.perf_counter()
    entries = enumerate_rules(space)
    reasons = [screened(e) for e in entries]
    passing = [e for e, why in zip(entries, reasons) if not why]
    print(f"{vocab}: {space.size()} sequences, {len(entries)} distinct rules (by fingerprint; "
          f"{sum(e.keys for e in entries)} by key), {len(passing)} pass the pre-screen "
          f"({len(passing) / len(entries):.1%}, {sum(e.sequences for e in passing) / space.size():.1%} of "
          f"sequences); enumerated in {time.perf_counter() - start:.0f} s", flush=True)
    chosen = {e.rule.fingerprint for e in passing}
    if max_rules is not None and len(passing) > max_rules:
        chosen = {e.rule.fingerprint for e in sorted(passing, key=lambda e: order_key(e.rule.key))[:max_rules]}
        print(f"subsampled to {max_rules} passing rules (lowest sha256 of the key)", flush=True)
    print(f"estimate: {len(chosen)} trainings x about 1 s = {len(chosen) / 60:.0f} min", flush=True)
    if count_only:
        return
    old = read_table(out)
    kept: list[dict[str, object]] = []
    todo: list[Entry] = []
    for entry, why in zip(entries, reasons):
        fp = entry.rule.fingerprint
        if why or fp not in chosen:
            reason = why or "not in the subsample (--max-rules)"
            kept.append(_row(entry, status="rejected", reward=0.0, steps=0, seconds=0.0, reason=reason))
        elif fp in old and old[fp]["key"] == entry.rule.key and old[fp]["status"] != "rejected":
            kept.append(_row(entry, **{k: old[fp][k] for k in ("status", "reward", "steps", "seconds", "reason")}))
        else:
            todo.append(entry)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, out)  # atomic: a kill leaves the old file or the new one
    todo.sort(key=lambda e: order_key(e.rule.key))
    print(f"{len(todo)} to train ({len(chosen) - len(todo)} already in {out})", flush=True)
    config = EvalConfig()
    with open(out, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        train_start = time.perf_counter()
        for i, entry in enumerate(todo, 1):
            result = evaluate(entry.text, config)
            writer.writerow(_row(entry, status=result.status, reward=f"{result.reward:.6f}", steps=result.steps,
                                 seconds=f"{result.seconds:.3f}", reason=result.reason[:200]))
            f.flush()  # a kill loses at most the training under way
            if i % 50 == 0 or i == len(todo):
                elapsed = time.perf_counter() - train_start
                print(f"  {i}/{len(todo)} trained, {elapsed / 60:.1f} min, "
                      f"eta {elapsed / i * (len(todo) - i) / 60:.1f} min", flush=True)


# --- the replay ---


@dataclass
class Table:
    """The table's verdicts by fingerprint: (trained?, reward); the rewards of its trained rules."""

    rows: dict[str, tuple[bool, float]]
    rewards: np.ndarray
    vocab: str

    @classmethod
    def read(cls, path: Path, vocab: str) -> "Table":
        rows = {fp: (row["status"] != "rejected", float(row["reward"])) for fp, row in read_table(path).items()}
        rewards = np.array([reward for trained, reward in rows.values() if trained])
        return cls(rows, rewards, vocab)

    def lookup(self, text: str) -> tuple[bool, float]:
        """(trained, reward) of a proposal: a rule outside the table counts as rejected (0, no budget)."""
        return self.rows.get(_fingerprint(text), (False, 0.0))


@lru_cache(maxsize=None)
def _fingerprint(text: str) -> str:
    return parse_rule(text).fingerprint


@dataclass
class Run:
    """One replay: the best reward after each evaluation, the samples drawn, how many were rejected, the
    evaluations it made."""

    curve: list[float]
    samples: int
    rejected: int
    evaluations: int  # below the budget when the run stalled
    seconds: float


def replay(strategy: Strategy, table: Table, budget: int, stall_rounds: int = STALL_ROUNDS) -> Run:
    """The search loop against the table (controller/search.py Search._round): rounds until ROUND_SIZE
    new evaluations, at most MAX_SAMPLES_PER_ROUND * ROUND_SIZE samples a round; a rejected rule
    scores 0 and costs no budget, a rule drawn before is a hit (its reward again, no budget); the
    strategy observes each full round in proposal order (a round the budget cuts short is not
    observed, as in the search). As the search, it stops after `stall_rounds` rounds in a row without a
    new evaluation (a policy collapsed onto rules it has seen); the curve then stays flat to the budget
    and `evaluations` tells how far it got."""
    start = time.perf_counter()
    seen: dict[str, float] = {}
    curve: list[float] = []
    samples = rejected = stalled = 0
    while len(curve) < budget and stalled < stall_rounds:
        scored, new = [], 0
        target = min(ROUND_SIZE, budget - len(curve))
        while new < target and len(scored) < MAX_SAMPLES_PER_ROUND * ROUND_SIZE:
            proposal = strategy.propose(1)[0]
            samples += 1
            identity = _fingerprint(proposal.text)
            trained, reward = table.lookup(proposal.text)
            rejected += not trained
            if identity not in seen:
                seen[identity] = reward
                if trained:
                    new += 1
                    curve.append(max(reward, curve[-1] if curve else 0.0))
            scored.append((proposal, seen[identity]))
        if target == ROUND_SIZE:
            strategy.observe(scored)
        stalled = 0 if new else stalled + 1
    evaluations = len(curve)
    curve += [curve[-1] if curve else 0.0] * (budget - len(curve))
    return Run(curve, samples, rejected, evaluations, time.perf_counter() - start)


def band(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, float(stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5)


def tests(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t-test and the Mann-Whitney U test of a against b, two-sided (p = 1 when both are constant
    and equal, where Welch's is undefined)."""
    if len(set(a)) == 1 and len(set(b)) == 1:
        return (1.0, 1.0) if a[0] == b[0] else (0.0, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        welch = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    mwu = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return welch, mwu


def run_replays(table: Table, names: Sequence[str], seeds: int, budget: int, stall_rounds: int = STALL_ROUNDS,
                log: bool = True) -> dict[str, list[Run]]:
    """Every variant at seeds 0 .. seeds-1 in the table's space."""
    space = space_of(table.vocab)
    results: dict[str, list[Run]] = {}
    for name in names:
        kind, options = VARIANTS[name]
        start = time.perf_counter()
        results[name] = [replay(build_strategy(kind, space, seed=seed, round_size=ROUND_SIZE, **dict(options)),
                                table, budget, stall_rounds) for seed in range(seeds)]
        if log:
            print(f"  {name}: {seeds} seeds in {time.perf_counter() - start:.0f} s", flush=True)
    return results


def report(results: dict[str, list[Run]], table: Table, budget: int, baseline: str = "random",
           quantiles: Sequence[float] = QUANTILES) -> str:
    """The markdown tables: mean best +- 95% band at each budget, the first reach of the table's
    quantiles, and the p-values against the baseline at each budget and for the first reach."""
    points = [n for n in BUDGETS if n <= budget] + ([budget] if budget not in BUDGETS else [])
    targets = {q: float(np.percentile(table.rewards, q)) for q in quantiles}
    n_seeds = len(next(iter(results.values())))
    lines = [f"table: {len(table.rows)} distinct rules, {len(table.rewards)} trained; best {table.rewards.max():.4f}, "
             + ", ".join(f"q{q:g} {t:.4f} ({int((table.rewards >= t).sum())} rules)" for q, t in targets.items())
             + f", median {np.median(table.rewards):.4f}; seeds {n_seeds}, budget {budget}", ""]
    lines += ["best reward after N evaluations (mean +- 95% t-band over seeds); reach qX: median evaluation at "
              "which the best first reaches the table's X-th percentile (budget + 1: never), with the share of "
              "seeds that do; rej: share of samples rejected by the pre-screen; stalled: share of seeds that "
              "stopped before the budget (no new rule in the search's STALL_ROUNDS rounds)", ""]
    header = (["strategy"] + [f"N={n}" for n in points] + [f"reach q{q:g} (share)" for q in targets]
              + ["rej", "stalled", "s/seed"])
    lines += ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for name, runs in results.items():
        cells = ["%.4f +- %.4f" % band([r.curve[n - 1] for r in runs]) for n in points]
        for target in targets.values():
            reach = [first_reaching(r.curve, target) for r in runs]
            cells.append(f"{statistics.median(reach):.0f} ({sum(x <= budget for x in reach) / len(runs):.0%})")
        cells.append(f"{sum(r.rejected for r in runs) / max(1, sum(r.samples for r in runs)):.0%}")
        cells.append(f"{sum(r.evaluations < budget for r in runs) / len(runs):.0%}")
        cells.append(f"{statistics.fmean(r.seconds for r in runs):.1f}")
        lines.append("| " + " | ".join([name] + cells) + " |")
    if baseline in results:
        lines += ["", f"against {baseline}: Welch p / Mann-Whitney p (two-sided) of the best at N evaluations, "
                      f"and of the evaluations to first reach each quantile (budget + 1 when never)", ""]
        header = ["strategy"] + [f"N={n}" for n in points] + [f"reach q{q:g}" for q in targets]
        lines += ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
        base = results[baseline]
        for name, runs in results.items():
            if name == baseline:
                continue
            cells = ["%.2g / %.2g" % tests([r.curve[n - 1] for r in runs], [r.curve[n - 1] for r in base])
                     for n in points]
            cells += ["%.2g / %.2g" % tests([first_reaching(r.curve, t) for r in runs],
                                            [first_reaching(r.curve, t) for r in base]) for t in targets.values()]
            lines.append("| " + " | ".join([name] + cells) + " |")
    return "\n".join(lines)


def save_runs(path: Path, results: dict[str, list[Run]]) -> None:
    """Every run as JSON: {variant: [{curve, samples, rejected, evaluations, seconds}, ...]}."""
    path.write_text(json.dumps({name: [asdict(r) for r in runs] for name, runs in results.items()}))


def load_runs(path: Path) -> dict[str, list[Run]]:
    """Runs saved by `save_runs` (seconds NaN where not saved)."""
    data = json.loads(path.read_text())
    return {name: [Run(r["curve"], r["samples"], r["rejected"], r["evaluations"], r.get("seconds", float("nan")))
                   for r in runs] for name, runs in data.items()}


def noise(path: Path, top: int, seeds: Sequence[int]) -> None:
    """Retrain the table's `top` best rules at other evaluation seeds: how much of the table's order
    among its best is seed noise (its seed-0 rewards were picked as the highest, so they regress)."""
    from nos_symbolic.evaluate import EvalConfig, evaluate

    torch.set_num_threads(1)
    rows = sorted((r for r in read_table(path).values() if r["status"] != "rejected"),
                  key=lambda r: -float(r["reward"]))[:top]
    print("| rank | rule | seed 0 | " + " | ".join(f"seed {s}" for s in seeds) + " | mean of the others |")
    print("|---:|---|---:|" + "---:|" * len(seeds) + "---:|")
    first, others = [], []
    for rank, row in enumerate(rows, 1):
        rewards = [evaluate(row["rule"], EvalConfig(seed=seed)).reward for seed in seeds]
        first.append(float(row["reward"]))
        others.append(statistics.fmean(rewards))
        print(f"| {rank} | `{row['rule']}` | {first[-1]:.4f} | " + " | ".join(f"{r:.4f}" for r in rewards)
              + f" | {others[-1]:.4f} |", flush=True)
    rho = stats.spearmanr(first, others).statistic
    half = top // 2
    kept = len(set(np.argsort(others)[::-1][:half]) & set(range(half)))
    print(f"\nseed 0 minus the others' mean: {statistics.fmean(a - b for a, b in zip(first, others)):+.4f} "
          f"(regression to the mean of a top-{top} pick); mean |difference| "
          f"{statistics.fmean(abs(a - b) for a, b in zip(first, others)):.4f}; Spearman within the top {top}: "
          f"{rho:.2f}; of seed 0's top {half}, {kept} stay in the top {half} by the others' mean")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    table = sub.add_parser("table", help="enumerate, pre-screen and train every rule of the space")
    table.add_argument("--vocab", choices=list(VOCABS), default="mini")
    table.add_argument("--out", default=str(DEFAULT_TABLE))
    table.add_argument("--max-rules", type=int, default=None,
                       help="subsample the passing rules to this many (deterministic); the rest count as rejected")
    table.add_argument("--count-only", action="store_true", help="enumerate and estimate; train nothing")
    rep = sub.add_parser("replay", help="replay the strategies against the table")
    rep.add_argument("--seeds", type=int, default=100)
    rep.add_argument("--strategies", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    rep.add_argument("--stall-rounds", type=int, default=STALL_ROUNDS,
                     help="rounds without a new evaluation that end a run (the search's default)")
    rep.add_argument("--save", default=None, help="write every run's curve here (JSON), for `report`")
    again = sub.add_parser("report", help="the tables again from runs saved by `replay --save`")
    again.add_argument("runs", help="the JSON written by replay --save")
    for command in (rep, again):
        command.add_argument("--table", default=str(DEFAULT_TABLE))
        command.add_argument("--vocab", choices=list(VOCABS), default="mini", help="the space the table was built for")
        command.add_argument("--budget", type=int, default=200)
        command.add_argument("--baseline", default="random", choices=list(VARIANTS))
        command.add_argument("--quantiles", type=float, nargs="+", default=list(QUANTILES),
                             help="the table percentiles whose first reach is timed")
    retrain = sub.add_parser("noise", help="retrain the table's best rules at other seeds")
    retrain.add_argument("--table", default=str(DEFAULT_TABLE))
    retrain.add_argument("--top", type=int, default=24)
    retrain.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if args.command == "noise":
        noise(Path(args.table), args.top, args.seeds)
        return
    if args.command == "table":
        build_table(args.vocab, Path(args.out), args.max_rules, args.count_only)
        return
    table = Table.read(Path(args.table), args.vocab)
    if args.command == "report":
        results = {name: [Run(r.curve[:args.budget], r.samples, r.rejected, min(r.evaluations, args.budget),
                              r.seconds) for r in runs] for name, runs in load_runs(Path(args.runs)).items()}
    else:
        torch.set_num_threads(1)  # the LSTM is tiny: more threads only contend
        start = time.perf_counter()
        results = run_replays(table, args.strategies, args.seeds, args.budget, args.stall_rounds)
        print(f"replays: {time.perf_counter() - start:.0f} s\n")
        if args.save:
            save_runs(Path(args.save), results)
    print(report(results, table, args.budget, args.baseline, args.quantiles))

if __name__ == "__main__":
    main()
