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
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from controller.policy import LSTMPolicy
from controller.ppo import PPO, PPOConfig
from controller.space import SearchSpace
from nos_symbolic.errors import NosError


@dataclass(frozen=True)
class Proposal:
    """One rule to score: its tokens, its DSL text, and for PPO the log-probability it was sampled with."""

    tokens: tuple[int, ...]
    text: str
    logprob: float | None = None


Scored = Sequence[tuple[Proposal, float]]


class Strategy(ABC):
    """Proposes token sequences of `space` and learns from their rewards."""

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

    def _proposal(self, tokens: Sequence[int], logprob: float | None = None) -> Proposal:
        tokens = tuple(int(t) for t in tokens)
        return Proposal(tokens, self.space.render(tokens), logprob)


class RandomStrategy(Strategy):
    """Every position drawn uniformly from its valid tokens; rewards are ignored."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        super().__init__(space, seed)
        self.rng = np.random.default_rng(seed)

    def propose(self, n: int) -> list[Proposal]:
        return [self._proposal(self.space.sample_uniform(self.rng)) for _ in range(n)]

    def observe(self, scored: Scored) -> list[dict[str, float]]:
        return []

    def state_dict(self) -> dict:
        return {"rng": copy.deepcopy(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])


class EvolutionStrategy(Strategy):
    """Regularized evolution (Real et al. 2019, "aging evolution").

    The first `population_size` proposals are uniform samples. After that each proposal is a mutation
    (one token changed) of the best of `tournament_size` members drawn at random, with replacement, from
    the population. Every observed rule joins the population; once it holds more than `population_size`,
    the oldest dies, whatever its reward. Until a first reward arrives, proposals stay uniform.

    Defaults: P = 20 and S = 5, a small population for a budget of a few hundred evaluations (Real et al.
    used P = 100, S = 25 over 20k models; S / P = 1/4 kept here).
    """

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population_size: int = 20, tournament_size: int = 5) -> None:
        super().__init__(space, seed)
        if population_size < 1:
            raise NosError(f"population_size must be at least 1, got {population_size}")
        if not 1 <= tournament_size <= population_size:
            raise NosError(f"tournament_size must be between 1 and population_size ({population_size}), "
                           f"got {tournament_size}")
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.rng = np.random.default_rng(seed)
        self.population: deque[tuple[tuple[int, ...], float]] = deque()  # oldest first
        self.n_proposed = 0

    def propose(self, n: int) -> list[Proposal]:
        proposals = []
        for _ in range(n):
            if self.n_proposed < self.population_size or not self.population:
                tokens = self.space.sample_uniform(self.rng)
            else:
                tokens = self.space.mutate(self._tournament(), self.rng)
            self.n_proposed += 1
            proposals.append(self._proposal(tokens))
        return proposals

    def _tournament(self) -> tuple[int, ...]:
        """The best of `tournament_size` members drawn with replacement (ties: the first drawn)."""
        drawn = self.rng.integers(len(self.population), size=self.tournament_size)
        tokens, _ = max((self.population[i] for i in drawn), key=lambda member: member[1])
        return tokens

    def observe(self, scored: Scored) -> list[dict[str, float]]:
        for proposal, reward in scored:
            self.population.append((proposal.tokens, float(reward)))
            if len(self.population) > self.population_size:
                self.population.popleft()  # the oldest dies
        return []

    def state_dict(self) -> dict:
        return {"rng": copy.deepcopy(self.rng.bit_generator.state), "population": list(self.population),
                "n_proposed": self.n_proposed}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])
        self.population = deque((tuple(tokens), float(reward)) for tokens, reward in state["population"])
        self.n_proposed = state["n_proposed"]


class PPOStrategy(Strategy):
    """The paper's controller: an LSTM policy sampling rules, trained by PPO on their rewards.

    Rewarded samples wait in a buffer; every `config.batch_size` of them make one PPO update. Each
    proposal carries the log-probability it was sampled with, so samples proposed before an update and
    observed after it are still weighted correctly by PPO's ratio.
    """

    name = "ppo"

    def __init__(self, space: SearchSpace, seed: int = 0, config: PPOConfig | None = None,
                 hidden: int = 150, init_range: float = 0.08) -> None:
        super().__init__(space, seed)
        self.policy = LSTMPolicy(space, hidden=hidden, init_range=init_range, seed=seed)
        self.ppo = PPO(self.policy, config)
        self.generator = torch.Generator().manual_seed(seed)
        self.buffer: list[tuple[tuple[int, ...], float, float]] = []  # (tokens, logprob, reward)

    def propose(self, n: int) -> list[Proposal]:
        tokens, logprobs, _ = self.policy.sample(n, self.generator)  # [n, P], [n]
        return [self._proposal(t, lp) for t, lp in zip(tokens.tolist(), logprobs.tolist())]

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
                              "buffer": self.buffer})

    def load_state_dict(self, state: dict) -> None:
        state = copy.deepcopy(state)
        self.ppo.load_state_dict(state["ppo"])
        self.generator.set_state(state["generator"])
        self.buffer = [(tuple(tokens), float(lp), float(r)) for tokens, lp, r in state["buffer"]]


STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (PPOStrategy, RandomStrategy, EvolutionStrategy)}


def build_strategy(name: str, space: SearchSpace, seed: int = 0, round_size: int | None = None,
                   **options) -> Strategy:
    """A strategy by name ("ppo", "random", "evolution"); options go to its constructor.

    round_size is the search loop's samples per round: PPO then updates once per round (its batch_size),
    unless a PPO config is given. Random search and evolution do not depend on it.
    """
    if name not in STRATEGIES:
        raise NosError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    if name == "ppo" and round_size is not None and "config" not in options:
        options["config"] = PPOConfig(batch_size=round_size)
    return STRATEGIES[name](space, seed, **options)


__all__ = ["STRATEGIES", "EvolutionStrategy", "PPOStrategy", "Proposal", "RandomStrategy", "Strategy",
           "build_strategy"]
