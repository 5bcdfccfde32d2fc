"""What every data loader returns: `Splits` of ready-made tensors, the seeded carve of validation
from the training data, and `DataError` for a dataset that is missing or malformed."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nos_symbolic.errors import NosError


class DataError(NosError):
    """A dataset is missing or malformed; the message says what was expected.

    A NosError (a ValueError), so the CLI reports it as one line, without a traceback."""


@dataclass(frozen=True, eq=False)
class Split:
    """Inputs and labels of one split: x is float32 (N, C, L) or (N, C, H, W), y is int64 (N,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} rows but y has {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True, eq=False)
class Splits:
    """A dataset's three splits and its class names (a class id indexes them)."""

    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]


def carve_val(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) of a fixed seeded split of n training examples."""
    if not 0.0 < val_fraction < 1.0:
        raise NosError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
