"""The pre-screen as a sampling constraint: token masks that keep samples trainable (DSO's priors).

The last token of a rule (the last group's binary b) completes it: given the other tokens, each
candidate b spells one whole rule, and the pre-screen (nos_symbolic/prescreen.py: nonfinite, constant,
one-signed, not a descent direction) decides each exactly. `TokenScreen.mask(prefix)` is that verdict
as a mask over b, so a sampler that applies it never draws a rule the pre-screen rejects:

    mask(t_0 .. t_{P-2})[b] = prescreen(render(t_0 .. t_{P-2}, b)).passed

It depends on the prefix alone, so the policy's sampling and PPO's teacher-forced log-probabilities
apply the same mask to the same sample (DSO masks its constraints as -inf logits in both). A prefix
no b can save (a dead end: about 58% of uniform prefixes of the default space) gets no mask (None);
the sampler then draws the whole rule again, up to a bound (`resample`), as what is rejected there can
only be told from the rule as a whole.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Sequence

import torch

from controller.space import SearchSpace
from nos_symbolic.errors import NosError
from nos_symbolic.prescreen import DESCENT_THRESHOLD, prescreen
from nos_symbolic.rule import parse_rule

DEFAULT_RESAMPLES = 16  # draws of a whole rule before a dead end is proposed anyway (0.58^16 < 1e-3)


@lru_cache(maxsize=65536)
def passes(text: str, threshold: float = DESCENT_THRESHOLD) -> bool:
    """Whether the rule `text` passes the pre-screen (a rule that cannot be built does not)."""
    try:
        return prescreen(parse_rule(text), threshold).passed
    except (NosError, ValueError, ArithmeticError):
        return False


class TokenScreen:
    """Masks of the last token from the pre-screen's verdict on each completion; see the module doc."""

    def __init__(self, space: SearchSpace, threshold: float = DESCENT_THRESHOLD) -> None:
        self.space = space
        self.threshold = threshold
        self._masks: dict[tuple[int, ...], torch.Tensor | None] = {}

    def passes(self, tokens: Sequence[int]) -> bool:
        """Whether the rule of a whole token sequence passes the pre-screen."""
        return passes(self.space.render(tokens), self.threshold)

    def mask(self, prefix: Sequence[int]) -> torch.Tensor | None:
        """BoolTensor[choices(P-1)] for the last position (True: the completed rule passes), or None at
        any other position and for a dead end (no completion passes)."""
        prefix = tuple(int(t) for t in prefix)
        last = self.space.n_positions - 1
        if len(prefix) != last:
            return None
        if prefix not in self._masks:
            if len(self._masks) >= 65536:  # a bound, not an LRU: the mask is recomputed when needed
                self._masks.clear()
            allowed = torch.zeros(self.space.choices(last), dtype=torch.bool)
            for b in range(self.space.n_valid(last)):
                allowed[b] = self.passes(prefix + (b,))
            self._masks[prefix] = allowed if allowed.any() else None
        return self._masks[prefix]

    def sample(self, draw: Callable[[], list[int]], pick_last: Callable[[int], int],
               resample: int = DEFAULT_RESAMPLES) -> list[int]:
        """A token sequence from `draw` (any sampler of whole sequences) whose last token is redrawn
        among the allowed ones with `pick_last(n_allowed)` -> index; a dead end draws again, up to
        `resample` more times (then the last draw is kept)."""
        for _ in range(resample + 1):
            tokens = draw()
            allowed = self.mask(tokens[:-1])
            if allowed is not None:
                choices = torch.nonzero(allowed)[:, 0].tolist()
                tokens[-1] = choices[pick_last(len(choices))]
                return tokens
        return tokens


__all__ = ["DEFAULT_RESAMPLES", "TokenScreen", "passes"]
