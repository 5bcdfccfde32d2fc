"""The controller: an autoregressive LSTM that emits a rule one token at a time (Bello et al. 2017).

One layer, 150 units, every weight uniform in [-0.08, 0.08] (the paper's controller). The input at step p
is the embedding of the token chosen at step p-1 (a start token at step 0) plus an embedding of p. One
embedding table holds every kind's tokens, each kind at its own offset, because the same index means
different things at an operand and at a unary position. Each kind has its own output head; the search
space's mask for the position sets invalid logits to -inf, so every sample is a valid rule by construction.

An optional `prior` adds masks that depend on the tokens drawn so far (DSO's priors): prior(prefix) is a
BoolTensor over the position's vocabulary, or None for no constraint. It is applied alike in `sample`
and in `evaluate`, so the log-probabilities PPO trains on are those the samples were drawn with:

    log pi(t_p | t_<p) = log_softmax(logits_p masked to -inf where space.mask(p) & prior(t_<p) is False)
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from controller.space import KINDS, SearchSpace

Prior = Callable[[Sequence[int]], "torch.Tensor | None"]


class LSTMPolicy(nn.Module):
    """A distribution over the token sequences of `space`: `sample` draws, `evaluate` scores."""

    def __init__(self, space: SearchSpace, hidden: int = 150, init_range: float = 0.08, seed: int = 0,
                 prior: Prior | None = None) -> None:
        super().__init__()
        self.space = space
        self.prior = prior
        sizes = {kind: space.vocab_size(kind) for kind in KINDS}
        start = {kind: 1 + sum(sizes[k] for k in KINDS[:i]) for i, kind in enumerate(KINDS)}  # 0 = start token
        self.embedding = nn.Embedding(1 + sum(sizes.values()), hidden)
        self.position_embedding = nn.Embedding(space.n_positions, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.heads = nn.ModuleDict({kind: nn.Linear(hidden, sizes[kind]) for kind in KINDS})

        kinds = [pos.kind for pos in space.positions]
        width = max(sizes.values())
        masks = torch.zeros(space.n_positions, width, dtype=torch.bool)  # [P, V_max]; padding is False
        for p in range(space.n_positions):
            masks[p, : space.choices(p)] = space.mask(p)
        # Derived from the space, so not part of the checkpoint.
        self.register_buffer("offsets", torch.tensor([start[k] for k in kinds]), persistent=False)  # [P]
        self.register_buffer("masks", masks, persistent=False)
        self.kinds = kinds

        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in self.parameters():
                param.uniform_(-init_range, init_range, generator=generator)

    @torch.no_grad()
    def sample(self, batch_size: int, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw `batch_size` rules: tokens LongTensor[B, P], their log-probabilities [B] and the entropy of
        each step's distribution summed over the steps [B]. No gradient: these are PPO's old log-probs.

        The LSTM cell is stepped by hand, the same cell as `nn.LSTM` (gates i, f, g, o):

            gates = W_ih x + b_ih + W_hh h + b_hh
            c = sigmoid(f) * c + sigmoid(i) * tanh(g);  h = sigmoid(o) * tanh(c)

        As x is a token embedding plus a position embedding, W_ih x is the sum of two rows of tables
        computed once per call, and a step costs one matrix product. The search draws one rule at a
        time, so the per-step overhead, not the arithmetic, is what this saves (evaluate's nn.LSTM
        is the reference; a test holds the two to the same log-probabilities).
        """
        w_ih, w_hh = self.lstm.weight_ih_l0, self.lstm.weight_hh_l0  # [4H, H] each
        token_in = torch.addmm(self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0, self.embedding.weight, w_ih.T)
        position_in = self.position_embedding.weight @ w_ih.T  # [P, 4H]
        w_hh_t = w_hh.T  # [H, 4H]
        hidden = self.lstm.hidden_size
        h = torch.zeros(batch_size, hidden)
        c = torch.zeros(batch_size, hidden)
        tokens = torch.zeros(batch_size, self.space.n_positions, dtype=torch.long)  # [B, P]
        logprobs = torch.zeros(batch_size)  # [B]
        entropy = torch.zeros(batch_size)  # [B]
        previous = torch.zeros(batch_size, dtype=torch.long)  # [B], the start token
        for p in range(self.space.n_positions):
            gates = torch.addmm(token_in[previous] + position_in[p], h, w_hh_t)  # [B, 4H]
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            logp = self._log_probs(h, p, self._prior_mask(tokens, p))  # [B, V]
            token = torch.multinomial(logp.exp(), 1, generator=generator)  # [B, 1]
            tokens[:, p] = token[:, 0]
            logprobs += logp.gather(1, token)[:, 0]
            entropy += self._entropy(logp, p)
            previous = token[:, 0] + self.offsets[p]
        return tokens, logprobs, entropy

    def evaluate(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities [B] and summed entropies [B] of given tokens [B, P] (teacher forcing), with
        gradient: PPO's new log-probs."""
        batch_size = tokens.shape[0]
        start = torch.zeros(batch_size, 1, dtype=torch.long)
        previous = torch.cat([start, tokens[:, :-1] + self.offsets[:-1]], dim=1)  # [B, P]
        x = self.embedding(previous) + self.position_embedding.weight  # [B, P, H]
        out, _ = self.lstm(x)  # [B, P, H]
        logprobs = torch.zeros(batch_size)
        entropy = torch.zeros(batch_size)
        for p in range(self.space.n_positions):
            logp = self._log_probs(out[:, p], p, self._prior_mask(tokens, p))  # [B, V]
            logprobs = logprobs + logp.gather(1, tokens[:, p, None])[:, 0]
            entropy = entropy + self._entropy(logp, p)
        return logprobs, entropy

    def _prior_mask(self, tokens: torch.Tensor, p: int) -> torch.Tensor | None:
        """BoolTensor[B, V_kind]: the prior's mask of each row given its tokens before p, or None when the
        prior constrains no row here."""
        if self.prior is None:
            return None
        width = self.space.choices(p)
        rows = [self.prior(prefix) for prefix in tokens[:, :p].tolist()]
        if all(row is None for row in rows):
            return None
        return torch.stack([torch.ones(width, dtype=torch.bool) if row is None else row for row in rows])

    def _log_probs(self, h: torch.Tensor, p: int, prior: torch.Tensor | None = None) -> torch.Tensor:
        """Masked log-softmax of the position's head: [B, H] -> [B, V_kind], -inf where the space's mask
        (or the prior's, [B, V_kind]) is False."""
        logits = self.heads[self.kinds[p]](h)
        mask = self._valid(p, logits.shape[1], prior)
        return torch.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)

    def _valid(self, p: int, width: int, prior: torch.Tensor | None) -> torch.Tensor:
        """The valid tokens at p: [V_kind], or [B, V_kind] with a prior's mask."""
        mask = self.masks[p, :width]
        return mask if prior is None else mask & prior

    def _entropy(self, logp: torch.Tensor, p: int) -> torch.Tensor:
        """-sum p log p over the valid tokens [B]."""
        probs = logp.exp()  # 0 where invalid
        logp = logp.masked_fill(torch.isneginf(logp), 0.0)  # so no 0 * -inf reaches the gradient
        return -(probs * logp).sum(-1)


__all__ = ["LSTMPolicy"]
