"""The search loop: propose rules, score the unseen ones on worker processes, learn from the rewards.

One round:
  1. the strategy proposes samples one by one; each renders to DSL text and is parsed and keyed; a
     rule whose key or fingerprint is in the store reuses its stored result (a cache hit); a rule the
     pre-screen rejects is stored as `rejected`; any other is submitted to the workers at once;
  2. drawing stops when `round_size` new evaluations are under way; each finished evaluation is one
     store transaction;
  3. the strategy observes every sample's reward in proposal order (PPO updates its policy), the
     round's samples are written, and the controller checkpoint is replaced atomically.
Rounds make a run deterministic whatever the number of workers and whatever order evaluations finish
in, and make resuming exact: after a crash the last checkpoint's round is replayed; evaluations that
finished are found in the store, those in flight run again. Counting a round in evaluations, not
samples, keeps the workers busy: only the last evaluations of a round wait for stragglers.

The budget counts trained evaluations (every status but `rejected`), not samples.
"""
from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch

from controller.executors import make_executor
from controller.store import RuleRecord, RunStore, SampleRecord, StoredRule
from nos_symbolic.errors import NosError, check_known_keys
from nos_symbolic.evaluate import EvalConfig
from nos_symbolic.result import EvalResult

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "controller.pt"
UPDATES_FILE = "updates.jsonl"  # one line per controller update: pg_loss, entropy, approx_kl, clipfrac, ...
STRATEGIES = ("ppo", "random", "evolution")
# Settings that may change on --resume: they decide how fast the run goes, not what it finds.
RESUMABLE_CHANGES = frozenset({"budget", "workers", "timeout", "backend", "address", "cpus_per_eval",
                               "gpus_per_eval"})
BACKENDS = ("local", "ray")
STALL_ROUNDS = 50  # rounds in a row without a new evaluation: the space is exhausted
MAX_SAMPLES_PER_ROUND = 50  # x round_size: a round that finds this few new rules ends anyway


@dataclass(frozen=True)
class SearchConfig:
    """A search run. Recorded in the run directory's config.json.

    strategy:   ppo (the paper's controller), random or evolution (baselines on the same space)
    budget:     evaluations (trainings of a child network), not samples
    workers:    worker processes (0: evaluate in this process)
    seed:       the strategy's seed; evaluations use eval.seed
    n_groups:   5-token groups per rule (op1, op2, u1, u2, b)
    round_size: new evaluations per round; the strategy learns between rounds
    timeout:    seconds before an evaluation is killed and recorded as error
    backend:    local (worker processes on this machine) or ray (a Ray cluster; the `ray` extra)
    address:    Ray cluster address ("auto", "ray://host:10001"); None starts a local Ray instance
    cpus_per_eval, gpus_per_eval: Ray resources of one evaluation
    """

    strategy: str = "ppo"
    budget: int = 300
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    seed: int = 0
    n_groups: int = 3
    round_size: int = 16
    timeout: float = 300.0
    backend: str = "local"
    address: str | None = None
    cpus_per_eval: float = 1.0
    gpus_per_eval: float = 0.0
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise NosError(f"unknown strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}")
        for name in ("budget", "n_groups", "round_size"):
            if getattr(self, name) < 1:
                raise NosError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise NosError(f"workers must be >= 0, got {self.workers}")
        if self.backend not in BACKENDS:
            raise NosError(f"unknown backend {self.backend!r}; expected one of {', '.join(BACKENDS)}")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["eval"] = self.eval.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SearchConfig":
        check_known_keys(cls, d, "search")
        d = dict(d)
        d["eval"] = EvalConfig.from_dict(d.get("eval", {}))
        return cls(**d)


@dataclass
class Progress:
    """What the loop reports after each evaluation (the CLI draws it)."""

    evaluations: int = 0
    budget: int = 0
    samples: int = 0
    cache_hits: int = 0
    rejected: int = 0
    best_reward: float = 0.0
    best_rule: str = ""
    worker_seconds: float = 0.0
    wall_seconds: float = 0.0


@dataclass
class _Pending:
    rule: Any  # nos_symbolic.rule.Rule
    positions: list[int]


def config_difference(stored: dict[str, Any], given: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two config dicts, ignoring RESUMABLE_CHANGES."""
    out = []
    for key in sorted(set(stored) | set(given)):
        a, b = stored.get(key), given.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_difference(a, b, prefix + key + ".")
        elif a != b and (prefix + key) not in RESUMABLE_CHANGES:
            out.append(f"{prefix}{key}: {a!r} in the run, {b!r} given")
    return out


def prepare_run_dir(run_dir: Path, config: SearchConfig, resume: bool) -> None:
    """Create a new run directory, or check that a resumed one was made with the same config."""
    path = run_dir / CONFIG_FILE
    if resume:
        if not path.exists():
            raise NosError(f"nothing to resume in {run_dir}: no {CONFIG_FILE}")
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise NosError(f"cannot read {path}: {err}") from None
        diff = config_difference(stored, config.to_dict())
        if diff:
            raise NosError(f"refusing to resume {run_dir} with a different config: {'; '.join(diff)}")
    elif path.exists():
        raise NosError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, json.dumps(config.to_dict(), indent=2).encode())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def make_search_executor(config: SearchConfig):
    """The executor that runs evaluations: worker processes here, or tasks on a Ray cluster."""
    from nos_symbolic.evaluate import evaluate_job, warm_worker

    if config.backend == "ray":
        from controller.ray_executor import RayExecutor

        return RayExecutor(evaluate_job, max(config.workers, 1), config.timeout, initializer=warm_worker,
                           initargs=(config.eval.to_dict(),), address=config.address,
                           num_cpus=config.cpus_per_eval, num_gpus=config.gpus_per_eval)
    return make_executor(evaluate_job, config.workers, config.timeout, initializer=warm_worker,
                         initargs=(config.eval.to_dict(),))


def make_strategy(config: SearchConfig):
    """The strategy named in config, on the paper's search space."""
    from controller.space import SearchSpace
    from controller.strategies import build_strategy

    return build_strategy(config.strategy, SearchSpace(n_groups=config.n_groups), seed=config.seed,
                          round_size=config.round_size)


class Search:
    """One search run over a run directory (see the module docstring)."""

    def __init__(self, config: SearchConfig, run_dir: Path, resume: bool = False) -> None:
        if config.backend == "ray":
            from controller.ray_executor import require_ray

            require_ray()  # before the run directory is written: a missing extra leaves nothing behind
        prepare_run_dir(run_dir, config, resume)
        self.config, self.run_dir = config, run_dir
        self.store = RunStore.open(run_dir)
        self.strategy = make_strategy(config)
        self.round = 0
        self.evaluations_at_round_start = 0
        self.round_start = ""  # rules stored after this instant were evaluated in the current round
        self.progress = Progress(budget=config.budget)
        if resume:
            self._load_checkpoint()
        self._refresh_progress()

    # -- checkpoint ----------------------------------------------------------------------------------

    def _load_checkpoint(self) -> None:
        path = self.run_dir / CHECKPOINT_FILE
        if not path.exists():  # killed before the first round ended: start the rounds again
            self.store.discard_samples_from(0)
            return
        try:
            ckpt = torch.load(path, weights_only=False)
        except Exception as err:
            raise NosError(f"cannot read the controller checkpoint {path}: {err}") from None
        self.strategy.load_state_dict(ckpt["strategy"])
        self.round, self.round_start = ckpt["round"], ckpt["round_start"]
        self.evaluations_at_round_start = ckpt["evaluations"]
        self._truncate_updates()
        # Samples written after the checkpoint belong to the round being replayed.
        self.store.discard_samples_from(ckpt["next_sample"])

    def _save_checkpoint(self) -> None:
        buf = io.BytesIO()
        self.round_start = _iso_now()
        self.evaluations_at_round_start = self.store.n_evaluations()
        torch.save({"strategy": self.strategy.state_dict(), "round": self.round, "round_start": self.round_start,
                    "evaluations": self.evaluations_at_round_start, "next_sample": self.store.next_sample_index()},
                   buf)
        _write_atomic(self.run_dir / CHECKPOINT_FILE, buf.getvalue())

    # -- the loop ------------------------------------------------------------------------------------

    def run(self, on_progress: Callable[[Progress], None] = lambda p: None) -> Progress:
        """Run rounds until the budget of evaluations is spent."""
        start = time.perf_counter()
        stalled = 0
        with make_search_executor(self.config) as executor:
            while self.store.n_evaluations() < self.config.budget and stalled < STALL_ROUNDS:
                before = self.store.n_evaluations(count_rejected=True)
                self._round(executor, on_progress, start)
                stalled = 0 if self.store.n_evaluations(count_rejected=True) > before else stalled + 1
        self.progress.wall_seconds = time.perf_counter() - start
        return self.progress

    def _round(self, executor, on_progress: Callable[[Progress], None], start: float) -> None:
        """Draw samples until `round_size` new evaluations are under way (fewer where the budget ends
        first), submitting each as soon as it is drawn; wait for them; then the strategy learns."""
        target = min(self.config.round_size, self.config.budget - self.evaluations_at_round_start)
        proposals: list[Any] = []
        rewards: list[float | None] = []
        hits: list[bool] = []
        keys: list[str] = []
        jobs: list[_Pending] = []
        new = 0
        while new < target and len(proposals) < MAX_SAMPLES_PER_ROUND * self.config.round_size:
            i = len(proposals)
            proposals.append(self.strategy.propose(1)[0])
            rule, stored = self._resolve(proposals[i].text)
            same = next((j for j in jobs if rule.key == j.rule.key or rule.fingerprint == j.rule.fingerprint), None)
            key = stored.key if stored is not None else same.rule.key if same is not None else rule.key
            # A hit: stored before this round began, or met earlier in this round. (A replayed round finds
            # the evaluations of its interrupted attempt in the store; they are not hits.)
            hit = key in keys or (stored is not None and stored.created_at <= self.round_start)
            reward = None
            if stored is not None:
                reward = stored.result.reward
                new += not hit and stored.result.status != "rejected"
            elif same is not None:
                same.positions.append(i)
            elif not (screen := self._screen(rule)).passed:
                result = EvalResult(status="rejected", seed=self.config.eval.seed, reason=screen.reason)
                self.store.record_evaluation(self._record(rule), result, [])
                reward = result.reward
            else:
                jobs.append(_Pending(rule, [i]))
                executor.submit(len(jobs) - 1, {"rule": rule.text, "config": self.config.eval.to_dict()})
                new += 1
            rewards.append(reward)
            hits.append(hit)
            keys.append(key)
            self._collect(executor, jobs, rewards, 0.0, on_progress, start)
        while executor.in_flight():
            self._collect(executor, jobs, rewards, 1.0, on_progress, start)
        first = self.store.next_sample_index()
        self.store.record_samples([
            SampleRecord(first + i, self.config.strategy, tuple(p.tokens), keys[i], rewards[i], hits[i])
            for i, p in enumerate(proposals)])
        if target == self.config.round_size:
            self._log_updates(self.strategy.observe(list(zip(proposals, rewards))))
            self.round += 1
            self._save_checkpoint()
        # else: the budget ended the round early. It is not checkpointed, so a resume with a larger
        # budget replays it whole (its evaluations come back from the store) like an uninterrupted run.
        self._refresh_progress()
        on_progress(self.progress)

    def _collect(self, executor, jobs: list[_Pending], rewards: list[float | None], timeout: float,
                 on_progress: Callable[[Progress], None], start: float) -> None:
        """Record the evaluations that finished (one store transaction each)."""
        for done in executor.poll(timeout=timeout):
            job = jobs[done.job_id]
            self.store.record_evaluation(self._record(job.rule), done.result, [])
            for i in job.positions:
                rewards[i] = done.result.reward
            self.progress.worker_seconds += done.worker_seconds
            self._refresh_progress(start)
            on_progress(self.progress)

    def _log_updates(self, stats: list[dict] | None) -> None:
        if stats:
            with open(self.run_dir / UPDATES_FILE, "a") as f:
                for s in stats:
                    f.write(json.dumps({"round": self.round, **s}) + "\n")

    def _truncate_updates(self) -> None:
        """Drop the log lines of rounds that will be replayed."""
        path = self.run_dir / UPDATES_FILE
        if path.exists():
            keep = [line for line in path.read_text().splitlines() if json.loads(line)["round"] < self.round]
            _write_atomic(path, "".join(line + "\n" for line in keep).encode())

    def _resolve(self, text: str) -> tuple[Any, StoredRule | None]:
        from nos_symbolic.rule import parse_rule

        rule = parse_rule(text)
        return rule, self.store.lookup(rule.key, rule.fingerprint)

    def _screen(self, rule):
        from nos_symbolic.prescreen import prescreen

        return prescreen(rule, self.config.eval.descent_threshold)

    def _record(self, rule) -> RuleRecord:
        return RuleRecord(key=rule.key, fingerprint=rule.fingerprint, scale_fingerprint=rule.scale_fingerprint,
                          text=rule.text, canonical=rule.canonical_text, latex=rule.latex(),
                          seed=self.config.eval.seed)

    def _refresh_progress(self, start: float | None = None) -> None:
        p = self.progress
        p.evaluations = self.store.n_evaluations()
        p.samples = self.store.n_samples()
        p.cache_hits = self.store.n_cache_hits()
        p.rejected = self.store.n_evaluations(count_rejected=True) - p.evaluations
        top = self.store.top(1)
        if top:
            p.best_reward, p.best_rule = top[0].result.reward, top[0].canonical or top[0].text
        if start is not None:
            p.wall_seconds = time.perf_counter() - start

    def close(self) -> None:
        self.store.close()


def _iso_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # the store's format
