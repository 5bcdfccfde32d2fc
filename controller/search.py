"""The search loop: propose rules, score the unseen ones on worker processes, learn from the rewards.

One round:
  1. the strategy proposes `round_size` token sequences (PPO: a batch of the policy's samples);
  2. each renders to DSL text and is parsed and keyed; a rule whose key or fingerprint is in the store
     reuses its stored result (a cache hit); a rule the pre-screen rejects is stored as `rejected`;
  3. the rest are evaluated in parallel; each finished evaluation is one store transaction;
  4. the strategy observes every sample's reward in proposal order, the round's samples are written,
     and the controller checkpoint is replaced atomically.
Rounds make a run deterministic whatever the number of workers and whatever order evaluations finish
in, and make resuming exact: after a crash the last checkpoint's round is replayed; evaluations that
finished are found in the store, those in flight run again.

The budget counts trained evaluations (every status but `rejected`), not samples.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch

from controller.executors import Completion, make_executor
from controller.store import RuleRecord, RunStore, SampleRecord, StoredRule
from nos_symbolic.errors import NosError
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


@dataclass(frozen=True)
class SearchConfig:
    """A search run. Recorded in the run directory's config.json.

    strategy:   ppo (the paper's controller), random or evolution (baselines on the same space)
    budget:     evaluations (trainings of a child network), not samples
    workers:    worker processes (0: evaluate in this process)
    seed:       the strategy's seed; evaluations use eval.seed
    n_groups:   5-token groups per rule (op1, op2, u1, u2, b)
    round_size: samples proposed per round (= the PPO batch)
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
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise NosError(f"unknown search setting(s): {', '.join(sorted(unknown))}")
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
        prepare_run_dir(run_dir, config, resume)
        self.config, self.run_dir = config, run_dir
        self.store = RunStore.open(run_dir)
        self.strategy = make_strategy(config)
        self.round = 0
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
        self._truncate_updates()
        # Samples written after the checkpoint belong to the round being replayed.
        self.store.discard_samples_from(ckpt["next_sample"])

    def _save_checkpoint(self) -> None:
        import io

        buf = io.BytesIO()
        self.round_start = _iso_now()
        torch.save({"strategy": self.strategy.state_dict(), "round": self.round, "round_start": self.round_start,
                    "next_sample": self.store.next_sample_index()}, buf)
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
        proposals = self.strategy.propose(self.config.round_size)
        rewards: list[float | None] = [None] * len(proposals)
        hits: list[bool] = [False] * len(proposals)
        keys: list[str | None] = [None] * len(proposals)
        pending: dict[str, _Pending] = {}
        room = self.config.budget - self.store.n_evaluations()
        for i, proposal in enumerate(proposals):
            rule, stored = self._resolve(proposal.text)
            keys[i] = rule.key
            same = pending.get(rule.key) or next((p for p in pending.values()
                                                  if p.rule.fingerprint == rule.fingerprint), None)
            if stored is not None:  # found by key or fingerprint: the sample points at the stored rule
                rewards[i], hits[i], keys[i] = stored.result.reward, stored.created_at <= self.round_start, stored.key
            elif same is not None:
                same.positions.append(i)
                hits[i], keys[i] = True, same.rule.key
            elif not (screen := self._screen(rule)).passed:
                result = EvalResult(status="rejected", seed=self.config.eval.seed, reason=screen.reason)
                self.store.record_evaluation(self._record(rule), result, [])
                rewards[i] = result.reward
            elif len(pending) < room:
                pending[rule.key] = _Pending(rule, [i])
            else:
                proposals = proposals[:i]  # the budget is spent: the rest of the round goes unused
                break
        jobs = list(pending.values())
        for job_id, job in enumerate(jobs):
            executor.submit(job_id, {"rule": job.rule.text, "config": self.config.eval.to_dict()})
        while executor.in_flight():
            for done in executor.poll(timeout=1.0):
                self._finish(jobs[done.job_id], done, rewards)
                self._refresh_progress(done, start)
                on_progress(self.progress)
        first = self.store.next_sample_index()
        self.store.record_samples([
            SampleRecord(first + i, self.config.strategy, tuple(p.tokens), keys[i], rewards[i], hits[i])
            for i, p in enumerate(proposals)])
        if len(proposals) == len(rewards):
            self._log_updates(self.strategy.observe(list(zip(proposals, rewards))))
            self.round += 1
            self._save_checkpoint()
        # else: the budget ended the round early. It is not checkpointed, so a resume with a larger
        # budget replays it whole (its evaluations come back from the store) like an uninterrupted run.
        self._refresh_progress()
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

    def _finish(self, job: _Pending, done: Completion, rewards: list[float | None]) -> None:
        self.store.record_evaluation(self._record(job.rule), done.result, [])
        for i in job.positions:
            rewards[i] = done.result.reward
        self.progress.worker_seconds += done.worker_seconds

    def _refresh_progress(self, done: Completion | None = None, start: float | None = None) -> None:
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
