"""mnist1d-shuffled: MNIST-1D with the positions of every sequence permuted by one fixed permutation.

The same permutation for every sequence and split keeps the task learnable (a network that ignores
position order, like an MLP, sees exactly the original problem), but neighbouring inputs are no
longer neighbours in the signal, so the ConvNet's bias toward local patterns stops helping. A rule
found on MNIST-1D that still wins here does not owe its win to that bias.
"""
from __future__ import annotations

import numpy as np
import torch

from nos_symbolic.tasks.data import Split, Splits, load_mnist1d


def position_permutation(length: int, perm_seed: int) -> torch.Tensor:
    """The fixed permutation of `length` positions drawn from perm_seed."""
    return torch.from_numpy(np.random.default_rng(perm_seed).permutation(length))


def load_mnist1d_shuffled(
    num_samples: int = 5000,
    data_seed: int = 42,
    val_fraction: float = 0.2,
    n_train: int | None = None,
    split_seed: int = 0,
    perm_seed: int = 0,
) -> Splits:
    """load_mnist1d's splits with x[..., i] replaced by x[..., perm[i]] for one seeded perm."""
    splits = load_mnist1d(num_samples, data_seed, val_fraction, n_train, split_seed)
    perm = position_permutation(splits.train.x.shape[-1], perm_seed)

    def shuffle(split: Split) -> Split:
        return Split(split.x[..., perm].contiguous(), split.y)

    return Splits(train=shuffle(splits.train), val=shuffle(splits.val), test=shuffle(splits.test),
                  classes=splits.classes)
