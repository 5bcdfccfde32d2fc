"""The LSTM policy and its PPO update."""
import copy
import math

import pytest
import torch

from controller.policy import LSTMPolicy
from controller.ppo import PPO, PPOConfig
from controller.space import SearchSpace
from nos_symbolic import NosError

SPACE = SearchSpace()


def zero_reward(tokens: torch.Tensor) -> torch.Tensor:
    """Toy reward: the fraction of positions holding token 0 (about 0.09 under the uniform distribution)."""
    return (tokens == 0).float().mean(dim=1)


def test_initial_weights_lie_in_the_init_range():
    policy = LSTMPolicy(SPACE, seed=0)
    assert all(p.abs().max() <= 0.08 for p in policy.parameters())
    assert policy.lstm.hidden_size == 150


def test_samples_are_valid_by_construction():
    policy = LSTMPolicy(SPACE, hidden=32, init_range=2.0, seed=0)  # large weights: far from uniform
    tokens, logprobs, entropy = policy.sample(2000, torch.Generator().manual_seed(0))
    assert tokens.shape == (2000, 15) and logprobs.shape == entropy.shape == (2000,)
    for p in range(SPACE.n_positions):
        assert SPACE.mask(p)[tokens[:, p]].all()
    assert tokens[:, 10:12].max() == len(SPACE.operands) + 1  # group 2 does read the earlier results
    assert torch.isfinite(logprobs).all() and (entropy > 0).all()


def test_sample_logprobs_equal_evaluate_logprobs():
    policy = LSTMPolicy(SPACE, seed=1)
    tokens, logprobs, entropy = policy.sample(64, torch.Generator().manual_seed(1))
    new_logprobs, new_entropy = policy.evaluate(tokens)
    torch.testing.assert_close(new_logprobs, logprobs, atol=1e-4, rtol=0)
    torch.testing.assert_close(new_entropy, entropy, atol=1e-4, rtol=0)
    # Near-uniform at init: the entropy is close to the log of the space's size.
    assert abs(entropy.mean().item() - math.log(SPACE.size())) < 0.5


def test_hand_stepped_sampler_is_the_lstm_of_evaluate_far_from_uniform():
    # Large weights make the hidden state matter (at init every rule is nearly equally likely), so a
    # sampler cell that differed from nn.LSTM's would show in the log-probabilities.
    policy = LSTMPolicy(SPACE, hidden=48, init_range=0.5, seed=7)
    tokens, logprobs, entropy = policy.sample(128, torch.Generator().manual_seed(7))
    assert logprobs.std() > 1.0  # far from uniform
    new_logprobs, new_entropy = policy.evaluate(tokens)
    torch.testing.assert_close(new_logprobs, logprobs, atol=1e-4, rtol=0)
    torch.testing.assert_close(new_entropy, entropy, atol=1e-4, rtol=0)


def test_evaluate_of_a_masked_token_is_minus_infinity_with_finite_gradients():
    policy = LSTMPolicy(SPACE, seed=2)
    tokens, _, _ = policy.sample(8, torch.Generator().manual_seed(2))
    logprobs, entropy = policy.evaluate(tokens)
    (logprobs.sum() + entropy.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in policy.parameters())
    tokens[:, 0] = len(SPACE.operands)  # group 0 reading group 0's own result
    assert torch.isinf(policy.evaluate(tokens)[0]).all()


def test_same_seed_same_policy_and_samples():
    a, b = LSTMPolicy(SPACE, seed=3), LSTMPolicy(SPACE, seed=3)
    ta = a.sample(16, torch.Generator().manual_seed(0))[0]
    assert torch.equal(ta, b.sample(16, torch.Generator().manual_seed(0))[0])
    assert not torch.equal(ta, LSTMPolicy(SPACE, seed=4).sample(16, torch.Generator().manual_seed(0))[0])


def test_ppo_learns_a_toy_reward():
    torch.manual_seed(0)
    policy = LSTMPolicy(SPACE, seed=0)
    ppo = PPO(policy, PPOConfig())
    generator = torch.Generator().manual_seed(0)
    means = []
    for _ in range(24):  # 384 samples, 24 updates of 16
        tokens, logprobs, _ = policy.sample(ppo.config.batch_size, generator)
        rewards = zero_reward(tokens)
        stats = ppo.update(tokens, logprobs, rewards)
        means.append(rewards.mean().item())
        assert {"pg_loss", "entropy", "approx_kl", "clipfrac"} <= stats.keys()
        assert all(math.isfinite(v) for v in stats.values())
        assert 0 <= stats["clipfrac"] <= 1
    first, last = sum(means[:4]) / 4, sum(means[-4:]) / 4
    assert first < 0.15 and last > first + 0.15, means  # about 0.09 -> 0.45 with these seeds


def test_ppo_state_dict_resumes_exactly():
    def trained(seed):
        policy = LSTMPolicy(SPACE, hidden=32, seed=seed)
        return policy, PPO(policy, PPOConfig(lr=1e-2))

    policy, ppo = trained(0)
    generator = torch.Generator().manual_seed(5)
    for _ in range(2):
        tokens, logprobs, _ = policy.sample(16, generator)
        ppo.update(tokens, logprobs, zero_reward(tokens))
    snapshot = copy.deepcopy(ppo.state_dict())
    tokens, logprobs, _ = policy.sample(16, generator)  # the batch both runs train on next

    def next_samples(policy, ppo):
        ppo.update(tokens, logprobs, zero_reward(tokens))
        return policy.sample(16, torch.Generator().manual_seed(6))[0]

    expected = next_samples(policy, ppo)
    policy2, ppo2 = trained(1)
    ppo2.load_state_dict(snapshot)
    assert ppo2.baseline == snapshot["baseline"] is not None and ppo2.updates == 2
    assert torch.equal(next_samples(policy2, ppo2), expected)
    assert all(torch.equal(a, b) for a, b in zip(policy.parameters(), policy2.parameters()))


def test_target_kl_stops_the_epochs_early():
    policy = LSTMPolicy(SPACE, hidden=32, seed=0)
    ppo = PPO(policy, PPOConfig(lr=1e-2, target_kl=1e-9))
    tokens, logprobs, _ = policy.sample(16, torch.Generator().manual_seed(0))
    # approx_kl is measured before each epoch's step: 0 in the first epoch, above target in the second.
    assert ppo.update(tokens, logprobs, zero_reward(tokens))["epochs"] == 2


def test_first_batch_sets_the_baseline_and_rewards_must_be_finite():
    policy = LSTMPolicy(SPACE, hidden=32, seed=0)
    ppo = PPO(policy, PPOConfig(baseline_decay=0.5))
    tokens, logprobs, _ = policy.sample(4, torch.Generator().manual_seed(0))
    ppo.update(tokens, logprobs, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert ppo.baseline == pytest.approx(2.5)
    ppo.update(tokens, logprobs, torch.tensor([4.5, 4.5, 4.5, 4.5]))
    assert ppo.baseline == pytest.approx(3.5)
    with pytest.raises(ValueError, match="finite"):
        ppo.update(tokens, logprobs, torch.tensor([1.0, float("nan"), 0.0, 0.0]))


@pytest.mark.parametrize("field, value", [("lr", 0.0), ("batch_size", 0), ("clip_coef", -0.1),
                                          ("ent_coef", -1.0), ("baseline_decay", 1.0), ("target_kl", 0.0)])
def test_bad_ppo_config_is_a_nos_error(field, value):
    with pytest.raises(NosError, match=field):
        PPOConfig(**{field: value})
