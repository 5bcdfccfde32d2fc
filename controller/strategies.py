"""Search strategies: what to try next, given the rewards so far. All share one `SearchSpace`.

The search loop asks a strategy for proposals, scores each (from the store on a cache hit, else by
training a child network) and hands every reward back, cache hits included:

    proposals = strategy.propose(n)
    strategy.observe([(proposal, reward), ...])

Proposals may be observed later than they were proposed and in any grouping, but a strategy's
behaviour depends on the order of `observe` calls, so a deterministic search observes in proposal order.
`state_dict` is a snapshot (RNG states included): restoring it into a strategy built with the same
arguments continues the same sequence of proposals. Checkpoint when no proposal is outstanding, or keep
the outstanding proposals (plain data) to observe after resuming.
"""
from __future__ import annotations

import copy
import inspect
import os
import sys
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from controller.policy import LSTMPolicy
from controller.ppo import PPO, PPOConfig
from controller.screen import DEFAULT_RESAMPLES, TokenScreen
from controller.space import SearchSpace
from controller.warmstart import warm_start_tokens
from nos_symbolic.errors import NosError
from nos_symbolic.user_module import import_user_module
from nos_symbolic.rule import parse_rule


@dataclass(frozen=True)
class Proposal:
    """One rule to score: its tokens, its DSL text, and for PPO the log-probability it was sampled with."""

    tokens: tuple[int, ...]
    text: str
    logprob: float | None = None


Scored = Sequence[tuple[Proposal, float]]


class Strategy(ABC):
    """Proposes rules of `space` and learns from their rewards: the interface of every strategy, built-in
    or plugged in with `nos search --strategy module:Class`.

    Constructor: `Class(space, seed)`; `space` is the run's `SearchSpace` (`n_groups` from the config),
    `seed` the run's seed. Call `super().__init__(space, seed)` and seed every random thing from `seed`.

    `propose(n)` returns a list of `n` `Proposal`s, built with `self.proposal(tokens)` from a token
    sequence of `space` or with `self.proposal_from_text(text)` from DSL text (a NosError when the space
    cannot express the rule). The search calls `propose(1)` until a round has `round_size` new
    evaluations; a proposal whose rule is in the store is not trained again (a cache hit).

    `observe(scored)` is called once per round with every `(proposal, reward)` of the round, in proposal
    order, cache hits included. The reward is the validation accuracy in [0, 1], 0.0 for a rule that was
    rejected, diverged or failed. It returns one dict of float statistics per learning step it took
    (recorded in the store's updates table), or [].

    `state_dict()` returns a picklable snapshot (it goes into the run's checkpoint with torch.save) and
    `load_state_dict(state)` restores it into a strategy built with the same arguments. The search
    checkpoints after each round's `observe`; `nos search --resume` rebuilds the strategy, loads the last
    snapshot and replays the rounds after it, so a strategy whose proposals depend only on its state
    (seeded RNGs, no clock) resumes exactly; any other still resumes, with different proposals.
    """

    name: str

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = seed

    @abstractmethod
    def propose(self, n: int) -> list[Proposal]:
        """The next `n` rules to score."""

    @abstractmethod
    def observe(self, scored: Scored) -> list[dict[str, float]]:
        """Take a reward for each proposal; return statistics of any learning step this triggered."""

    @abstractmethod
    def state_dict(self) -> dict:
        """A snapshot from which `load_state_dict` resumes exactly."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Restore a snapshot taken by `state_dict` on a strategy built with the same arguments."""

    def proposal(self, tokens: Sequence[int], logprob: float | None = None) -> Proposal:
        """The proposal of a token sequence of `space` (a NosError names an invalid position)."""
        tokens = tuple(self.space.check(tokens))
        return Proposal(tokens, self.space.render(tokens), logprob)

    def proposal_from_text(self, text: str) -> Proposal:
        """The proposal of a DSL rule: its canonical tokens (`SearchSpace.tokens_from_text`) and their
        rendering, which parses to the same rule. A NosError if the text does not parse or the space
        cannot express it (more groups than `space.n_groups`, a name outside its vocabulary)."""
        return self.proposal(self.space.tokens_from_text(text))


class RandomStrategy(Strategy):
    """Every position drawn uniformly from its valid tokens; rewards are ignored.

    With `screen`, the last token is drawn uniformly among those whose rule passes the pre-screen, and a
    prefix none passes is drawn again (controller/screen.py). Off by default: the baseline stays uniform.
    """

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0, screen: bool = False,
                 resample: int = DEFAULT_RESAMPLES) -> None:
        super().__init__(space, seed)
        self.rng = np.random.default_rng(seed)
        self.screen = TokenScreen(space) if screen else None
        self.resample = resample

    def propose(self, n: int) -> list[Proposal]:
        return [self.proposal(self._uniform()) for _ in range(n)]

    def _uniform(self) -> list[int]:
        return screened_uniform(self.space, self.rng, self.screen, self.resample)

    def observe(self, scored: Scored) -> list[dict[str, float]]:
        return []

    def state_dict(self) -> dict:
        return {"rng": copy.deepcopy(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])


class EvolutionStrategy(Strategy):
    """Regularized evolution (Real et al. 2019, "aging evolution") over live tokens.

    The first `population_size` proposals are uniform samples. After that each proposal is a mutation
    (one token changed) of the best of `tournament_size` members drawn at random, with replacement, from
    the population. Every observed rule joins the population; once it holds more than `population_size`,
    the oldest dies, whatever its reward. Until a first reward arrives, proposals stay uniform.

    A mutation changes a live token only (`SearchSpace.live_positions`): changing a dead one gives the
    parent's rule again. It also prefers a new rule: up to `mutation_tries` mutations of the parent are
    drawn and the first whose rule (key or fingerprint) this strategy has not proposed before is taken,
    else the last one drawn. Without both, most mutants of a few hundred evaluations are cache hits.

    With `screen` (the default), the uniform proposals are drawn as RandomStrategy's with `screen`, and a
    mutant must also pass the pre-screen to be taken before the tries run out. `warm_start` names
    optimizers (controller/warmstart.py) proposed first, in place of the first uniform samples.

    Defaults: P = 20 and S = 5, a small population for a budget of a few hundred evaluations (Real et al.
    used P = 100, S = 25 over 20k models; S / P = 1/4 kept here); 8 tries. Over 300 evaluations of the
    default space about 1% of the proposals repeat a rule, against 21% with live tokens and one try and
    98% with one token anywhere (bench/bench_evolution.py, synthetic rewards).
    """

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population_size: int = 20, tournament_size: int = 5,
                 mutation_tries: int = 8, screen: bool = True, resample: int = DEFAULT_RESAMPLES,
                 warm_start: Sequence[str] = ()) -> None:
        super().__init__(space, seed)
        if population_size < 1:
            raise NosError(f"population_size must be at least 1, got {population_size}")
        if not 1 <= tournament_size <= population_size:
            raise NosError(f"tournament_size must be between 1 and population_size ({population_size}), "
                           f"got {tournament_size}")
        if mutation_tries < 1:
            raise NosError(f"mutation_tries must be at least 1, got {mutation_tries}")
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.mutation_tries = mutation_tries
        self.rng = np.random.default_rng(seed)
        self.population: deque[tuple[tuple[int, ...], float]] = deque()  # oldest first
        self.n_proposed = 0
        self.seen: set[str] = set()  # keys and fingerprints of every rule proposed
        self.screen = TokenScreen(space) if screen else None
        self.resample = resample
        self.warm = warm_start_tokens(space, warm_start)

    def propose(self, n: int) -> list[Proposal]:
        proposals = []
        for _ in range(n):
            if self.n_proposed < len(self.warm):
                tokens = list(self.warm[self.n_proposed])
                self.seen.update(self._identity(tokens))
            elif self.n_proposed < self.population_size or not self.population:
                tokens = screened_uniform(self.space, self.rng, self.screen, self.resample)
                self.seen.update(self._identity(tokens))
            else:
                tokens = self._mutant(self._tournament())
            self.n_proposed += 1
            proposals.append(self.proposal(tokens))
        return proposals

    def _tournament(self) -> tuple[int, ...]:
        """The best of `tournament_size` members drawn with replacement (ties: the first drawn)."""
        drawn = self.rng.integers(len(self.population), size=self.tournament_size)
        tokens, _ = max((self.population[i] for i in drawn), key=lambda member: member[1])
        return tokens

    def _mutant(self, parent: Sequence[int]) -> list[int]:
        """The first of up to `mutation_tries` live mutations of `parent` whose rule is new (and passes the
        pre-screen, with `screen`), else the last."""
        live = self.space.live_positions(parent)
        for _ in range(self.mutation_tries):
            child = self.space.mutate(parent, self.rng, live)
            identity = self._identity(child)
            if not self.seen.intersection(identity) and (self.screen is None or self.screen.passes(child)):
                break
        self.seen.update(identity)
        return child

    def _identity(self, tokens: Sequence[int]) -> tuple[str, str]:
        """What the search's store deduplicates by: the rule's key and its fingerprint."""
        rule = parse_rule(self.space.render(tokens))
        return rule.key, rule.fingerprint

    def observe(self, scored: Scored) -> list[dict[str, float]]:
        for proposal, reward in scored:
            self.population.append((proposal.tokens, float(reward)))
            if len(self.population) > self.population_size:
                self.population.popleft()  # the oldest dies
        return []

    def state_dict(self) -> dict:
        return {"rng": copy.deepcopy(self.rng.bit_generator.state), "population": list(self.population),
                "n_proposed": self.n_proposed, "seen": sorted(self.seen)}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])
        self.population = deque((tuple(tokens), float(reward)) for tokens, reward in state["population"])
        self.n_proposed = state["n_proposed"]
        self.seen = set(state.get("seen", ()))  # a snapshot from before rules were remembered has none


class PPOStrategy(Strategy):
    """The paper's controller: an LSTM policy sampling rules, trained by PPO on their rewards.

    Rewarded samples wait in a buffer; every `config.batch_size` of them make one PPO update. Each
    proposal carries the log-probability it was sampled with, so samples proposed before an update and
    observed after it are still weighted correctly by PPO's ratio.

    With `screen` (the default) the policy's last token is masked to completions the pre-screen passes,
    in sampling and in PPO's log-probabilities alike (controller/screen.py), and a sample whose prefix
    no completion saves is drawn again, up to `resample` times. `warm_start` names optimizers
    (controller/warmstart.py) proposed first, each with its log-probability under the current policy, so
    PPO learns from them as from its own samples.
    """

    name = "ppo"

    def __init__(self, space: SearchSpace, seed: int = 0, config: PPOConfig | None = None,
                 hidden: int = 150, init_range: float = 0.08, screen: bool = True,
                 resample: int = DEFAULT_RESAMPLES, warm_start: Sequence[str] = ()) -> None:
        super().__init__(space, seed)
        self.screen = TokenScreen(space) if screen else None
        self.resample = resample
        self.policy = LSTMPolicy(space, hidden=hidden, init_range=init_range, seed=seed,
                                 prior=self.screen.mask if self.screen is not None else None)
        self.ppo = PPO(self.policy, config)
        self.generator = torch.Generator().manual_seed(seed)
        self.buffer: list[tuple[tuple[int, ...], float, float]] = []  # (tokens, logprob, reward)
        self.warm = warm_start_tokens(space, warm_start)
        self.n_proposed = 0

    def propose(self, n: int) -> list[Proposal]:
        proposals = []
        while len(proposals) < n and self.n_proposed < len(self.warm):
            proposals.append(self._warm_proposal(self.warm[self.n_proposed]))
            self.n_proposed += 1
        if self.screen is None and len(proposals) < n:
            tokens, logprobs, _ = self.policy.sample(n - len(proposals), self.generator)  # [n, P], [n]
            proposals += [self.proposal(t, lp) for t, lp in zip(tokens.tolist(), logprobs.tolist())]
        while len(proposals) < n:
            proposals.append(self._screened_sample())
        return proposals

    def _warm_proposal(self, tokens: Sequence[int]) -> Proposal:
        """A named start, with its log-probability under the policy as it is now."""
        with torch.no_grad():
            logprob, _ = self.policy.evaluate(torch.tensor([list(tokens)]))
        return self.proposal(tokens, logprob.item())

    def _screened_sample(self) -> Proposal:
        """One sample of the masked policy; a dead end (no last token passes) is drawn again, up to
        `resample` times, then kept."""
        for _ in range(self.resample + 1):
            tokens, logprobs, _ = self.policy.sample(1, self.generator)
            row = tokens[0].tolist()
            if self.screen.mask(row[:-1]) is not None:
                break
        return self.proposal(row, logprobs[0].item())

    def observe(self, scored: Scored) -> list[dict[str, float]]:
        for proposal, reward in scored:
            if proposal.logprob is None:
                raise ValueError("PPO can only learn from its own proposals (this one has no logprob)")
            self.buffer.append((proposal.tokens, proposal.logprob, float(reward)))
        stats = []
        batch_size = self.ppo.config.batch_size
        while len(self.buffer) >= batch_size:
            batch, self.buffer = self.buffer[:batch_size], self.buffer[batch_size:]
            tokens, logprobs, rewards = zip(*batch)
            stats.append(self.ppo.update(torch.tensor(tokens), torch.tensor(logprobs), torch.tensor(rewards)))
        return stats

    def state_dict(self) -> dict:
        return copy.deepcopy({"ppo": self.ppo.state_dict(), "generator": self.generator.get_state(),
                              "buffer": self.buffer, "n_proposed": self.n_proposed})

    def load_state_dict(self, state: dict) -> None:
        state = copy.deepcopy(state)
        self.ppo.load_state_dict(state["ppo"])
        self.generator.set_state(state["generator"])
        self.buffer = [(tuple(tokens), float(lp), float(r)) for tokens, lp, r in state["buffer"]]
        self.n_proposed = state.get("n_proposed", len(self.warm))  # a snapshot from before warm starts


def screened_uniform(space: SearchSpace, rng: np.random.Generator, screen: TokenScreen | None,
                     resample: int = DEFAULT_RESAMPLES) -> list[int]:
    """A uniform token sequence; with a screen, its last token uniform among the allowed ones and a dead
    end drawn again (TokenScreen.sample)."""
    if screen is None:
        return space.sample_uniform(rng)
    return screen.sample(lambda: space.sample_uniform(rng), lambda k: int(rng.integers(k)), resample)


STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (PPOStrategy, RandomStrategy, EvolutionStrategy)}


def build_strategy(name: str, space: SearchSpace, seed: int = 0, round_size: int | None = None,
                   **options) -> Strategy:
    """A strategy by name ("ppo", "random", "evolution") or a plug-in "module:Class" (see
    `plugin_class`); options go to its constructor.

    round_size is the search loop's samples per round: PPO then updates once per round (its batch_size),
    unless a PPO config is given. The other strategies do not depend on it.
    """
    if ":" in name:
        cls = plugin_class(name)
        try:
            inspect.signature(cls).bind(space, seed, **options)
        except TypeError as err:
            raise NosError(f"strategy {name!r} cannot be built as {cls.__name__}(space, seed): {err}; its "
                           f"__init__ must take (self, space, seed=0) and call super().__init__(space, seed)"
                           ) from None
        return cls(space, seed, **options)
    if name not in STRATEGIES:
        raise NosError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}, "
                       f"or module:Class for a Strategy subclass of your own")
    if name == "ppo":
        objective = {k: options.pop(k) for k in ("objective", "risk_epsilon") if k in options}
        if "config" not in options and (round_size is not None or objective):
            options["config"] = PPOConfig(batch_size=round_size or PPOConfig.batch_size, **objective)
    return STRATEGIES[name](space, seed, **options)


def strategy_options(config) -> dict:
    """The settings of a SearchConfig that go to its built-in strategy's constructor through
    `build_strategy`: PPO's objective, risk_epsilon and warm_start; evolution's warm_start (a plug-in
    and random search take none). The search builds its strategy as

        build_strategy(config.strategy, space, seed, round_size, **strategy_options(config))
    """
    warm_start = tuple(n.strip() for n in getattr(config, "warm_start", "").split(",") if n.strip())
    if config.strategy == "ppo":
        return {"objective": getattr(config, "objective", "mean"),
                "risk_epsilon": getattr(config, "risk_epsilon", PPOConfig.risk_epsilon), "warm_start": warm_start}
    if config.strategy == "evolution":
        return {"warm_start": warm_start}
    return {}


def plugin_class(spec: str) -> type[Strategy]:
    """The Strategy subclass named by "module:Class". The module is imported from sys.path, then from the
    current directory (so `nos search --strategy my_rules:HandWritten` finds ./my_rules.py)."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name or ":" in class_name:
        raise NosError(f"strategy {spec!r} is not module:Class; write e.g. my_rules:HandWritten for a "
                       f"Strategy subclass HandWritten in my_rules.py")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    module = import_user_module(module_name, f"strategy {spec!r}")
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(n for n, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, Strategy) and v.__module__ == module.__name__)
        raise NosError(f"module {module_name!r} has no {class_name!r} for strategy {spec!r}; its Strategy "
                       f"subclasses: {', '.join(found) or 'none'}")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise NosError(f"strategy {spec!r} is not a subclass of controller.strategies.Strategy (it is a "
                       f"{type(cls).__name__}); subclass Strategy and implement propose, observe, "
                       f"state_dict and load_state_dict")
    if inspect.isabstract(cls):
        raise NosError(f"strategy {spec!r} does not implement {', '.join(sorted(cls.__abstractmethods__))} "
                       f"(abstract methods of Strategy)")
    return cls


__all__ = ["STRATEGIES", "EvolutionStrategy", "PPOStrategy", "Proposal", "RandomStrategy", "Strategy",
           "build_strategy", "plugin_class", "screened_uniform", "strategy_options"]
