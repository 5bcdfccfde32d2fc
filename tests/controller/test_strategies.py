"""Search strategies: one interface, seeded proposals, exact resumption."""
import copy

import pytest

from controller.ppo import PPOConfig
from controller.space import SearchSpace
from controller.strategies import (STRATEGIES, EvolutionStrategy, PPOStrategy, Proposal, RandomStrategy,
                                   build_strategy)
from nos_symbolic import NosError

SPACE = SearchSpace()
SMALL_PPO = {"config": PPOConfig(batch_size=8), "hidden": 32}
OPTIONS = {"ppo": SMALL_PPO, "random": {}, "evolution": {"population_size": 6, "tournament_size": 3}}


def reward(proposal: Proposal) -> float:
    """Toy reward: the fraction of tokens equal to 0."""
    return sum(t == 0 for t in proposal.tokens) / len(proposal.tokens)


def run(strategy, rounds: int, n: int = 5) -> list[Proposal]:
    proposed = []
    for _ in range(rounds):
        proposals = strategy.propose(n)
        strategy.observe([(p, reward(p)) for p in proposals])
        proposed += proposals
    return proposed


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_proposals_are_valid_and_rendered(name):
    strategy = build_strategy(name, SPACE, seed=0, **OPTIONS[name])
    for proposal in run(strategy, rounds=6):
        assert SPACE.check(proposal.tokens) == list(proposal.tokens)
        assert proposal.text == SPACE.render(proposal.tokens)
        assert (proposal.logprob is not None) == (name == "ppo")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_same_seed_same_proposals(name):
    a, b, c = (build_strategy(name, SPACE, seed=s, **OPTIONS[name]) for s in (1, 1, 2))
    first = run(a, rounds=6)
    assert first == run(b, rounds=6)
    assert [p.tokens for p in first] != [p.tokens for p in run(c, rounds=6)]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_state_dict_resumes_exactly(name):
    original = build_strategy(name, SPACE, seed=3, **OPTIONS[name])
    run(original, rounds=5)  # 25 observed: PPO has updated 3 times and holds 1 in its buffer
    snapshot = copy.deepcopy(original.state_dict())
    expected = run(original, rounds=4)  # crosses more PPO updates
    resumed = build_strategy(name, SPACE, seed=4, **OPTIONS[name])
    resumed.load_state_dict(snapshot)
    assert run(resumed, rounds=4) == expected


def test_random_ignores_rewards():
    a, b = RandomStrategy(SPACE, seed=0), RandomStrategy(SPACE, seed=0)
    pa, pb = a.propose(5), b.propose(5)
    a.observe([(p, 1.0) for p in pa])
    b.observe([(p, 0.0) for p in pb])
    assert a.propose(5) == b.propose(5)


def hamming(a, b) -> int:
    return sum(x != y for x, y in zip(a, b))


def test_evolution_starts_uniform_then_mutates_tournament_winners():
    evolution = EvolutionStrategy(SPACE, seed=0, population_size=5, tournament_size=5, screen=False)
    initial = evolution.propose(5)
    assert [p.tokens for p in initial] == [p.tokens for p in RandomStrategy(SPACE, seed=0).propose(5)]
    evolution.observe([(p, float(i == 2)) for i, p in enumerate(initial)])  # member 2 is the best
    early = evolution.propose(2)
    evolution.observe([(c, 0.0) for c in early])  # initial 0 and 1 age out; the best is now the oldest
    children = evolution.propose(40)  # not observed, so the population stays as it is
    members = [tokens for tokens, _ in evolution.population]
    assert members == [p.tokens for p in initial[2:] + early]
    assert all(min(hamming(c.tokens, m) for m in members) == 1 for c in children)  # one mutation each
    from_best = sum(hamming(c.tokens, initial[2].tokens) == 1 for c in children)
    assert from_best > 18  # the best wins unless 5 draws with replacement miss it: (4/5)^5 = 0.33


def test_evolution_ages_out_the_oldest_whatever_its_reward():
    evolution = EvolutionStrategy(SPACE, seed=0, population_size=4, tournament_size=2)
    proposals = evolution.propose(6)
    evolution.observe([(proposals[0], 1.0)] + [(p, 0.0) for p in proposals[1:]])
    assert [tokens for tokens, _ in evolution.population] == [p.tokens for p in proposals[2:]]
    assert max(r for _, r in evolution.population) == 0.0  # the best member was the oldest and died


def test_evolution_stays_uniform_until_a_reward_arrives():
    evolution = EvolutionStrategy(SPACE, seed=0, population_size=3, tournament_size=2, screen=False)
    proposals = evolution.propose(6)  # nothing observed yet: no parent to mutate
    uniform = RandomStrategy(SPACE, seed=0).propose(6)
    assert [p.tokens for p in proposals] == [p.tokens for p in uniform]


def test_ppo_updates_once_per_batch_of_rewards():
    ppo = PPOStrategy(SPACE, seed=0, **SMALL_PPO)
    proposals = ppo.propose(20)
    assert ppo.observe([(p, reward(p)) for p in proposals[:5]]) == []
    stats = ppo.observe([(p, reward(p)) for p in proposals[5:]])
    assert len(stats) == 1 + 1 and len(ppo.buffer) == 4 and ppo.ppo.updates == 2
    assert {"pg_loss", "entropy", "approx_kl", "clipfrac"} <= stats[0].keys()
    with pytest.raises(ValueError, match="logprob"):
        ppo.observe([(Proposal(proposals[0].tokens, proposals[0].text), 1.0)])


def test_ppo_strategy_learns_a_toy_reward():
    ppo = PPOStrategy(SPACE, seed=0, config=PPOConfig(batch_size=16))
    proposed = run(ppo, rounds=24, n=16)
    first = sum(map(reward, proposed[:64])) / 64
    last = sum(map(reward, proposed[-64:])) / 64
    assert last > first + 0.15, (first, last)


@pytest.mark.parametrize("kwargs", [{"population_size": 0}, {"tournament_size": 0},
                                    {"population_size": 3, "tournament_size": 4}])
def test_bad_evolution_settings_are_nos_errors(kwargs):
    with pytest.raises(NosError):
        EvolutionStrategy(SPACE, **kwargs)


def test_build_strategy_names_the_known_strategies():
    ppo = build_strategy("ppo", SPACE, seed=0, round_size=12, hidden=16)
    assert isinstance(ppo, PPOStrategy) and ppo.ppo.config.batch_size == 12
    assert isinstance(build_strategy("evolution", SPACE, seed=0, round_size=12), EvolutionStrategy)
    with pytest.raises(NosError, match="ppo, random, evolution"):
        build_strategy("bayes", SPACE)
