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

import io
import json
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import torch

from controller.checkpoint import (CHECKPOINT_FILE, LEGACY_UPDATES_FILE, Checkpoint, legacy_updates,
                                   write_atomic, check_checkpoint, load_checkpoint)
from controller.executors import make_executor
from controller.lock import run_lock
from controller.promotion import Entrant, promoted, variant_text
from controller.run_config import (CONFIG_FILE, RESUMABLE_CHANGES, SearchConfig, check_environment,
                                   config_difference, read_run_config, resume_config, with_legacy_defaults)
from controller.rundir import create_run_dir, default_run_dir, discard_run_dir
from controller.store import STORE_FILENAME, RuleRecord, RunStore, SampleRecord, StoredRule, StoreError
from nos_symbolic.errors import NosError
from nos_symbolic.result import EvalResult

# The run's settings and its checkpoint live in run_config.py and checkpoint.py; these names are the
# search's public face as well.
__all__ = ["CHECKPOINT_FILE", "CONFIG_FILE", "LEGACY_UPDATES_FILE", "RESUMABLE_CHANGES", "Checkpoint", "Progress",
           "Search", "SearchConfig", "check_environment", "config_difference", "load_checkpoint",
           "make_search_executor", "make_strategy", "read_run_config", "resume_config"]

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
class _Pending:
    rule: Any  # nos_symbolic.rule.Rule
    positions: list[int]


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
    from controller.strategies import build_strategy, strategy_options

    return build_strategy(config.strategy, SearchSpace(n_groups=config.n_groups), seed=config.seed,
                          round_size=config.round_size, **strategy_options(config))


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
            raise NosError("resuming needs the run directory to continue")
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
        check_environment(self.config)
        self.strategy = make_strategy(self.config)  # a plug-in that does not import fails here
        if self.resume:
            if not self.run_dir.is_dir():
                raise NosError(f"nothing to resume: {self.run_dir} does not exist")
        elif self.run_dir is not None:
            _refuse_occupied(self.run_dir)  # before the lock: a refused directory gets no lock file
        _check_data(self.config)
        if self.run_dir is None:
            self.run_dir, self._created = default_run_dir(_dir_prefix(self.config.strategy)), True
        elif not self.resume:
            self._created = not self.run_dir.exists()
            create_run_dir(self.run_dir)
        self._stack.enter_context(run_lock(self.run_dir, "nos search"))
        self.rounds = 0  # rounds ended (observed by the strategy and recorded)
        self.first_sample = 0  # where the current round's samples go
        self.run_id = uuid.uuid4().hex
        if self.resume:
            self._check_resume()
        elif (self.run_dir / CONFIG_FILE).exists() or _holds_run(self.run_dir):
            raise NosError(f"{self.run_dir} already holds a run; pass --resume to continue it or choose "
                           f"another --run-dir")

    def _check_resume(self) -> None:
        stored = read_run_config(self.run_dir)
        diff = config_difference(stored, self.config.to_dict())
        if diff:
            raise NosError(f"refusing to resume {self.run_dir} with a different config: {'; '.join(diff)}")
        if not (self.run_dir / STORE_FILENAME).is_file():
            raise NosError(f"{self.run_dir} has {CONFIG_FILE} but no {STORE_FILENAME}: the run's evaluations are "
                           f"gone. Restore {STORE_FILENAME} from a backup, or start a new run in another "
                           f"--run-dir")
        ckpt = load_checkpoint(self.run_dir)
        with RunStore.open_readonly(self.run_dir) as store:
            recorded = store.get_meta("config")
            diff = config_difference(with_legacy_defaults(recorded if isinstance(recorded, dict) else stored), stored)
            if diff:
                raise NosError(f"{self.run_dir / CONFIG_FILE} is not the config the run was made with "
                               f"({'; '.join(d.replace('given', 'in config.json') for d in diff)}); undo the edit")
            if ckpt is not None:
                check_checkpoint(ckpt, store, self.run_dir)
                self._restore_strategy(ckpt)
                self.rounds, self.first_sample = ckpt.rounds, ckpt.samples
            elif store.progress.rounds > 0:
                self.notes.append(f"{CHECKPOINT_FILE} is missing: rebuilding the controller by replaying "
                                  f"{store.progress.rounds} rounds from the store")
            self.run_id = store.run_id or self.run_id

    def _restore_strategy(self, ckpt: Checkpoint) -> None:
        """Load the checkpoint's strategy state; one the strategy refuses is an error saying how to rebuild it."""
        path = self.run_dir / CHECKPOINT_FILE
        try:
            self.strategy.load_state_dict(ckpt.strategy)
        except Exception as err:
            raise NosError(f"cannot restore the controller from {path} ({type(err).__name__}: "
                           f"{' '.join(str(err).split())[:200]}); move it away (`mv {path} {path}.bad`) and "
                           f"resume again to rebuild the controller from the store") from None

    # -- writing the run's files ---------------------------------------------------------------------

    def _start(self) -> None:
        """Write what the run starts with: a new run's store and config; a resumed run's changes."""
        self.store = RunStore.open(self.run_dir)
        config = self.config.to_dict()
        if not self.resume:
            self.store.set_meta_items({"run_id": self.run_id, "config": config})
            write_atomic(self.run_dir / CONFIG_FILE, json.dumps(config, indent=2).encode())
            return
        meta: dict[str, Any] = {"config": config}
        if self.store.run_id is None:  # a run from before run ids: adopt it
            meta.update(run_id=self.run_id, progress={"rounds": self.rounds, "samples": self.first_sample})
        self.store.set_meta_items(meta)
        legacy = self.run_dir / LEGACY_UPDATES_FILE
        if legacy.exists() and not any(True for _ in self.store.updates()):
            self.store.record_updates([row for row in legacy_updates(legacy) if row[0] < self.rounds])
        path = self.run_dir / CONFIG_FILE
        if not path.exists() or json.loads(path.read_text()) != config:  # a budget or worker change
            write_atomic(path, json.dumps(config, indent=2).encode())
        self.seen = self.store.sample_keys(self.first_sample)

    def _save_checkpoint(self) -> None:
        buf = io.BytesIO()
        torch.save({"run_id": self.run_id, "rounds": self.rounds, "samples": self.first_sample,
                    "strategy": self.strategy.state_dict()}, buf)
        write_atomic(self.run_dir / CHECKPOINT_FILE, buf.getvalue())

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
        proposals: list[Any] = []
        rewards: list[float | None] = []
        hits: list[bool] = []
        keys: list[str] = []
        jobs: list[_Pending] = []
        statuses: dict[str, str] = {}  # the round's rules, as their evaluations become known
        new = 0
        # What the strategy sees of a rule it draws again: its score at the longest length it reached in
        # the rounds before this one (so a replayed round sees what its first attempt saw).
        longer = self.store.lengths(before_round=self.rounds)
        # The hurdle of the halving protocol comes from the rules of finished rounds only, so a replayed
        # round evaluates exactly as its first attempt did.
        hurdle_curves = ([[list(p) for p in c] for c in self.store.recent_val_curves(HURDLE_WINDOW)]
                         if self.config.eval.hurdle_quantile is not None else [])
        try:
            while new < target and len(proposals) < MAX_SAMPLES_PER_ROUND * self.config.round_size:
                i = len(proposals)
                proposals.append(self.strategy.propose(1)[0])
                rule, stored = self._resolve(proposals[i].text)
                same = next((j for j in jobs if rule.key == j.rule.key or rule.fingerprint == j.rule.fingerprint),
                            None)
                key = stored.key if stored is not None else same.rule.key if same is not None else rule.key
                # A hit: drawn in an earlier round, or earlier in this one. (A replayed round finds the
                # evaluations of its interrupted attempt in the store; they are not hits.)
                hit = key in keys or key in self.seen
                reward = None
                if stored is not None:
                    reward = stored.result.reward
                    if stored.key in longer:
                        reward = max(longer[stored.key].items())[1].reward
                    statuses[key] = stored.result.status
                    new += not hit and stored.result.status != "rejected"
                elif same is not None:
                    same.positions.append(i)
                elif not (screen := self._screen(rule)).passed:
                    result = EvalResult(status="rejected", seed=self.config.eval.seed, reason=screen.reason)
                    self.store.record_evaluation(self._record(rule), result, [])
                    reward, statuses[key] = result.reward, result.status
                else:
                    jobs.append(_Pending(rule, [i]))
                    executor.submit(len(jobs) - 1, {"rule": rule.text, "config": self.config.eval.to_dict(),
                                                    "hurdle_curves": hurdle_curves})
                    new += 1
                rewards.append(reward)
                hits.append(hit)
                keys.append(key)
                self._collect(executor, jobs, rewards, statuses, 0.0, on_progress, start)
            while executor.in_flight():
                self._collect(executor, jobs, rewards, statuses, 1.0, on_progress, start)
        except KeyboardInterrupt:
            # Keep the samples drawn before the first evaluation still running: a resume replays this
            # round and finds them, the same draws, in the store.
            done = next((i for i, r in enumerate(rewards) if r is None), len(rewards))
            self.store.record_samples(self._samples(proposals[:done], keys, rewards, hits))
            raise
        samples = self._samples(proposals, keys, rewards, hits)
        try:
            self._promote(executor, [*self.seen, *statuses], on_progress, start)
        except KeyboardInterrupt:
            self.store.record_samples(samples)
            raise
        if target == self.config.round_size:
            stats = self.strategy.observe(list(zip(proposals, rewards)))
            self.first_sample = self.store.record_round(samples, stats or [], ended_round=self.rounds)
            self.rounds += 1
            self._save_checkpoint()
        else:
            # The budget ended the round early. It is not checkpointed, so a resume with a larger
            # budget replays it whole (its samples and evaluations come back from the store) like an
            # uninterrupted run.
            self.store.record_samples(samples)
        self.seen.update(statuses)
        self._refresh_progress()
        on_progress(self.progress)

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

    def _samples(self, proposals: list[Any], keys: list[str], rewards: list[float | None],
                 hits: list[bool]) -> list[SampleRecord]:
        return [SampleRecord(self.first_sample + i, self.config.strategy, tuple(p.tokens), keys[i], rewards[i], hits[i])
                for i, p in enumerate(proposals)]

    def _collect(self, executor, jobs: list[_Pending], rewards: list[float | None], statuses: dict[str, str],
                 timeout: float, on_progress: Callable[[Progress], None], start: float) -> None:
        """Record the evaluations that finished (one store transaction each)."""
        for done in executor.poll(timeout=timeout):
            job = jobs[done.job_id]
            self.store.record_evaluation(self._record(job.rule), done.result, [])
            statuses[job.rule.key] = done.result.status
            for i in job.positions:
                rewards[i] = done.result.reward
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


def _holds_run(run_dir: Path) -> bool:
    """A store with a run id or any rows (one without is the debris of a start killed mid-way); a file
    that is no run store counts too, so nothing is written over it."""
    path = run_dir / STORE_FILENAME
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        with RunStore.open_readonly(run_dir) as store:
            return store.run_id is not None or store.n_samples() > 0 or store.n_evaluations(True) > 0
    except StoreError:
        return True


def _refuse_occupied(run_dir: Path) -> None:
    """Refuse a new run in a directory that already holds one (pass --resume) or holds a store.sqlite or
    config.json that is not a nos run's (choose another directory); writes nothing."""
    if not run_dir.is_dir():
        return
    foreign = _foreign_files(run_dir)
    store_ok = not any(f.startswith(STORE_FILENAME) for f in foreign)
    if (store_ok and _holds_run(run_dir)) or (not foreign and (run_dir / CONFIG_FILE).exists()):
        raise NosError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --run-dir")
    if foreign:
        raise NosError(f"{run_dir} is not a nos run but holds {' and '.join(foreign)}; nos writes a new run only "
                       f"into a new or empty directory: choose another --run-dir")


def _foreign_files(run_dir: Path) -> list[str]:
    """The files named like a run's (store.sqlite, config.json) in run_dir that are not a nos run's, each
    with what it is instead."""
    found = []
    store = run_dir / STORE_FILENAME
    if store.exists() and not (store.is_file() and store.stat().st_size == 0):
        try:
            RunStore.open_readonly(run_dir).close()
        except StoreError as err:
            found.append(f"{STORE_FILENAME}, which is no run store ({' '.join(str(err).split())[:160]})")
    config = run_dir / CONFIG_FILE
    if config.exists() and not _is_run_config(config):
        found.append(f"a {CONFIG_FILE} that is not a nos run's config")
    return found


def _is_run_config(path: Path) -> bool:
    """Whether path holds a config nos search recorded: a JSON object of SearchConfig's settings."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    names = {f.name for f in fields(SearchConfig)}
    return isinstance(recorded, dict) and {"strategy", "eval"} <= set(recorded) and set(recorded) <= names


def _check_data(config: SearchConfig) -> None:
    """Build a built-in task's data from its --data-dir once here, before anything is written, so a bad
    data file is one error now rather than a failure in every worker (the workers then read the cache)."""
    from nos_symbolic.tasks import get_task, is_custom

    ev = config.eval
    if ev.data_dir is None or is_custom(ev.task) or (config.backend == "ray" and config.address is not None):
        return
    get_task(ev.task, **ev.get_task_options())


def _readable(text: str) -> str:
    from nos_symbolic.dsl import dsl_text

    return dsl_text(text)
