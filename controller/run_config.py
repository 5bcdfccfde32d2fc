"""A search run's settings: `SearchConfig` (recorded in the run directory's config.json), its checks,
the checks of the machine that will run it, and reading a recorded config back for --resume.

    config = SearchConfig(strategy="ppo", budget=240, eval=EvalConfig())
    config = resume_config(run_dir, given, explicit={"budget"})    # the run's own, with a new budget
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from controller.promotion import DEFAULT_BUDGET, DEFAULT_DECAYS, DEFAULT_LENGTHS, DEFAULT_PROMOTE
from controller.store import STORE_FILENAME, RunStore
from nos_symbolic.errors import NosError, check_known_keys
from nos_symbolic.evaluate import EvalConfig

CONFIG_FILE = "config.json"
# Settings that may change on --resume: they decide how fast the run goes, not what it finds.
RESUMABLE_CHANGES = frozenset({"budget", "workers", "timeout", "backend", "address", "cpus_per_eval",
                               "gpus_per_eval"})
BACKENDS = ("local", "ray")
WORKERS_PER_CORE = 4  # local workers beyond this many per core only queue for the CPU
MAX_SEED = 2**63 - 1  # torch.manual_seed's range
_LEGACY = {"lengths": [], "promote": DEFAULT_PROMOTE, "decays": [], "objective": "mean", "risk_epsilon": 0.25,
           "warm_start": ""}  # a config from before promotion and the objectives
# The option each field is set by, for error messages.
_FLAGS = {"n_groups": "--groups", "budget": "--budget", "workers": "--workers", "seed": "--seed",
          "round_size": "--round-size", "timeout": "--timeout", "cpus_per_eval": "--cpus-per-eval",
          "gpus_per_eval": "--gpus-per-eval", "backend": "--backend", "address": "--address",
          "strategy": "--strategy", "lengths": "--lengths", "promote": "--promote",
          "decays": "--decays"}


@dataclass(frozen=True)
class SearchConfig:
    """A search run. Recorded in the run directory's config.json.

    strategy:   ppo (the paper's controller), random, evolution, or module:Class (a plug-in Strategy)
    budget:     trainings of a child network at any length (promotions included), not samples
    workers:    worker processes (0: evaluate in this process)
    seed:       the strategy's seed; evaluations use eval.seed
    n_groups:   5-token groups per rule (op1, op2, u1, u2, b)
    round_size: new evaluations per round; the strategy learns between rounds
    timeout:    seconds before an evaluation is killed and recorded as error
    backend:    local (worker processes on this machine) or ray (a Ray cluster; the `ray` extra)
    address:    Ray cluster address ("auto", "ray://host:10001"); None starts a local Ray instance
    cpus_per_eval, gpus_per_eval: Ray resources of one evaluation
    lengths:    epochs of the longer trainings rules are promoted to, in order (controller/promotion.py);
                () trains every rule at the evaluation's length only; None: those of DEFAULT_LENGTHS
                longer than the evaluation's
    promote:    the fraction of the rules that ended a length `ok` promoted to the next one
    decays:     schedules whose variants (rule)*decay are trained beside a rule promoted to the first longer length
    objective:  ppo: mean (advantage against a moving-average baseline) or best (risk-seeking: the top
                risk_epsilon of each batch, against its (1 - risk_epsilon) quantile; controller/ppo.py)
    risk_epsilon: objective best: the fraction of each PPO batch trained on
    warm_start: ppo and evolution: comma-separated named optimizers proposed first ("all": every one
                the space expresses; controller/warmstart.py); "" none
    """

    strategy: str = "ppo"
    budget: int = DEFAULT_BUDGET
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    seed: int = 0
    n_groups: int = 3
    round_size: int = 16
    timeout: float = 300.0
    backend: str = "local"
    address: str | None = None
    cpus_per_eval: float = 1.0
    gpus_per_eval: float = 0.0
    lengths: tuple[int, ...] | None = None
    promote: float = DEFAULT_PROMOTE
    decays: tuple[str, ...] = DEFAULT_DECAYS
    eval: EvalConfig = field(default_factory=EvalConfig)
    objective: str = "mean"
    risk_epsilon: float = 0.25
    warm_start: str = ""

    def __post_init__(self) -> None:
        from controller.strategies import STRATEGIES

        if not isinstance(self.strategy, str) or (self.strategy not in STRATEGIES and ":" not in self.strategy):
            raise NosError(f"unknown strategy {self.strategy!r} (--strategy); expected one of "
                           f"{', '.join(STRATEGIES)}, or module:Class for a Strategy of your own")
        for name in ("budget", "n_groups", "round_size"):
            _check_int(name, getattr(self, name), 1)
        _check_int("workers", self.workers, 0)
        _check_int("seed", self.seed, 0, MAX_SEED)
        _check_number("timeout", self.timeout, positive=True)
        _check_number("cpus_per_eval", self.cpus_per_eval, positive=False)
        _check_number("gpus_per_eval", self.gpus_per_eval, positive=False)
        if self.backend not in BACKENDS:
            raise NosError(f"unknown backend {self.backend!r} (--backend); expected one of {', '.join(BACKENDS)}")
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise NosError(f"--address must be a Ray address such as auto or ray://host:10001, got {self.address!r}")
        if self.lengths is None and isinstance(self.eval, EvalConfig):
            object.__setattr__(self, "lengths", tuple(e for e in DEFAULT_LENGTHS if e > self.eval.epochs))
        if not isinstance(self.lengths, tuple) or any(isinstance(e, bool) or not isinstance(e, int) for e in self.lengths) \
                or list(self.lengths) != sorted(set(self.lengths)) or (self.lengths and self.lengths[0] <= self.eval.epochs):
            raise NosError(f"{_FLAGS['lengths']} must be whole numbers of epochs, increasing, each longer than the "
                           f"evaluation's {self.eval.epochs} epochs, got {list(self.lengths)!r}")
        if isinstance(self.promote, bool) or not isinstance(self.promote, (int, float)) or not 0 < self.promote < 1:
            raise NosError(f"{_FLAGS['promote']} must be a fraction between 0 and 1, got {self.promote!r}")
        from nos_symbolic.registry import REGISTRY

        bad = [d for d in self.decays if not isinstance(d, str) or getattr(REGISTRY.get(d), "kind", None) != "schedule"]
        if not isinstance(self.decays, tuple) or bad:
            raise NosError(f"{_FLAGS['decays']} must name schedules (ld, cd, rd), got {list(self.decays)!r}")
        if not isinstance(self.eval, EvalConfig):
            raise NosError(f"eval must be an EvalConfig, got {type(self.eval).__name__}")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(eval=self.eval.to_dict(), lengths=list(self.lengths), decays=list(self.decays))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SearchConfig":
        check_known_keys(cls, d, "search")
        d = with_legacy_defaults(d)
        d["eval"] = EvalConfig.from_dict(d.get("eval", {}))
        d["lengths"] = tuple(d["lengths"]) if isinstance(d["lengths"], list) else d["lengths"]
        d["decays"] = tuple(d["decays"]) if isinstance(d["decays"], list) else d["decays"]
        return cls(**d)


def with_legacy_defaults(d: dict[str, Any]) -> dict[str, Any]:
    """A recorded config with the settings added since it was written set as that run ran (no
    promotion), so a run resumes as it began."""
    return {**_LEGACY, **d} if isinstance(d, dict) else d


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        raise NosError(f"{_FLAGS.get(name, name)} must be {bound}, got {value!r}")


def _check_number(name: str, value: Any, positive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        raise NosError(f"{_FLAGS.get(name, name)} must be a finite number {'> 0' if positive else '>= 0'}, "
                       f"got {value!r}")


def check_environment(config: SearchConfig) -> None:
    """Refuse, before anything is written, a search this machine cannot run: Ray missing, too many
    local workers, CUDA asked for and absent, data that is not there."""
    cores = os.cpu_count() or 1
    if config.backend == "ray":
        from controller.ray_executor import require_ray

        require_ray()
    elif config.workers > WORKERS_PER_CORE * cores:
        raise NosError(f"--workers {config.workers} is more than {WORKERS_PER_CORE} per core ({cores} cores "
                       f"here: at most {WORKERS_PER_CORE * cores}); pass a smaller --workers")
    if config.backend == "local" and config.gpus_per_eval > 0:
        raise NosError("--gpus-per-eval applies to the ray backend; pass --backend ray")
    if config.backend == "local" or config.address is None:  # evaluations run on this machine
        config.eval.check_device()
        config.eval.check_data()




def config_difference(stored: dict[str, Any], given: dict[str, Any], prefix: str = "",
                      keys: set[str] | None = None) -> list[str]:
    """Human-readable differences between two config dicts, ignoring RESUMABLE_CHANGES; `keys`
    (dotted, e.g. "eval.lrs") limits the comparison to those settings."""
    out = []
    for key in sorted(set(stored) | set(given)):
        a, b, name = stored.get(key), given.get(key), prefix + key
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_difference(a, b, name + ".", keys)
        elif a != b and name not in RESUMABLE_CHANGES and (keys is None or name in keys):
            out.append(f"{name}: {a!r} in the run, {b!r} given")
    return out


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The config a run recorded: its config.json, or the copy in its store if that file is gone."""
    if not run_dir.is_dir():
        raise NosError(f"nothing to resume: {run_dir} does not exist")
    path = run_dir / CONFIG_FILE
    fix = f"restore it from the run's store: `mv {path} {path}.bad`, then run the command again"
    if path.exists():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise NosError(f"cannot read {path}: {err}; {fix}") from None
        if not isinstance(recorded, dict):
            raise NosError(f"{path} is not a run config: it holds {_json_kind(recorded)}, not a JSON object of "
                           f"settings; {fix}")
        return with_legacy_defaults(recorded)
    if (run_dir / STORE_FILENAME).is_file():
        with RunStore.open_readonly(run_dir) as store:
            stored = store.get_meta("config")
        if isinstance(stored, dict):
            return with_legacy_defaults(stored)
        if stored is not None:
            raise NosError(f"the config in {run_dir / STORE_FILENAME} is {_json_kind(stored)}, not a JSON object "
                           f"of settings; this run cannot be resumed: start a new run in another --run-dir")
    raise NosError(f"nothing to resume in {run_dir}: no {CONFIG_FILE}")


def _json_kind(value: Any) -> str:
    """How a JSON value that should have been an object reads in a message: "a list", "null", ..."""
    kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number",
             type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def resume_config(run_dir: Path, given: SearchConfig, explicit: set[str]) -> SearchConfig:
    """The run's recorded config with the settings given explicitly (dotted names, e.g. "budget",
    "eval.lrs") applied; refuses a given setting that would change what the run finds."""
    stored = read_run_config(run_dir)
    wanted = given.to_dict()
    diff = config_difference(stored, wanted, keys=explicit)
    if diff:
        raise NosError(f"refusing to resume {run_dir} with a different config: {'; '.join(diff)} "
                       f"(only {', '.join(sorted(RESUMABLE_CHANGES))} may change on --resume)")
    return _with_changes(run_dir, stored, {key: wanted[key] for key in explicit & RESUMABLE_CHANGES})


def resumed_config(run_dir: Path, changes: dict[str, Any]) -> SearchConfig:
    """The run's recorded config with `changes` applied, each a setting a resume may change
    (RESUMABLE_CHANGES: budget, workers, ...); the way a Python caller resumes."""
    refused = sorted(set(changes) - RESUMABLE_CHANGES)
    if refused:
        raise NosError(f"cannot change {', '.join(refused)} on resume (only {', '.join(sorted(RESUMABLE_CHANGES))})")
    return _with_changes(run_dir, read_run_config(run_dir), changes)


def _with_changes(run_dir: Path, stored: dict[str, Any], changes: dict[str, Any]) -> SearchConfig:
    """stored with the resumable `changes` applied, as a checked SearchConfig; the evaluations follow
    gpus_per_eval onto or off the GPU."""
    merged = {**stored, **changes}
    gpus = changes.get("gpus_per_eval")
    if "gpus_per_eval" in changes and isinstance(stored.get("eval", {}), dict):
        merged["eval"] = {**stored.get("eval", {}),
                          "device": "cuda" if isinstance(gpus, (int, float)) and gpus > 0 else "cpu"}
    try:
        return SearchConfig.from_dict(merged)
    except (TypeError, ValueError, AttributeError, KeyError) as err:  # NosError is a ValueError
        raise NosError(f"the config recorded in {run_dir} is not valid: {err}") from None
