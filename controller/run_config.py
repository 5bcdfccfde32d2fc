"""A search run's settings: `SearchConfig` (recorded in the run directory's config.json), its checks,
the checks of the machine that will run it, and reading a recorded config back for --resume.

    config = SearchConfig(strategy="ppo", budget=240, eval=EvalConfig())
    config = resume_config(run_dir, given, explicit={"budget"})    # the run's own, with a new budget
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from controller.promotion import DEFAULT_BUDGET, DEFAULT_DECAYS, DEFAULT_LENGTHS, DEFAULT_PROMOTE
from controller.store import STORE_FILENAME, RunStore
from controller.workers import SEARCH_TIMEOUT, Workers
from nos_symbolic.errors import NosError, SettingError, check_known_keys
from nos_symbolic.eval_config import EvalConfig
from nos_symbolic.settings import check_fraction, check_int, setting

CONFIG_FILE = "config.json"
# Settings that may change on --resume: how long the run goes and where its evaluations run (every
# Workers setting), not what it finds.
RESUMABLE_CHANGES = frozenset({"budget"} | {f.name for f in fields(Workers)})
MAX_SEED = 2**63 - 1  # torch.manual_seed's range


def _warm_start_value(names: tuple[str, ...]) -> str:
    """Names of optimizers (or all), checked, as the comma list a config records."""
    from controller.warmstart import warm_start_names

    return ",".join(warm_start_names(names))


@dataclass(frozen=True)
class SearchConfig(Workers):
    """A search run, recorded in the run directory's config.json: the strategy, the budget, where the
    evaluations run (`Workers`), the promotion to longer trainings (controller/promotion.py) and how
    each rule is scored (`eval`). Each field is a setting (nos_symbolic/settings.py) whose help says
    what it means."""

    # The default is what the benchmark at full length supports (bench/bench_strategies_live.py, README
    # "Benchmarks"): no strategy finds a better 30-epoch validation score than random search at the
    # default budget, and the PPO controller's best rules test highest (p = 0.04, 10 seeds);
    # evolution leads only on the 3-epoch reward of a small space (bench/bench_tabular.py).
    strategy: str = setting("ppo", help="ppo (the paper's LSTM controller trained with PPO, the default), "
                            "evolution (regularized evolution), random, or module:Class (a Strategy of your "
                            "own)")
    budget: int = setting(DEFAULT_BUDGET, help="trainings of a child network at any length (promotions "
                                               "included), not samples")
    seed: int = setting(0, help="the strategy's seed (evaluations use the evaluation seed)")
    n_groups: int = setting(3, flag="--groups", help="5-token groups per rule (op1, op2, u1, u2, b)")
    round_size: int = setting(16, help="new evaluations per round; the strategy learns between rounds")
    lengths: tuple[int, ...] | None = setting(
        None, nargs="*", help="epochs of the longer trainings the best rules are promoted to, in order "
        f"(default: those of {' '.join(map(str, DEFAULT_LENGTHS))} longer than the evaluation's; none "
        "given: every rule at the evaluation's length only)")
    promote: float = setting(DEFAULT_PROMOTE, help="fraction of the rules that ended a length ok promoted "
                                                   "to the next")
    decays: tuple[str, ...] = setting(DEFAULT_DECAYS, nargs="*", help="schedules whose variants (rule)*decay "
                                      "are trained beside each rule promoted to the first longer length "
                                      "(none given: no variants)")
    eval: EvalConfig = field(default_factory=EvalConfig)
    objective: str = setting("mean", choices=["mean", "best"], help="ppo: train on every sample against a "
                             "moving-average baseline (mean), or on the top risk-epsilon of each batch "
                             "against its quantile (best: risk-seeking; controller/ppo.py)")
    risk_epsilon: float = setting(0.25, help="objective best: the fraction of each batch trained on")
    warm_start: str = setting("", nargs="*", from_text=_warm_start_value, help="ppo, evolution: named "
                              "optimizers proposed first (sgd, momentum, adam, rmsprop, powersign, addsign, "
                              "each also -ld, -cd, -rd; all: every one the space expresses)")

    def __post_init__(self) -> None:
        from controller.strategies import STRATEGIES

        super().__post_init__()
        if self.timeout is None:
            object.__setattr__(self, "timeout", SEARCH_TIMEOUT)
        if not isinstance(self.strategy, str) or (self.strategy not in STRATEGIES and ":" not in self.strategy):
            raise SettingError(f"unknown strategy {self.strategy!r} ({{0}}); expected one of "
                               f"{', '.join(STRATEGIES)}, or module:Class for a Strategy of your own", "strategy")
        for name in ("budget", "n_groups", "round_size"):
            check_int(name, getattr(self, name), 1)
        check_int("seed", self.seed, 0, MAX_SEED)
        if not isinstance(self.eval, EvalConfig):
            raise SettingError(f"{{0}} must be an EvalConfig, got {type(self.eval).__name__}", "eval")
        if self.gpus_per_eval > 0 and self.eval.device == "cpu":  # each evaluation gets a GPU: use it
            object.__setattr__(self, "eval", replace(self.eval, device=self.device))
        self._check_promotion()
        from controller.ppo import PPOConfig

        from controller.warmstart import warm_start_names

        PPOConfig(objective=self.objective, risk_epsilon=self.risk_epsilon)  # refused before a run starts
        if not isinstance(self.warm_start, str):
            raise SettingError(f"{{0}} must be a comma-separated list of names, got {self.warm_start!r}", "warm_start")
        warm_start_names([name for name in self.warm_start.split(",") if name])

    def _check_promotion(self) -> None:
        """lengths (None: the default ones past the evaluation's), promote and decays."""
        from nos_symbolic.registry import REGISTRY

        if self.lengths is None:
            object.__setattr__(self, "lengths", tuple(e for e in DEFAULT_LENGTHS if e > self.eval.epochs))
        if not isinstance(self.lengths, tuple) or any(isinstance(e, bool) or not isinstance(e, int) for e in self.lengths) \
                or list(self.lengths) != sorted(set(self.lengths)) or (self.lengths and self.lengths[0] <= self.eval.epochs):
            raise SettingError(f"{{0}} must be whole numbers of epochs, increasing, each longer than the "
                               f"evaluation's {self.eval.epochs} epochs ({{1}}), got {list(self.lengths)!r}",
                               "lengths", "eval.epochs")
        check_fraction("promote", self.promote, closed=False)
        bad = [d for d in self.decays if not isinstance(d, str) or getattr(REGISTRY.get(d), "kind", None) != "schedule"]
        if not isinstance(self.decays, tuple) or bad:
            raise SettingError(f"{{0}} must name schedules (ld, cd, rd), got {list(self.decays)!r}", "decays")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(eval=self.eval.to_dict(), lengths=list(self.lengths), decays=list(self.decays))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SearchConfig":
        """The config `to_dict` wrote (config.json)."""
        check_known_keys(cls, d, "search")
        d = dict(d)
        d["eval"] = EvalConfig.from_dict(d.get("eval", {}))
        for name in ("lengths", "decays"):
            if isinstance(d.get(name), list):
                d[name] = tuple(d[name])
        return cls(**d)




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
        return recorded
    if (run_dir / STORE_FILENAME).is_file():
        with RunStore.open_readonly(run_dir) as store:
            stored = store.get_meta("config")
        if isinstance(stored, dict):
            return stored
        if stored is not None:
            raise NosError(f"the config in {run_dir / STORE_FILENAME} is {_json_kind(stored)}, not a JSON object "
                           f"of settings; this run cannot be resumed: start a new run in another run directory")
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
                       f"(only {', '.join(sorted(RESUMABLE_CHANGES))} may change on resume)")
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
