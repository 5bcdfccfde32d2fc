"""The sampling mask, the risk-seeking objective, warm starts and their settings."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from controller.ppo import PPO, PPOConfig, top_quantile
from controller.policy import LSTMPolicy
from controller.screen import TokenScreen, passes
from controller.search import CONFIG_FILE, SearchConfig, resume_config
from controller.space import SearchSpace
from controller.strategies import EvolutionStrategy, PPOStrategy, RandomStrategy, build_strategy, strategy_options
from controller.warmstart import NAMED_STARTS, warm_start_tokens
from nos_cli.search_cmd import Config, search_config
from nos_symbolic.errors import NosError
from nos_symbolic.rule import parse_rule

SPACE = SearchSpace()
SMALL = SearchSpace(n_groups=2)


def test_mask_allows_exactly_the_last_tokens_whose_rule_passes():
    screen, rng = TokenScreen(SPACE), np.random.default_rng(0)
    dead = live = 0
    for _ in range(12):
        prefix = SPACE.sample_uniform(rng)[:-1]
        verdicts = [screen.passes(prefix + [b]) for b in range(SPACE.n_valid(SPACE.n_positions - 1))]
        mask = screen.mask(prefix)
        if mask is None:  # a dead end: no completion passes
            assert not any(verdicts)
            dead += 1
        else:
            assert mask.tolist() == verdicts
            live += 1
    assert dead and live
    assert screen.mask(prefix[:-1]) is None  # no constraint before the last position


def test_masked_random_and_ppo_samples_pass_the_prescreen():
    rejected_off = sum(not passes(p.text) for p in RandomStrategy(SPACE, seed=1).propose(30))
    assert rejected_off > 15  # most uniform rules are rejected
    assert all(passes(p.text) for p in RandomStrategy(SPACE, seed=1, screen=True).propose(30))
    assert all(passes(p.text) for p in PPOStrategy(SPACE, seed=1).propose(20))


def test_sampling_and_ppo_log_probs_agree_under_the_mask():
    strategy = PPOStrategy(SPACE, seed=2)
    proposals = strategy.propose(6)
    tokens = torch.tensor([p.tokens for p in proposals])
    logprobs, _ = strategy.policy.evaluate(tokens)
    assert torch.allclose(logprobs, torch.tensor([p.logprob for p in proposals]), atol=1e-5)
    unmasked = LSTMPolicy(SPACE, seed=2)  # the same weights without the mask: more mass elsewhere
    assert (unmasked.evaluate(tokens)[0] < logprobs - 1e-3).all()


def test_risk_seeking_trains_on_the_top_quantile_only():
    rewards = torch.tensor([0.1, 0.9, 0.2, 0.8, 0.0, 0.3, 0.5, 0.4])
    keep, q = top_quantile(rewards, 0.25)
    assert sorted(keep.tolist()) == [1, 3] and q == pytest.approx(0.8)
    tokens = torch.tensor([SMALL.sample_uniform(np.random.default_rng(i)) for i in range(8)])
    after = []
    for low in (rewards, torch.where(rewards < 0.8, 0.7 - rewards, rewards)):  # only the rest changes
        policy = LSTMPolicy(SMALL, seed=0)
        old, _ = policy.evaluate(tokens)
        PPO(policy, PPOConfig(batch_size=8, objective="best", risk_epsilon=0.25)).update(tokens, old.detach(), low)
        after.append(torch.cat([p.detach().flatten() for p in policy.parameters()]))
    assert torch.equal(after[0], after[1])
    with pytest.raises(NosError, match="risk_epsilon"):
        PPOConfig(objective="best", risk_epsilon=0.0)


def test_screened_ppo_is_deterministic_and_resumes_exactly():
    def run(strategy, rounds):
        texts = []
        for _ in range(rounds):
            proposals = strategy.propose(4)
            strategy.observe([(p, float(len(p.text) % 7) / 7) for p in proposals])
            texts += [p.text for p in proposals]
        return texts

    config = PPOConfig(batch_size=4, objective="best", update_epochs=1)
    first = run(PPOStrategy(SMALL, seed=5, config=config, warm_start=("adam-ld",)), 3)
    assert first == run(PPOStrategy(SMALL, seed=5, config=config, warm_start=("adam-ld",)), 3)
    half = PPOStrategy(SMALL, seed=5, config=config, warm_start=("adam-ld",))
    head = run(half, 1)
    resumed = PPOStrategy(SMALL, seed=5, config=config, warm_start=("adam-ld",))
    resumed.load_state_dict(half.state_dict())
    assert head + run(resumed, 2) == first


def test_warm_starts_come_first_with_their_log_probs():
    names = ("powersign", "adam-cd", "addsign-ld")  # addsign-ld needs 4 groups: left out
    expected = [SPACE.render(t) for t in warm_start_tokens(SPACE, names)]
    assert len(expected) == 2
    assert parse_rule(expected[0]).key == parse_rule(NAMED_STARTS["powersign"]).key
    ppo = PPOStrategy(SPACE, seed=0, warm_start=names)
    first = ppo.propose(3)
    assert [p.text for p in first[:2]] == expected and np.isfinite(first[0].logprob)
    evolution = EvolutionStrategy(SPACE, seed=0, warm_start=names)
    assert [p.text for p in evolution.propose(2)] == expected
    with pytest.raises(NosError, match="warm_start"):
        warm_start_tokens(SPACE, ["adamw"])


def test_objective_is_recorded_in_config_json_and_resumed(tmp_path):
    given = {"objective", "risk_epsilon", "warm_start"}
    config = search_config(Config(strategy="ppo", objective="best", risk_epsilon=0.5, warm_start=("adam", "sgd"),
                                  workers=0))
    assert (config.objective, config.risk_epsilon, config.warm_start) == ("best", 0.5, "adam,sgd")
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config.to_dict()))
    recorded = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert (recorded["objective"], recorded["risk_epsilon"], recorded["warm_start"]) == ("best", 0.5, "adam,sgd")
    resumed = resume_config(tmp_path, search_config(Config(workers=0)), explicit=set())
    assert resumed == config
    with pytest.raises(NosError, match="objective"):
        resume_config(tmp_path, search_config(Config(objective="mean", workers=0)), explicit=given)
    strategy = build_strategy("ppo", SPACE, seed=0, round_size=8, **strategy_options(resumed))
    assert (strategy.ppo.config.objective, strategy.ppo.config.risk_epsilon) == ("best", 0.5)
    assert strategy.ppo.config.batch_size == 8 and len(strategy.warm) == 2
    assert SearchConfig().objective == "mean"  # a run recorded before the option resumes as it ran
