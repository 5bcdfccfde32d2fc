"""Evaluation protocols compared on a fixed set of trained rules: cost, seed-to-seed rank
agreement, and agreement with the mean of `full` over three seeds.

    python bench/bench_protocol.py RUN_DIR|RULES_FILE [--limit 100] [--subset 30]
        [--protocol halving[:screen_epochs=0.25,halvings=1,hurdle_quantile=0.5,...]] [--workers 2]

The set is the DSL text of every `ok` rule of the run (in store order), or one rule a line of a
rules file; it is written to --rules-out so a figure can be reproduced from the file. Each
(rule, protocol, seed, hurdle threshold) is evaluated once and cached in --cache (JSON), so a
second run or a crash redoes nothing. `full` runs with seeds 0, 1 and 2; a run directory searched
with the default evaluation already holds `full` seed 0 (its reward), which --full0-from-store
takes (after re-evaluating --check rules to show it is the same number). The protocol under test
runs with seeds 0 and 1. Its hurdle threshold for rule i is the quantile of the val curves of
rules 0 .. i-2 under the same protocol and seed (at most --window of them), as a search with two
workers would see them; with fewer than 10 there is no hurdle.

Figures: evaluations per minute (from the worker's CPU seconds and, separately, wall seconds; the
machine may be shared) and optimizer steps per evaluation, each against `full`; Spearman rank
correlation between seeds 0 and 1 (target >= 0.9; `full`'s own on the same set is printed); the
rank correlation of each seed with the mean of `full` over seeds 0-2 (target: no lower than a
single `full` run's, where the single run is itself one of the three, which favours `full`); how
many of the top 5 by that mean each keeps.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

FULL_SEEDS = (0, 1, 2)
NEW_SEEDS = (0, 1)
LAG = 2  # with two workers, rule i-1 may still be training when rule i starts


def load_rules(source: Path, limit: int | None) -> list[str]:
    """The `ok` rules of a run directory (store order), or the lines of a rules file."""
    if source.is_dir():
        from controller.store import RunStore

        with RunStore.open_readonly(source) as store:
            rules = [r.text for r in store.rules() if r.result.status == "ok"]
    else:
        rules = [line.strip() for line in source.read_text().splitlines() if line.strip()]
    return rules[:limit] if limit else rules


def store_rewards(run_dir: Path) -> dict[str, float]:
    """rule text -> reward of a run searched with `full`'s defaults (seed 0)."""
    from nos_symbolic.evaluate import EvalConfig

    config = json.loads((run_dir / "config.json").read_text())["eval"]
    if EvalConfig.from_dict(config) != EvalConfig(protocol="full"):
        raise SystemExit(f"{run_dir} was not searched with the full protocol's defaults; drop --full0-from-store")
    from controller.store import RunStore

    with RunStore.open_readonly(run_dir) as store:
        return {r.text: r.result.reward for r in store.rules() if r.result.status == "ok"}


def parse_protocol(spec: str) -> tuple[str, dict, dict]:
    """'halving:screen_epochs=0.25,hurdle_quantile=0.5,num_samples=10000' ->
    (name, Halving knobs, other options: hurdle_quantile, window and task options).

    Knobs not named take the protocol's defaults (DEFAULT_HALVING, the final run of PROTOCOL_EPOCHS,
    the hurdle of PROTOCOL_HURDLES; hurdle_quantile=null for none), so plain `halving` measures
    exactly what `nos search` runs by default."""
    from dataclasses import asdict

    from nos_symbolic.tasks.protocol import DEFAULT_HALVING, PROTOCOL_EPOCHS, PROTOCOL_HURDLES, Halving

    name, _, rest = spec.partition(":")
    knob_names = {f.name for f in fields(Halving)}
    knobs, other = {}, {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        parsed = json.loads(value) if value not in ("true", "false") else value == "true"
        (knobs if key in knob_names else other)[key] = parsed
    if name == "halving":
        knobs = {**asdict(DEFAULT_HALVING), **knobs}
        if knobs["final_epochs"] is None:
            knobs["final_epochs"] = PROTOCOL_EPOCHS[name]
        other.setdefault("hurdle_quantile", PROTOCOL_HURDLES[name])
        if other["hurdle_quantile"] is None:
            del other["hurdle_quantile"]
    return name, knobs, other


# ---- worker side


_TASKS: dict = {}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)


def evaluate_one(job: dict) -> dict:
    """One (rule, protocol, seed, threshold) evaluation in a worker: the result and its costs."""
    from nos_symbolic.evaluate import rule_factory
    from nos_symbolic.rule import parse_rule
    from nos_symbolic.tasks import get_task
    from nos_symbolic.tasks.protocol import Halving, run_named_protocol

    options = tuple(sorted(job["task_options"].items()))
    if options not in _TASKS:
        _TASKS[options] = get_task("mnist1d", **dict(options))
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        result = run_named_protocol(job["name"], _TASKS[options], rule_factory(parse_rule(job["rule"]), job["seed"]),
                                    seed=job["seed"], hurdle_threshold=job["threshold"], test=False,
                                    halving_knobs=Halving(**job["knobs"])).to_dict()
    except Exception as err:  # a wild rule: recorded, as the search would
        result = {"status": "error", "reward": 0.0, "steps": 0, "val_curve": [], "reason": repr(err)[:300]}
    return {"result": result, "cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}


# ---- driver side


class Cache:
    """Results by key in a JSON file, rewritten atomically after every new result."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {}

    def put(self, key: str, value: dict) -> None:
        self.data[key] = value
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, self.path)


def job_key(job: dict) -> str:
    return json.dumps([job["name"], job["knobs"], job["task_options"], job["seed"], job["threshold"],
                       job["rule"]], sort_keys=True)


class Stream:
    """One protocol at one seed over the rules, in order: rule i's hurdle threshold needs the
    results of rules < i - LAG + 1."""

    def __init__(self, name, knobs, other, seed, rules, hurdle_step):
        self.name, self.knobs, self.seed, self.rules = name, knobs, seed, rules
        self.quantile = other.get("hurdle_quantile")
        self.window = int(other.get("window", 100))
        self.task_options = {k: v for k, v in other.items() if k not in ("hurdle_quantile", "window")}
        self.hurdle_step = hurdle_step
        self.results: dict[int, dict] = {}
        self.next = 0

    def label(self) -> str:
        extra = {**self.knobs, **({"hurdle_quantile": self.quantile} if self.quantile is not None else {}),
                 **self.task_options}
        return self.name + ("[" + ",".join(f"{k}={v}" for k, v in sorted(extra.items())) + "]" if extra else "")

    def ready(self) -> dict | None:
        """The next job when its threshold's inputs are in, else None (`next` moves on only when the
        caller takes it)."""
        from nos_symbolic.tasks.protocol import hurdle_threshold

        i = self.next
        if i >= len(self.rules):
            return None
        threshold = None
        if self.quantile is not None:
            done = [j for j in range(max(0, i - LAG + 1 - self.window), i - LAG + 1)]
            if any(j not in self.results for j in done):
                return None
            curves = [self.results[j]["result"].get("val_curve") or [] for j in done]
            threshold = hurdle_threshold([[tuple(p) for p in c] for c in curves], self.hurdle_step, self.quantile)
        return {"stream": id(self), "index": i, "name": self.name, "knobs": self.knobs,
                "task_options": self.task_options, "seed": self.seed, "threshold": threshold,
                "rule": self.rules[i]}


def run_all(streams: list[Stream], cache: Cache, workers: int, deadline: float) -> None:
    by_id = {id(s): s for s in streams}
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker) as pool:
        flying: list[tuple[dict, mp.pool.AsyncResult]] = []
        done_count = 0
        while True:
            progressed = True
            while progressed and len(flying) < workers:
                progressed = False
                # rule by rule across the streams, so whatever finishes by the deadline is complete
                for s in sorted(streams, key=lambda s: s.next):
                    job = s.ready()
                    while job is not None and job_key(job) in cache.data:  # cached: no work
                        s.results[job["index"]] = cache.data[job_key(job)]
                        s.next += 1
                        job = s.ready()
                    if job is not None and time.time() < deadline:
                        s.next += 1
                        flying.append((job, pool.apply_async(evaluate_one, (job,))))
                        progressed = True
                        if len(flying) >= workers:
                            break
            if not flying:
                break
            time.sleep(0.2)
            for job, handle in list(flying):
                if handle.ready():
                    flying.remove((job, handle))
                    value = handle.get()
                    cache.put(job_key(job), value)
                    by_id[job["stream"]].results[job["index"]] = value
                    done_count += 1
                    if done_count % 10 == 0:
                        print(f"  ... {done_count} evaluations done", flush=True)


def spearman(a: list[float], b: list[float]) -> float:
    return float(spearmanr(a, b).statistic)


def simulate_hurdle(s: Stream, quantile: float, total_steps: int, seeds: int = 1, min_count: int = 10) -> Stream:
    """The stream as it would have run with a hurdle at `quantile`, from its hurdle-free results.

    Exact for rewards and steps: a hurdled final run is the prefix of the free one, and the free
    runs record their accuracy at the hurdle as the hurdled ones do, so the thresholds are the
    same. A hurdled rule also skips the final runs of its other seeds (seeds > 1, total_steps
    each). CPU and wall seconds are scaled by the steps kept (an estimate)."""
    from nos_symbolic.tasks.protocol import hurdle_threshold

    out = Stream(s.name, s.knobs, {"hurdle_quantile": quantile, "window": s.window, **s.task_options},
                 s.seed, s.rules, s.hurdle_step)
    for i in sorted(s.results):
        done = range(max(0, i - LAG + 1 - s.window), i - LAG + 1)
        curves = [[tuple(p) for p in s.results[j]["result"].get("val_curve") or []]
                  for j in done if j in s.results]
        threshold = hurdle_threshold(curves, s.hurdle_step, quantile, min_count)
        value = s.results[i]
        at = dict(map(tuple, value["result"].get("val_curve") or []))
        if threshold is not None and s.hurdle_step in at and at[s.hurdle_step] < threshold:
            steps = value["result"]["steps"] - (total_steps - s.hurdle_step) - (seeds - 1) * total_steps
            scale = steps / value["result"]["steps"]
            value = {"result": {**value["result"], "status": "hurdled", "reward": at[s.hurdle_step],
                                "steps": steps},
                     "cpu": value["cpu"] * scale, "wall": value["wall"] * scale}
        out.results[i] = value
    return out


def report(rules: list[str], full: dict[int, Stream], new: dict[int, Stream]) -> None:
    both = [i for i in range(len(rules))
            if all(i in s.results for s in (*full.values(), *new.values()))]
    print(f"rules with every result: {len(both)} of {len(rules)}")
    if len(both) < 5:
        return

    def rewards(s: Stream) -> list[float]:
        return [s.results[i]["result"]["reward"] for i in both]

    full_mean = np.mean([rewards(s) for s in full.values()], axis=0)
    top5 = set(np.argsort(-full_mean, kind="stable")[:5])

    def cost(s: Stream) -> tuple[float, float, float]:
        rs = [s.results[i] for i in both]
        return (statistics.mean(r["result"]["steps"] for r in rs), statistics.mean(r["cpu"] for r in rs),
                statistics.mean(r["wall"] for r in rs))

    # full seed 0 may come from the store, without costs: the reference cost is a measured seed's
    ref = next(s for s in full.values() if all(s.results[i]["cpu"] is not None for i in both))
    steps0, cpu0, wall0 = cost(ref)
    label = next(iter(new.values())).label()
    for title, streams in (("full", full), (label, new)):
        print(f"{title}:")
        for seed, s in streams.items():
            r = rewards(s)
            keep = len(top5 & set(np.argsort(-np.array(r), kind="stable")[:5]))
            agree = f"rank corr with mean full: {spearman(r, full_mean):.3f}; top-5 kept {keep}/5"
            if any(s.results[i]["cpu"] is None for i in both):
                print(f"  seed {seed}: (from the store) {agree}")
                continue
            steps, cpu, wall = cost(s)
            hurdled = sum(s.results[i]["result"]["status"] == "hurdled" for i in both)
            print(f"  seed {seed}: {steps:6.1f} steps/eval ({steps0 / steps:.2f}x full), "
                  f"{60 / cpu:5.1f} evals/min/core by CPU ({cpu0 / cpu:.2f}x), "
                  f"{60 / wall:5.1f} by wall ({wall0 / wall:.2f}x); "
                  f"{agree}; hurdled {hurdled}")
        seeds = sorted(streams)
        pairs = [(c, [x for x in full if x != c]) for c in full]  # a held-out full seed, the other two
        fair = [spearman(rewards(streams[seeds[0]]) if title != "full" else rewards(full[c]),
                         np.mean([rewards(full[x]) for x in rest], axis=0)) for c, rest in pairs]
        print(f"  rank corr with the mean of two full seeds, held-out seed {[c for c, _ in pairs]}: "
              + ", ".join(f"{v:.3f}" for v in fair) + (" (the held-out full seed itself)" if title == "full"
                                                        else f" (seed {seeds[0]})"))
        print(f"  seed {seeds[0]} vs seed {seeds[1]}: Spearman {spearman(rewards(streams[seeds[0]]), rewards(streams[seeds[1]])):.3f}, "
              f"mean |difference| {100 * np.mean(np.abs(np.subtract(rewards(streams[seeds[0]]), rewards(streams[seeds[1]])))):.2f} points")


def main() -> None:
    from nos_symbolic.tasks.protocol import Halving

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="a run directory, or a file with one rule a line")
    ap.add_argument("--limit", type=int, default=None, help="the first N rules of the set")
    ap.add_argument("--subset", type=int, default=None, help="measure on the first N of the set only (tuning)")
    ap.add_argument("--protocol", default="halving",
                    help="NAME:knob=value,... (Halving's knobs, hurdle_quantile, window, task options)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "nos-bench-protocol.json")
    ap.add_argument("--rules-out", type=Path, default=None, help="where to save the set (default: next to the cache)")
    ap.add_argument("--full0-from-store", action="store_true",
                    help="take full seed 0 from the run's store (the search's own reward)")
    ap.add_argument("--check", type=int, default=3, help="rules re-evaluated to check the store's rewards")
    ap.add_argument("--simulate-hurdles", type=lambda v: [float(x) for x in v.split(",")], default=[0.25, 0.5],
                    help="for a hurdle-free halving: also report these hurdle quantiles, derived exactly")
    ap.add_argument("--minutes", type=float, default=600, help="stop submitting after this long; report what finished")
    args = ap.parse_args()

    rules = load_rules(args.source, args.limit)
    rules_out = args.rules_out or args.cache.with_suffix(".rules.txt")
    rules_out.write_text("".join(r + "\n" for r in rules))
    rules = rules[: args.subset] if args.subset else rules
    print(f"{len(rules)} rules from {args.source} (set saved to {rules_out})")

    name, knobs, other = parse_protocol(args.protocol)
    from nos_symbolic.tasks import get_task

    task_options = {k: v for k, v in other.items() if k not in ("hurdle_quantile", "window")}
    spe = get_task("mnist1d", **task_options).steps_per_epoch
    hurdle_step = Halving(**knobs).hurdle_epoch * spe if name == "halving" else 0
    full = {s: Stream("full", {}, {}, s, rules, 0) for s in FULL_SEEDS}
    new = {s: Stream(name, knobs, other, s, rules, hurdle_step) for s in NEW_SEEDS}
    cache = Cache(args.cache)
    if args.full0_from_store:
        stored = store_rewards(args.source)
        check = Stream("full", {}, {}, 0, rules[: args.check], 0)
        run_all([check], cache, args.workers, math.inf)
        for i, rule in enumerate(rules[: args.check]):
            again = check.results[i]["result"]["reward"]
            print(f"  store check: {rule}: store {stored[rule]:.5f}, again {again:.5f}")
            if again != stored[rule]:
                raise SystemExit("the store's rewards are not today's full seed 0 (the code changed since "
                                 "the search?); drop --full0-from-store")
        for i, rule in enumerate(rules):
            full[0].results[i] = {"result": {"reward": stored[rule], "status": "ok"}, "cpu": None, "wall": None}
        full[0].next = len(rules)
    start = time.time()
    order = [new[0], new[1], full[1], full[2], full[0]]
    run_all(order, cache, args.workers, start + 60 * args.minutes)
    print(f"done in {time.time() - start:.0f} s")
    report(rules, full, new)
    if name == "halving" and "hurdle_quantile" not in other:
        halving_knobs = Halving(**knobs)
        epochs = halving_knobs.final_epochs or get_task("mnist1d", **task_options).epochs
        total = max(1, round(epochs * spe))
        for q in args.simulate_hurdles:
            print(f"-- the same with a hurdle at quantile {q} after epoch {hurdle_step // spe} "
                  f"(derived from the hurdle-free runs; seconds scaled by the steps kept):")
            report(rules, full, {seed: simulate_hurdle(st, q, total, halving_knobs.seeds)
                                 for seed, st in new.items()})


if __name__ == "__main__":
    main()
