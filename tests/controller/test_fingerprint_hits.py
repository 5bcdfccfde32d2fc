"""A search reuses a stored result by fingerprint only when the stored rule behaves the same: a
fingerprint collision that `same_behaviour` turns away is trained on its own."""
import sys
import textwrap

import pytest

import _jobs
from controller.search import Search, SearchConfig
from controller.store import RunStore
from nos_symbolic.evaluate import EvalConfig
from nos_symbolic.rule import parse_rule, same_behaviour

LISTED = '''
from controller.strategies import Strategy

RULES = {rules!r}


class Listed(Strategy):
    """Proposes RULES in order, one a round."""

    def __init__(self, space, seed=0):
        super().__init__(space, seed)
        self.proposed = 0

    def propose(self, n):
        out = [self.proposal_from_text(RULES[(self.proposed + i) % len(RULES)]) for i in range(n)]
        self.proposed += n
        return out

    def observe(self, scored):
        return []

    def state_dict(self):
        return {{"proposed": self.proposed}}

    def load_state_dict(self, state):
        self.proposed = state["proposed"]
'''


@pytest.fixture
def listed(tmp_path, monkeypatch):
    """A plug-in strategy module proposing the given rules, importable from tmp_path; fake evaluations."""
    import nos_symbolic.evaluate as evaluate

    monkeypatch.setattr(evaluate, "evaluate_job", _jobs.fake_evaluate)
    monkeypatch.setattr(evaluate, "warm_worker", _jobs.no_warm_up)
    monkeypatch.syspath_prepend(str(tmp_path))
    names = []

    def write(name: str, rules: list[str]) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(LISTED.format(rules=rules)))
        names.append(name)
        return f"{name}:Listed"

    yield write
    for name in names:
        sys.modules.pop(name, None)


def search(run_dir, strategy: str, budget: int) -> list:
    config = SearchConfig(strategy=strategy, budget=budget, workers=0, seed=0, round_size=1,
                          eval=EvalConfig(lrs=(0.05,), epochs=1))
    s = Search(config, run_dir)
    try:
        s.run()
    finally:
        s.close()
    with RunStore.open_readonly(run_dir) as store:
        return [(sample.rule_key, sample.cache_hit) for sample in store.samples()]


def test_a_fingerprint_collision_that_behaves_differently_is_trained(tmp_path, listed):
    first, second = parse_rule("g / g2"), parse_rule("1 / g")
    # the premise: one fingerprint (delta = 1e-30), different updates at the training delta (1e-8)
    assert first.fingerprint == second.fingerprint and first.key != second.key
    assert not same_behaviour(first, second)
    samples = search(tmp_path / "run", listed("collide", ["g / g2", "1 / g"]), budget=2)
    assert samples[:2] == [(first.key, False), (second.key, False)]
    with RunStore.open_readonly(tmp_path / "run") as store:
        assert store.lookup(second.key, None).key == second.key  # stored under its own key


def test_a_fingerprint_hit_that_behaves_the_same_reuses_the_result(tmp_path, listed):
    first, second = parse_rule("g / 1"), parse_rule("g * 1")  # g / (1 + delta) and g
    assert first.fingerprint == second.fingerprint and first.key != second.key
    samples = search(tmp_path / "run", listed("equal", ["g / 1", "g * 1", "m * 1"]), budget=2)
    assert samples[:3] == [(first.key, False), (first.key, True), (parse_rule("m").key, False)]
