"""The search loop: propose rules, score the unseen ones on worker processes, learn from the rewards.

One round:
  1. the strategy proposes samples one by one; each renders to DSL text and is parsed and keyed; a
     rule whose key or fingerprint is in the store reuses its stored result; a rule the pre-screen
     rejects is stored as `rejected`; any other is submitted to the workers at once;
  2. drawing stops when `round_size` new evaluations are under way; each finished evaluation is one
     store transaction;
  3. the strategy observes every sample's reward in proposal order (PPO updates its policy); the
     round's samples, its update statistics and the round counter are one store transaction; then the
     controller checkpoint (controller.pt) is replaced atomically.
Rounds make a run deterministic whatever the number of workers and whatever order evaluations finish
in, and make resuming exact. A sample is a cache hit when its rule was drawn in an earlier round (or
earlier in its own round), so a replayed round draws and marks its samples as the first attempt did.

Resuming never deletes anything. The store is the record; the checkpoint (the strategy's state after
round r, with the run's id) is only a shortcut to it. After a crash the rounds after the checkpoint are
replayed: evaluations that finished are found in the store, those in flight run again, and samples
already stored are checked against the replayed ones instead of written twice. A checkpoint that is
missing is rebuilt by replaying every round; one from another run, or a store that is missing, is
refused.

The budget counts trained evaluations (every status but `rejected`), not samples.
"""
from __future__ import annotations

import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from controller.checkpoint import CHECKPOINT_FILE, Checkpoint, load_checkpoint, save_checkpoint
from controller.lock import run_lock
from controller.promotion import Entrant, promoted, variant_text
from controller.run_config import (CONFIG_FILE, RESUMABLE_CHANGES, SearchConfig, config_difference,
                                   read_run_config, resume_config)
from controller.rundir import create_run_dir, default_run_dir, discard_run_dir
from controller.search_build import make_search_executor, make_strategy
from controller.search_dir import StartPoint, refuse_occupied, resume_point, write_config
from controller.store import RuleRecord, RunStore, SampleRecord, StoredRule
from controller.workers import check_environment
from nos_symbolic.errors import NosError, SettingError
from nos_symbolic.result import EvalResult

# The run's settings, its checkpoint and what it runs with live in run_config.py, checkpoint.py and
# search_build.py; these names are the search's public face as well.
__all__ = ["CHECKPOINT_FILE", "CONFIG_FILE", "RESUMABLE_CHANGES", "Checkpoint", "Progress", "Search",
           "SearchConfig", "check_environment", "config_difference", "load_checkpoint", "make_search_executor",
           "make_strategy", "read_run_config", "resume_config"]

STALL_ROUNDS = 50  # rounds in a row without a new evaluation: the space is exhausted
HURDLE_WINDOW = 64  # recent trained rules whose validation curves set the halving protocol's hurdle
MAX_SAMPLES_PER_ROUND = 50  # x round_size: a round that finds this few new rules ends anyway


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
    promoted: int = 0  # trainings past the search's length (and the decayed variants')
    evaluations_at_start: int = 0  # trainings the store held when this invocation started (a resume's)

    @property
    def new_evaluations(self) -> int:
        """Trainings this invocation ran (a resumed run's earlier ones left out)."""
        return self.evaluations - self.evaluations_at_start


@dataclass
class _Draw:
    """One sample of a round: the strategy's proposal, the key of the rule it spelt, whether that rule
    was drawn before (a cache hit) and its reward, None until its evaluation finishes."""

    proposal: Any  # controller.strategies.Proposal
    key: str
    hit: bool
    reward: float | None = None


@dataclass
class _Job:
    """An evaluation under way and the draws of the round that wait for its reward."""

    rule: Any  # nos_symbolic.rule.Rule
    draws: list[_Draw]


@dataclass
class _Round:
    """A round under way: one record per sample in draw order, the evaluations they wait on, the status
    of each of its rules as it becomes known, and how many new evaluations it started.

    longer:        rule key -> {epochs: result} of the promotions of the rounds before this one
    hurdle_curves: the validation curves the halving protocol's hurdle is taken from
    """

    longer: dict[str, dict[float, EvalResult]]
    hurdle_curves: list[list[list[float]]]
    draws: list[_Draw] = field(default_factory=list)
    jobs: list[_Job] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    new: int = 0


# ---------------------------------------------------------------------------------------------------
# The loop.


class Search:
    """One search run over a run directory (see the module docstring).

    Building it checks everything and writes nothing but the run directory's lock: the directory (new
    runs) and the lock, the config (resumed runs: against config.json), the store and the checkpoint.
    `run()` starts the workers and only then writes the run's files, so a search that cannot start
    leaves nothing behind. The lock is held until `close()`. `run_dir=None` makes a fresh directory
    runs/STRATEGY-DATE-TIME once the checks have passed.
    """

    def __init__(self, config: SearchConfig, run_dir: Path | None, resume: bool = False) -> None:
        if resume and run_dir is None:
            raise SettingError("{1} needs {0}: the run directory to continue", "run_dir", "resume")
        self.config, self.resume = config, resume
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.notes: list[str] = []  # what a resume rebuilt, for the user
        self.store: RunStore | None = None
        self.progress = Progress(budget=config.budget)
        self._stack = ExitStack()
        self._created = False
        try:
            self._prepare()
        except BaseException:
            self.close()
            raise

    def _prepare(self) -> None:
        check_environment(self.config, self.config.eval)
        self.strategy = make_strategy(self.config)  # a plug-in that does not import fails here
        if self.resume:
            if not self.run_dir.is_dir():
                raise NosError(f"nothing to resume: {self.run_dir} does not exist")
        elif self.run_dir is not None:
            refuse_occupied(self.run_dir)  # before the lock: a refused directory gets no lock file
        _check_data(self.config)
        if self.run_dir is None:
            self.run_dir, self._created = default_run_dir(_dir_prefix(self.config.strategy)), True
        elif not self.resume:
            self._created = not self.run_dir.exists()
            create_run_dir(self.run_dir)
        self._stack.enter_context(run_lock(self.run_dir, "nos search"))
        if self.resume:
            start = resume_point(self.run_dir, self.config, self.strategy)
            self.notes.extend(start.notes)
        else:
            refuse_occupied(self.run_dir)  # again under the lock: another search may have begun meanwhile
            start = StartPoint(uuid.uuid4().hex)
        self.run_id = start.run_id
        self.rounds = start.rounds  # rounds ended (observed by the strategy and recorded)
        self.first_sample = start.samples  # where the current round's samples go

    # -- writing the run's files ---------------------------------------------------------------------

    def _start(self) -> None:
        """Write what the run starts with: a new run's store and config; a resumed run's changes."""
        self.store = RunStore.open(self.run_dir)
        config = self.config.to_dict()
        if self.resume:
            self.store.set_meta("config", config)
            self.seen = self.store.sample_keys(self.first_sample)
        else:
            self.store.set_meta_items({"run_id": self.run_id, "config": config})
        write_config(self.run_dir, config)

    def _save_checkpoint(self) -> None:
        save_checkpoint(self.run_dir, Checkpoint(self.run_id, self.rounds, self.first_sample,
                                                 self.strategy.state_dict()))

    # -- the loop ------------------------------------------------------------------------------------

    def run(self, on_progress: Callable[[Progress], None] = lambda p: None) -> Progress:
        """Run rounds until the budget of evaluations is spent.

        On KeyboardInterrupt the evaluations that finished are in the store (and the samples drawn
        before the first unfinished one); the interrupt goes on to the caller.
        """
        start = time.perf_counter()
        stalled = 0
        self.seen: dict[str, str] = {}  # rules drawn before the current round: key -> status
        # One intra-op thread for the controller: its LSTM is tiny, so extra threads only contend with
        # the evaluation workers (on a loaded machine PPO's sampling ran 10x slower with the default).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with make_search_executor(self.config) as executor:  # started before anything is written
                self._start()
                self._refresh_progress()
                self.progress.evaluations_at_start = self.progress.evaluations
                while self._budget_spent() < self.config.budget and stalled < STALL_ROUNDS:
                    known = len(self.seen)
                    self._round(executor, on_progress, start)
                    stalled = 0 if len(self.seen) > known else stalled + 1
        finally:
            torch.set_num_threads(threads)
        self.progress.wall_seconds = time.perf_counter() - start
        return self.progress

    def _budget_spent(self) -> int:
        """Trainings of the rounds recorded so far: the sampled rules' and the promotions'."""
        return (sum(status != "rejected" for status in self.seen.values())
                + self.store.n_promoted(before_round=self.rounds))

    def _round(self, executor, on_progress: Callable[[Progress], None], start: float) -> None:
        """Draw samples until `round_size` new evaluations are under way (fewer where the budget ends
        first), submitting each as soon as it is drawn; wait for them; then the strategy learns."""
        target = min(self.config.round_size, self.config.budget - self._budget_spent())
        # What the strategy sees of a rule it draws again: its score at the longest length it reached in
        # the rounds before this one; and the halving protocol's hurdle comes from the rules of finished
        # rounds only. So a replayed round sees and evaluates exactly what its first attempt did.
        hurdle_curves = ([[list(p) for p in c] for c in self.store.recent_val_curves(HURDLE_WINDOW)]
                         if self.config.eval.hurdle_quantile is not None else [])
        rnd = _Round(self.store.lengths(before_round=self.rounds), hurdle_curves)
        try:
            while rnd.new < target and len(rnd.draws) < MAX_SAMPLES_PER_ROUND * self.config.round_size:
                self._draw(executor, rnd)
                self._collect(executor, rnd, 0.0, on_progress, start)
            while executor.in_flight():
                self._collect(executor, rnd, 1.0, on_progress, start)
        except KeyboardInterrupt:
            # Keep the samples drawn before the first evaluation still running: a resume replays this
            # round and finds them, the same draws, in the store.
            done = next((i for i, d in enumerate(rnd.draws) if d.reward is None), len(rnd.draws))
            self.store.record_samples(self._samples(rnd.draws[:done]))
            raise
        samples = self._samples(rnd.draws)
        try:
            self._promote(executor, [*self.seen, *rnd.statuses], on_progress, start)
        except KeyboardInterrupt:
            self.store.record_samples(samples)
            raise
        if target == self.config.round_size:
            stats = self.strategy.observe([(d.proposal, d.reward) for d in rnd.draws])
            self.first_sample = self.store.record_round(samples, stats or [], ended_round=self.rounds)
            self.rounds += 1
            self._save_checkpoint()
        else:
            # The budget ended the round early. It is not checkpointed, so a resume with a larger
            # budget replays it whole (its samples and evaluations come back from the store) like an
            # uninterrupted run.
            self.store.record_samples(samples)
        self.seen.update(rnd.statuses)
        self._refresh_progress()
        on_progress(self.progress)

    def _draw(self, executor, rnd: _Round) -> None:
        """Draw one sample into the round: a rule stored before gives its reward at once, one the
        pre-screen rejects is stored as such, one being evaluated waits for that evaluation, and any
        other is submitted to the workers."""
        proposal = self.strategy.propose(1)[0]
        rule, stored = self._resolve(proposal.text)
        same = next((j for j in rnd.jobs if rule.key == j.rule.key or rule.fingerprint == j.rule.fingerprint), None)
        key = stored.key if stored is not None else same.rule.key if same is not None else rule.key
        # A hit: drawn in an earlier round, or earlier in this one. (A replayed round finds the
        # evaluations of its interrupted attempt in the store; they are not hits.)
        draw = _Draw(proposal, key, hit=key in self.seen or any(d.key == key for d in rnd.draws))
        if stored is not None:
            longer = rnd.longer.get(stored.key)
            draw.reward = max(longer.items())[1].reward if longer else stored.result.reward
            rnd.statuses[key] = stored.result.status
            rnd.new += not draw.hit and stored.result.status != "rejected"
        elif same is not None:
            same.draws.append(draw)
        elif not (screen := self._screen(rule)).passed:
            result = EvalResult(status="rejected", seed=self.config.eval.seed, reason=screen.reason)
            self.store.record_evaluation(self._record(rule), result, [])
            draw.reward, rnd.statuses[key] = result.reward, result.status
        else:
            rnd.jobs.append(_Job(rule, [draw]))
            executor.submit(len(rnd.jobs) - 1, {"rule": rule.text, "config": self.config.eval.to_dict(),
                                                "hurdle_curves": rnd.hurdle_curves})
            rnd.new += 1
        rnd.draws.append(draw)

    def _promote(self, executor, drawn: list[str], on_progress: Callable[[Progress], None], start: float) -> None:
        """Train the rules that earned a longer length (controller/promotion.py), length by length, and
        beside those promoted to the first longer length their decayed variants; one store transaction
        each."""
        lengths = self.store.lengths()
        population = [Entrant(s.key, s.text, s.result.reward) for s in map(self._stored, dict.fromkeys(drawn))
                      if s is not None and s.result.status == "ok"]
        for level, epochs in enumerate(self.config.lengths):
            chosen = promoted(population, self.config.promote, {k for k, v in lengths.items() if epochs in v})
            jobs: list[tuple[str, int | None]] = [(e.key, epochs) for e in chosen]
            texts = {e.key: e.text for e in chosen}
            new_variants: dict[str, tuple[Any, str]] = {}  # key -> (its Rule, its parent's key)
            if level == 0:  # the decayed variants compete from the first longer length on
                for e in chosen:
                    for decay in self.config.decays:
                        jobs += self._variant(e, decay, epochs, texts, new_variants, lengths)
            for (key, length), result in zip(jobs, self._train_all(executor, [(texts[k], e) for k, e in jobs],
                                                                     on_progress, start)):
                if length is None:  # a new variant's training at the search's own length
                    rule, parent = new_variants[key]
                    self.store.record_evaluation(self._record(rule), result, [])
                    self.store.record_variant(key, parent, self.rounds)
                else:
                    self.store.record_length(key, length, self.rounds, result)
                    lengths.setdefault(key, {})[length] = result
            population = [Entrant(k, self._stored(k).text, v[epochs].reward) for k, v in lengths.items()
                          if epochs in v and v[epochs].status == "ok"]
        self._refresh_progress(start)

    def _variant(self, parent: Entrant, decay: str, epochs: int, texts: dict[str, str],
                 new_variants: dict[str, tuple[Any, str]],
                 lengths: dict[str, dict[float, EvalResult]]) -> list[tuple[str, int | None]]:
        """The trainings the variant (parent)*decay still needs: at the search's length if it was never
        trained (it is then noted in new_variants with its Rule and parent), and at `epochs`; none when
        the pre-screen rejects it or it is too complex to build."""
        from nos_symbolic.dsl import dsl_text

        try:
            rule, stored = self._resolve(variant_text(dsl_text(parent.text), decay))
        except NosError:
            return []
        key = stored.key if stored is not None else rule.key
        if key in texts:  # a variant of two parents, or a promoted rule itself
            return []
        texts[key] = stored.text if stored is not None else rule.text
        need: list[tuple[str, int | None]] = []
        if stored is None:
            if not (screen := self._screen(rule)).passed:
                self.store.record_evaluation(self._record(rule), EvalResult(
                    status="rejected", seed=self.config.eval.seed, reason=screen.reason), [])
                return []
            need.append((key, None))
            new_variants[key] = (rule, parent.key)
        elif stored.result.status == "rejected":
            return []
        if epochs not in lengths.get(key, {}):
            need.append((key, epochs))
        return need

    def _train_all(self, executor, jobs: list[tuple[str, int | None]], on_progress: Callable[[Progress], None],
                   start: float) -> list[EvalResult]:
        """Evaluate each (rule text, epochs or None for the search's length) on the workers, in order."""
        results: list[EvalResult | None] = [None] * len(jobs)
        for i, (text, epochs) in enumerate(jobs):
            config = self.config.eval if epochs is None else replace(self.config.eval, epochs=epochs,
                                                                      hurdle_quantile=None)
            executor.submit(i, {"rule": text, "config": config.to_dict()})
        while executor.in_flight():
            for done in executor.poll(timeout=1.0):
                results[done.job_id] = done.result
                self.progress.worker_seconds += done.worker_seconds
                self._refresh_progress(start)
                on_progress(self.progress)
        return results

    def _stored(self, key: str) -> StoredRule | None:
        return self.store.lookup(key, None)

    def _samples(self, draws: list[_Draw]) -> list[SampleRecord]:
        return [SampleRecord(self.first_sample + i, self.config.strategy, tuple(d.proposal.tokens), d.key, d.reward,
                             d.hit) for i, d in enumerate(draws)]

    def _collect(self, executor, rnd: _Round, timeout: float, on_progress: Callable[[Progress], None],
                 start: float) -> None:
        """Record the evaluations that finished (one store transaction each) and give their rewards to
        the draws that waited on them."""
        for done in executor.poll(timeout=timeout):
            job = rnd.jobs[done.job_id]
            self.store.record_evaluation(self._record(job.rule), done.result, [])
            rnd.statuses[job.rule.key] = done.result.status
            for draw in job.draws:
                draw.reward = done.result.reward
            self.progress.worker_seconds += done.worker_seconds
            self._refresh_progress(start)
            on_progress(self.progress)

    def _resolve(self, text: str) -> tuple[Any, StoredRule | None]:
        """The rule `text` spells and its stored result: by key, or by fingerprint when the stored rule
        is confirmed to behave the same within float tolerance (the fingerprint is a candidate key)."""
        from nos_symbolic.rule import parse_rule, same_behaviour

        rule = parse_rule(text)
        stored = self.store.lookup(rule.key, rule.fingerprint)
        if stored is not None and stored.key != rule.key and not same_behaviour(rule, parse_rule(stored.text)):
            stored = None
        return rule, stored

    def _screen(self, rule):
        from nos_symbolic.prescreen import prescreen

        return prescreen(rule, self.config.eval.descent_threshold)

    def _record(self, rule) -> RuleRecord:
        return RuleRecord(key=rule.key, fingerprint=rule.fingerprint, scale_fingerprint=rule.scale_fingerprint,
                          text=rule.text, canonical=rule.canonical_text, latex=rule.latex(),
                          seed=self.config.eval.seed)

    def _refresh_progress(self, start: float | None = None) -> None:
        p, store = self.progress, self.store
        p.evaluations = store.n_trainings()
        p.samples = store.n_samples()
        p.cache_hits = store.n_cache_hits()
        p.rejected = store.n_evaluations(count_rejected=True) - store.n_evaluations()
        p.promoted = store.n_promoted()
        top = store.top(1)
        if top:
            p.best_reward, p.best_rule = top[0].result.reward, _readable(top[0].text)
        if start is not None:
            p.wall_seconds = time.perf_counter() - start

    def close(self) -> None:
        """Close the store and release the run directory; a new run that wrote nothing leaves no
        directory behind."""
        if self.store is not None:
            self.store.close()
        elif self._created:
            discard_run_dir(self.run_dir)
        self._stack.close()


def _dir_prefix(strategy: str) -> str:
    """A default run directory's prefix: the strategy's name (a plug-in module:Class gives Class)."""
    return strategy.rpartition(":")[2].rpartition(".")[2] or "search"


def _check_data(config: SearchConfig) -> None:
    """Build a built-in task's data from its data_dir once here, before anything is written, so a bad
    data file is one error now rather than a failure in every worker (the workers then read the cache)."""
    from nos_symbolic.tasks import get_task, is_custom

    ev = config.eval
    if ev.data_dir is None or is_custom(ev.task) or (config.backend == "ray" and config.address is not None):
        return
    get_task(ev.task, **ev.get_task_options())


def _readable(text: str) -> str:
    from nos_symbolic.dsl import dsl_text

    return dsl_text(text)
