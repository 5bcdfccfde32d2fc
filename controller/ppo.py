"""PPO for the controller (Schulman et al. 2017), as in CleanRL's ppo.py, for one-step episodes.

Each episode is one sampled rule and one reward, so there is no value network and no GAE: the advantage
is the reward minus a moving average of past rewards (the baseline of Zoph & Le 2017 and Bello et al.
2017). One `update` takes a batch of rewarded samples and runs the clipped surrogate for a few epochs:

    ratio     = exp(logprob_new - logprob_old)
    pg_loss   = mean(max(-A * ratio, -A * clip(ratio, 1 - clip_coef, 1 + clip_coef)))
    loss      = pg_loss - ent_coef * entropy

The search asks for the best rule, not a good batch on average. `objective="best"` is the risk-seeking
policy gradient of DSO (Petersen et al. 2021): only the top `risk_epsilon` of each batch is trained on,
with the batch's (1 - epsilon) quantile as the baseline, so the policy is pushed toward its best samples
and never pulled away from its worst:

    q = quantile(R, 1 - epsilon);  keep R_i >= q;  A_i = R_i - q
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from controller.policy import LSTMPolicy
from nos_symbolic.errors import NosError, SettingError


OBJECTIVES = ("mean", "best")


def top_quantile(rewards: torch.Tensor, epsilon: float) -> tuple[torch.Tensor, float]:
    """The indices of the rewards >= q and q = the (1 - epsilon) quantile of `rewards` [B] (the higher
    of the two order statistics around it, as DSO's np.quantile(..., interpolation="higher"))."""
    q = torch.quantile(rewards.to(torch.float64), 1 - epsilon, interpolation="higher").item()
    return torch.nonzero(rewards >= q)[:, 0], q


@dataclass
class PPOConfig:
    lr: float = 5e-4
    """Adam learning rate. The paper used 1e-5 over more than 10k samples; a search of a few hundred
    evaluations (a few dozen updates) needs larger steps to move the policy at all."""
    adam_eps: float = 1e-5
    """Adam's epsilon (CleanRL's value)."""
    batch_size: int = 16
    """Rewarded samples per PPO update."""
    update_epochs: int = 4
    """Passes of the clipped surrogate over each batch (the whole batch is one minibatch)."""
    clip_coef: float = 0.2
    """The surrogate clipping coefficient."""
    ent_coef: float = 0.0015
    """Weight of the entropy bonus (the paper's entropy penalty)."""
    baseline_decay: float = 0.9
    """The baseline after a batch is decay * baseline + (1 - decay) * mean reward of the batch."""
    norm_adv: bool = True
    """Divide the advantages by their root-mean-square. Not re-centred, so the baseline still decides
    which rules count as better than usual; only the step size stops depending on the reward scale
    (validation accuracies differ by hundredths)."""
    max_grad_norm: float = 0.5
    """The maximum norm of the gradient."""
    objective: str = "mean"
    """mean: the advantage is the reward minus the moving-average baseline, on every sample; best: the
    risk-seeking objective, on the top risk_epsilon of the batch with its (1 - epsilon) quantile as the
    baseline (see the module docstring)."""
    risk_epsilon: float = 0.25
    """objective=best: the fraction of each batch trained on (DSO used 0.05 of batches of 1000; of a
    batch of 16 that is one sample, so the default keeps the top 4)."""
    target_kl: float | None = None
    """Stop an update's epochs early once approx_kl exceeds this (None: never). As in CleanRL, approx_kl
    is measured before each epoch's step, so the first epoch (KL 0 on fresh samples) never stops it."""

    def __post_init__(self) -> None:
        positive = {"lr": self.lr, "adam_eps": self.adam_eps, "batch_size": self.batch_size,
                    "update_epochs": self.update_epochs, "clip_coef": self.clip_coef,
                    "max_grad_norm": self.max_grad_norm}
        for name, value in positive.items():
            if not value > 0:
                raise NosError(f"PPO {name} must be positive, got {value}")
        if self.ent_coef < 0:
            raise NosError(f"PPO ent_coef must be >= 0, got {self.ent_coef}")
        if not 0 <= self.baseline_decay < 1:
            raise NosError(f"PPO baseline_decay must be in [0, 1), got {self.baseline_decay}")
        if self.objective not in OBJECTIVES:
            raise SettingError(f"PPO objective ({{0}}) must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}",
                               "objective")
        if not 0 < self.risk_epsilon <= 1:
            raise SettingError(f"PPO risk_epsilon ({{0}}) must be in (0, 1], got {self.risk_epsilon}", "risk_epsilon")
        if self.target_kl is not None and not self.target_kl > 0:
            raise NosError(f"PPO target_kl must be positive or None, got {self.target_kl}")


class PPO:
    """Trains `policy` on batches of (tokens, log-probs at sampling time, rewards)."""

    def __init__(self, policy: LSTMPolicy, config: PPOConfig | None = None) -> None:
        self.policy = policy
        self.config = config or PPOConfig()
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=self.config.lr, eps=self.config.adam_eps)
        self.baseline: float | None = None  # set to the first batch's mean reward
        self.updates = 0

    def update(self, tokens: torch.Tensor, old_logprobs: torch.Tensor, rewards: torch.Tensor) -> dict[str, float]:
        """One PPO update on tokens [B, P], old_logprobs [B] and rewards [B]; returns its statistics."""
        args = self.config
        rewards = rewards.to(torch.float32)
        if not torch.isfinite(rewards).all():
            raise ValueError("PPO rewards must be finite; score failed rules with a finite reward")
        baseline = rewards.mean().item() if self.baseline is None else self.baseline
        batch_reward = rewards.mean().item()
        advantages = rewards - baseline  # [B]
        if args.objective == "best":
            keep, quantile = top_quantile(rewards, args.risk_epsilon)
            tokens, old_logprobs, rewards = tokens[keep], old_logprobs[keep], rewards[keep]
            advantages = rewards - quantile  # [K], K >= epsilon * B
        if args.norm_adv:
            advantages = advantages / (advantages.pow(2).mean().sqrt() + 1e-8)

        clipfracs = []
        for epoch in range(args.update_epochs):
            newlogprob, entropy = self.policy.evaluate(tokens)  # [B], [B]
            logratio = newlogprob - old_logprobs
            ratio = logratio.exp()
            with torch.no_grad():
                # http://joschu.net/blog/kl-approx.html
                old_approx_kl = (-logratio).mean()
                approx_kl = ((ratio - 1) - logratio).mean()
                clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())

            pg_loss1 = -advantages * ratio
            pg_loss2 = -advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
            pg_loss = torch.max(pg_loss1, pg_loss2).mean()
            entropy_loss = entropy.mean()
            loss = pg_loss - args.ent_coef * entropy_loss

            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.policy.parameters(), args.max_grad_norm)
            self.optimizer.step()

            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        self.baseline = args.baseline_decay * baseline + (1 - args.baseline_decay) * batch_reward
        self.updates += 1
        stats = {
            "pg_loss": pg_loss.item(),
            "entropy": entropy_loss.item(),
            "old_approx_kl": old_approx_kl.item(),
            "approx_kl": approx_kl.item(),
            "clipfrac": sum(clipfracs) / len(clipfracs),
            "reward": batch_reward,
            "baseline": self.baseline,
            "epochs": epoch + 1,
        }
        if args.objective == "best":
            stats.update(quantile=quantile, trained=float(len(keep)))
        return stats

    def state_dict(self) -> dict:
        """Everything needed to resume exactly: policy weights, Adam's moments, the baseline."""
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.updates = state["updates"]


__all__ = ["OBJECTIVES", "PPO", "PPOConfig", "top_quantile"]
