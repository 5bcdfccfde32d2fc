"""Live tokens and evolution's mutations: dead tokens never change the rule; mutants are live and new."""
import numpy as np
import pytest

from controller.space import SearchSpace
from controller.strategies import EvolutionStrategy
from nos_symbolic.rule import parse_rule

SPACE = SearchSpace()
N = len(SPACE.operands)  # operand token of "@0"
G, SIGN_G, M = 0, 1, 4
ID, EXP = 0, 2
ADD, MUL, KEEP = 0, 2, 5


def key(space: SearchSpace, tokens) -> str:
    return parse_rule(space.render(tokens)).key


@pytest.mark.parametrize("tokens, live", [
    # Only the last group reaches the update: groups 0 and 1 are dead.
    ([G, M, ID, ID, ADD] * 2 + [SIGN_G, M, ID, ID, MUL], [10, 11, 12, 13, 14]),
    # keep(x, y) discards y: op2 and u2 of the last group are dead, so is group 1 which only y reads.
    ([G, M, ID, ID, ADD, G, M, EXP, ID, MUL, N, N + 1, EXP, ID, KEEP], [0, 1, 2, 3, 4, 10, 12, 14]),
    # The last group reads group 1, which reads group 0: everything is live.
    ([G, M, ID, ID, ADD, N, G, ID, ID, MUL, N + 1, M, ID, ID, MUL], list(range(15))),
])
def test_live_positions_track_what_reaches_the_update(tokens, live):
    assert SPACE.live_positions(tokens) == live


def test_changing_a_dead_token_never_changes_the_rule():
    rng = np.random.default_rng(0)
    for _ in range(30):
        tokens = SPACE.sample_uniform(rng)
        live = SPACE.live_positions(tokens)
        dead = [p for p in range(SPACE.n_positions) if p not in live]
        if not dead:
            continue
        child = SPACE.mutate(tokens, rng, dead)
        assert key(SPACE, child) == key(SPACE, tokens), (SPACE.render(tokens), SPACE.render(child))


def changed_position(a, b) -> int:
    return next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)


def test_mutate_draws_from_the_given_positions_only():
    rng = np.random.default_rng(1)
    tokens = [G, M, ID, ID, ADD] * 3
    assert {changed_position(SPACE.mutate(tokens, rng, [3, 14]), tokens) for _ in range(40)} == {3, 14}


def test_evolution_mutates_one_live_token_of_a_member():
    evolution = EvolutionStrategy(SPACE, seed=0, population_size=5, tournament_size=2)
    evolution.observe([(p, 0.5) for p in evolution.propose(5)])
    members = [tokens for tokens, _ in evolution.population]
    for child in evolution.propose(30):
        parents = [m for m in members if sum(a != b for a, b in zip(m, child.tokens)) == 1]
        assert parents, child.text
        assert any(changed_position(m, child.tokens) in SPACE.live_positions(m) for m in parents)


TINY = SearchSpace(n_groups=1, operands=("g", "m"), unary=("{x}", "sign({x})"),
                   binary=("{x} * {y}", "keep({x}, {y})"))


def test_evolution_proposes_every_new_neighbour_before_it_repeats_a_rule():
    # One parent, never replaced (nothing more is observed): its live one-token neighbours are all the
    # rules a mutation can reach; with enough tries each proposal is a rule not proposed before.
    evolution = EvolutionStrategy(TINY, seed=0, population_size=1, tournament_size=1, mutation_tries=200,
                                  screen=False)  # every neighbour, trainable or not
    first = evolution.propose(1)[0]
    evolution.observe([(first, 1.0)])
    parent = list(first.tokens)
    neighbours = set()
    for p in TINY.live_positions(parent):
        for t in range(TINY.n_valid(p)):
            if t != parent[p]:
                neighbours.add(key(TINY, parent[:p] + [t] + parent[p + 1:]))
    neighbours.discard(key(TINY, parent))
    proposed = [parse_rule(p.text).key for p in evolution.propose(len(neighbours) + 3)]
    assert set(proposed[:len(neighbours)]) == neighbours  # each new until none is left
    assert set(proposed) <= neighbours | {key(TINY, parent)}  # then it can only repeat


def test_preferring_new_rules_cuts_the_repeats():
    def repeats(tries: int) -> int:
        evolution = EvolutionStrategy(SPACE, seed=2, population_size=6, tournament_size=3, mutation_tries=tries)
        keys = []
        for _ in range(10):
            proposals = evolution.propose(8)
            keys += [parse_rule(p.text).key for p in proposals]
            evolution.observe([(p, len(p.text) / 100) for p in proposals])  # any deterministic reward
        return len(keys) - len(set(keys))

    assert repeats(8) <= 1 and repeats(8) < repeats(1)


def test_a_snapshot_remembers_the_rules_proposed():
    evolution = EvolutionStrategy(SPACE, seed=0, population_size=3, tournament_size=2)
    proposals = evolution.propose(5)
    state = evolution.state_dict()
    assert {parse_rule(p.text).key for p in proposals} <= set(state["seen"])
    restored = EvolutionStrategy(SPACE, seed=9, population_size=3, tournament_size=2)
    restored.load_state_dict(state)
    assert restored.seen == evolution.seen
