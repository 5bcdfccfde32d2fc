"""A user's Strategy subclass plugged in as "module:Class": loading, refusals, a tiny search that resumes."""
import re
import sys
import textwrap

import pytest

from controller.search import Search, SearchConfig
from controller.space import SearchSpace
from controller.strategies import Strategy, build_strategy, plugin_class
from nos_symbolic.errors import NosError
from nos_symbolic.evaluate import EvalConfig
from nos_symbolic.rule import parse_rule

# The README's example: hand-written rules first, then uniform samples.
HAND_WRITTEN = '''
import numpy as np

from controller.strategies import Strategy

RULES = ["sign(g) * sign(m) * g", "exp(sign(g) * sign(m)) * g", "(1 + sign(g) * sign(m)) * g"]


class HandWritten(Strategy):
    """Proposes RULES in order, then uniform samples of the space."""

    def __init__(self, space, seed=0):
        super().__init__(space, seed)
        self.rng = np.random.default_rng(seed)
        self.proposed = 0

    def propose(self, n):
        out = []
        for _ in range(n):
            if self.proposed < len(RULES):
                out.append(self.proposal_from_text(RULES[self.proposed]))
            else:
                out.append(self.proposal(self.space.sample_uniform(self.rng)))
            self.proposed += 1
        return out

    def observe(self, scored):
        return []

    def state_dict(self):
        return {"proposed": self.proposed, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.proposed = state["proposed"]
        self.rng.bit_generator.state = state["rng"]
'''
RULES = ["sign(g) * sign(m) * g", "exp(sign(g) * sign(m)) * g", "(1 + sign(g) * sign(m)) * g"]
SPACE = SearchSpace()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The current directory is tmp_path; sys.path and the plug-ins imported from it are undone afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    for name, module in list(sys.modules.items()):  # the plug-ins written here, so the next test re-imports
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write(directory, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


def test_a_plug_in_is_found_in_the_current_directory_and_proposes_its_rules(workdir):
    write(workdir, "my_rules", HAND_WRITTEN)
    strategy = build_strategy("my_rules:HandWritten", SPACE, seed=0, round_size=4)
    assert type(strategy).__name__ == "HandWritten" and isinstance(strategy, Strategy)
    proposals = strategy.propose(5)
    assert [parse_rule(p.text).key for p in proposals[:3]] == [parse_rule(r).key for r in RULES]
    for p in proposals:
        assert p.text == SPACE.render(p.tokens) and p.logprob is None


def test_proposal_from_text_round_trips_and_refuses_rules_outside_the_space():
    strategy = build_strategy("random", SearchSpace(n_groups=1))
    proposal = strategy.proposal_from_text("sign(m)*g")
    assert proposal.text == "sign(m) * g" and proposal.tokens == (5, 0, 0, 0, 2)
    with pytest.raises(NosError, match="not a rule of this search space"):
        strategy.proposal_from_text("exp(sign(g) * sign(m)) * g")  # two groups in a one-group space
    with pytest.raises(NosError, match="not valid at position 0"):
        strategy.proposal([99, 0, 0, 0, 2])


BROKEN = {
    "not_a_strategy": ("class Plain:\n    pass\n", "Plain", "is not a subclass of controller.strategies.Strategy"),
    "half_done": ("from controller.strategies import Strategy\n\n"
                  "class Half(Strategy):\n    def propose(self, n):\n        return []\n",
                  "Half", "does not implement load_state_dict, observe, state_dict"),
    "no_seed": (HAND_WRITTEN.replace("def __init__(self, space, seed=0):", "def __init__(self, space, *, k):"),
                "HandWritten", "cannot be built as HandWritten(space, seed)"),
    "needs_lib": ("import not_installed_anywhere\n", "X", "install what it imports"),
    "raises": ("raise RuntimeError('bad config')\n", "X", "failed: RuntimeError: bad config"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_plug_in_is_a_nos_error_naming_the_problem(workdir, name):
    source, cls, message = BROKEN[name]
    write(workdir, name, source)
    with pytest.raises(NosError, match=re.escape(message)):
        build_strategy(f"{name}:{cls}", SPACE)


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_here:X", "no module 'no_such_module_here'.*put no_such_module_here.py in the current"),
    ("my_rules:Missing", "has no 'Missing'.*its Strategy subclasses: HandWritten"),
    ("my_rules:", "is not module:Class"),
    (":HandWritten", "is not module:Class"),
    ("my_rules:HandWritten:x", "is not module:Class"),
    ("bayes", "expected one of ppo, random, evolution, or module:Class"),
])
def test_bad_specs_are_nos_errors(workdir, spec, message):
    write(workdir, "my_rules", HAND_WRITTEN)
    with pytest.raises(NosError, match=message):
        plugin_class(spec) if ":" in spec else build_strategy(spec, SPACE)


def search(run_dir, budget: int, resume: bool = False):
    config = SearchConfig(strategy="my_rules:HandWritten", budget=budget, workers=0, seed=1, round_size=2,
                          eval=EvalConfig(lrs=(0.05,), epochs=1))
    run = Search(config, run_dir, resume=resume)
    try:
        run.run()
        return [(s.strategy, s.tokens, s.rule_key, s.reward) for s in run.store.samples()]
    finally:
        run.close()


def test_a_plug_in_runs_a_search_and_resumes_it_exactly(workdir):
    write(workdir, "my_rules", HAND_WRITTEN)
    whole = search(workdir / "whole", budget=4)
    assert [s[2] for s in whole[:3]] == [parse_rule(r).key for r in RULES]
    assert {s[0] for s in whole} == {"my_rules:HandWritten"}
    search(workdir / "resumed", budget=2)
    assert search(workdir / "resumed", budget=4, resume=True) == whole
