"""Child networks, pure torch.

The paper's child is "a small two layer 3x3 ConvNet with 32 filters, ReLU and batch normalisation
after each conv layer" on CIFAR-10; pooling and head are unspecified. Here every conv block is
conv -> BN -> ReLU -> max-pool 2, and the head is flatten + one linear layer: max-pooling after each
block keeps the second conv cheap (a quarter of the positions), and flattening keeps the position
information that a global average pool would throw away (MNIST-1D digits are told apart by where
their bumps are). Each model is built from a seed, so a model's initial weights depend on nothing
else.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def seeded(build: Callable[[], nn.Module]) -> Callable[[int], nn.Module]:
    """seed -> model, initialised from that seed without touching the caller's global RNG."""

    def make(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build()

    return make


def _block1d(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv1d(c_in, c_out, 3, padding=1), nn.BatchNorm1d(c_out), nn.ReLU(), nn.MaxPool1d(2)]


def _block2d(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]


class ConvNet1d(nn.Sequential):
    """The paper's child network in 1-D, for MNIST-1D: (B, 1, 40) -> (B, 10) logits.

    conv3(1->32) BN ReLU maxpool2 -> (B, 32, 20); conv3(32->32) BN ReLU maxpool2 -> (B, 32, 10);
    flatten -> linear(320 -> 10). About 6.6k parameters.
    """

    def __init__(self, in_channels: int = 1, length: int = 40, num_classes: int = 10,
                 width: int = 32) -> None:
        super().__init__(*_block1d(in_channels, width), *_block1d(width, width), nn.Flatten(),
                         nn.Linear(width * (length // 4), num_classes))


class CifarConvNet(nn.Sequential):
    """The paper's child network: (B, 3, 32, 32) -> (B, 10) logits.

    conv3x3(3->32) BN ReLU maxpool2 -> (B, 32, 16, 16); conv3x3(32->32) BN ReLU maxpool2
    -> (B, 32, 8, 8); flatten -> linear(2048 -> 10). About 30k parameters.
    """

    def __init__(self, in_channels: int = 3, side: int = 32, num_classes: int = 10,
                 width: int = 32) -> None:
        super().__init__(*_block2d(in_channels, width), *_block2d(width, width), nn.Flatten(),
                         nn.Linear(width * (side // 4) ** 2, num_classes))


class MLP(nn.Sequential):
    """Two linear layers with a ReLU hidden layer of 128 units: (B, ...) -> (B, 10) logits.

    Used to check that a rule found on the ConvNet transfers to a network without convolutions or
    batch normalisation. For MNIST-1D: 40 -> 128 -> 10, about 6.5k parameters (as many as
    ConvNet1d, so the two tasks differ in architecture, not size).
    """

    def __init__(self, in_features: int = 40, num_classes: int = 10, hidden: int = 128) -> None:
        super().__init__(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))
