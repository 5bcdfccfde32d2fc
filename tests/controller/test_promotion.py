"""Multi-fidelity promotion: the best fraction of each length trained again, longer; decayed variants
beside the rules that reach the longest length; a leaderboard by the longest length; exact resumes."""
import hashlib
import json

import pytest

from controller.promotion import Entrant, promoted, variant_text
from controller.search import Search, SearchConfig
from controller.store import RunStore
from nos_cli import main
from nos_symbolic.dsl import dsl_text
from nos_symbolic.errors import NosError
from nos_symbolic.evaluate import EvalConfig
from nos_symbolic.result import EvalResult
from nos_symbolic.rule import parse_rule

FAST_EVAL = EvalConfig(lrs=(0.05,), epochs=1)


def by_length(payload: dict) -> EvalResult:
    """A reward from the rule's text and the length it is trained at: the ranking changes with length."""
    epochs = payload["config"]["epochs"]
    digest = hashlib.sha256(f"{payload['rule']}|{epochs}".encode()).digest()
    return EvalResult(status="ok", reward=int.from_bytes(digest[:2], "big") / 65536, lr=0.1, seed=0,
                      val_acc=0.5, test_acc=0.5)


@pytest.fixture
def fake(monkeypatch):
    import nos_symbolic.evaluate as evaluate

    monkeypatch.setattr(evaluate, "evaluate_job", by_length)
    monkeypatch.setattr(evaluate, "warm_worker", lambda config: None)


def config(**overrides) -> SearchConfig:
    base = dict(strategy="random", budget=24, workers=0, seed=3, round_size=4, eval=FAST_EVAL,
                lengths=(2, 3), promote=0.5, decays=("ld",))
    base.update(overrides)
    return SearchConfig(**base)


def run(run_dir, cfg, resume=False):
    search = Search(cfg, run_dir, resume=resume)
    try:
        progress = search.run()
        store = search.store
        return progress, {
            "samples": [(s.idx, s.tokens, s.rule_key, s.reward) for s in store.samples()],
            "lengths": {k: {e: r.reward for e, r in v.items()} for k, v in store.lengths().items()},
            "variants": store.variants(),
            "top": [(r.key, r.epochs, r.result.reward) for r in store.top(10)],
        }
    finally:
        search.close()


def test_promoted_takes_the_best_fraction_not_yet_there():
    pop = [Entrant(f"k{i}", f"r{i}", score) for i, score in enumerate([0.1, 0.9, 0.5, 0.7, 0.3])]
    assert [e.key for e in promoted(pop, 0.5, set())] == ["k1", "k3"]  # floor(5 x 0.5) = 2
    assert [e.key for e in promoted(pop, 0.5, {"k1"})] == ["k3"]  # k1 is there already
    assert promoted(pop, 0.1, set()) == []  # floor(0.5) = 0
    tie = [Entrant("b", "x", 0.5), Entrant("a", "y", 0.5)]
    assert [e.key for e in promoted(tie, 0.5, set())] == ["a"]  # ties by key, whatever the order
    assert parse_rule(variant_text("sign(m) + g", "cd")).key == parse_rule("(sign(m) + g)*cd").key


def test_a_search_promotes_ranks_by_the_longest_length_and_counts_every_training(tmp_path, fake):
    progress, rec = run(tmp_path / "run", config())
    lengths = rec["lengths"]
    at2 = [k for k, v in lengths.items() if 2.0 in v]
    at3 = [k for k, v in lengths.items() if 3.0 in v]
    assert at2 and at3 and set(at3) <= set(at2)  # only length-2 rules reach length 3
    # every rule promoted to the first longer length, but variants, has its variant trained there too
    for key in set(at2) - set(rec["variants"]):
        assert key in rec["variants"].values()
    assert set(rec["variants"]) <= set(at2)
    with RunStore.open_readonly(tmp_path / "run") as store:
        for variant, parent in store.variants().items():
            assert variant == parse_rule(variant_text(dsl_text(store.lookup(parent, None).text), "ld")).key
        # the budget counts the sampled rules' trainings and every promotion
        trainings = store.n_evaluations() + sum(map(len, store.lengths().values()))
    assert progress.evaluations == trainings >= 24
    top = rec["top"]
    assert [t[1] for t in top[:len(at3)]] == [3.0] * len(at3)  # the longest length first
    assert [t[2] for t in top[:len(at3)]] == sorted((t[2] for t in top[:len(at3)]), reverse=True)


def test_a_promoting_search_resumes_exactly(tmp_path, fake):
    _, straight = run(tmp_path / "straight", config())
    run(tmp_path / "split", config(budget=10))
    _, resumed = run(tmp_path / "split", config(), resume=True)
    assert resumed == straight


def test_nos_top_shows_the_length_each_rule_reached(tmp_path, fake, capsys):
    run(tmp_path / "run", config())
    assert main(["top", str(tmp_path / "run"), "-k", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["epochs"] == 3 and rows[0]["search_reward"] is not None
    assert main(["top", str(tmp_path / "run"), "-k", "3"]) == 0
    assert "epochs" in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize("bad, match", [
    (dict(lengths=(1, 3)), "longer than the evaluation's 1 epochs"),
    (dict(lengths=(3, 2)), "increasing"),
    (dict(promote=1.5), "fraction"),
    (dict(decays=("exp",)), "schedules"),
])
def test_bad_promotion_settings_are_refused_naming_them(bad, match):
    with pytest.raises(NosError, match=match):
        config(**bad)
