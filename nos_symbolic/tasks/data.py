"""Datasets of the child tasks, as ready-made tensors: one import for every loader.

Every builder returns `Split`s of float32 inputs and int64 labels that a training loop can index
directly: no DataLoader, no workers, no per-sample transforms. The test split is kept apart from the
validation split, which is carved from the training data with a fixed seed, so the test split never
feeds a reward.

    splits.py       Split, Splits, DataError and the validation carve every loader shares
    array_cache.py  the .npz cache of generated and decoded arrays under $NOS_CACHE_DIR
    mnist1d_data.py MNIST-1D, generated locally with the `mnist1d` package (never downloaded)
    cifar10.py      CIFAR-10 from a folder the user names, torchvision's batches or image folders
"""
from __future__ import annotations

from nos_symbolic.tasks.array_cache import cache_dir
from nos_symbolic.tasks.cifar10 import CIFAR_ARRAYS, CIFAR_CLASSES, CIFAR_LAYOUTS, CIFAR_SPEC, load_cifar10
from nos_symbolic.tasks.mnist1d_data import (
    MNIST1D_ARRAYS,
    MNIST1D_CLASSES,
    MNIST1D_SPEC,
    load_mnist1d,
    mnist1d_arrays,
)
from nos_symbolic.tasks.splits import DataError, Split, Splits

__all__ = ["DataError", "Split", "Splits", "cache_dir", "load_mnist1d", "mnist1d_arrays", "load_cifar10",
           "MNIST1D_ARRAYS", "MNIST1D_CLASSES", "MNIST1D_SPEC", "CIFAR_ARRAYS", "CIFAR_CLASSES",
           "CIFAR_LAYOUTS", "CIFAR_SPEC"]
