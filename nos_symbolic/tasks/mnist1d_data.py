"""MNIST-1D, generated locally with the `mnist1d` package (never downloaded) and cached: the search's
task, small enough that one run of its ConvNet takes well under a second on one CPU core."""
from __future__ import annotations

import importlib.metadata
import random

import numpy as np
import torch

from nos_symbolic.errors import NosError
from nos_symbolic.tasks.array_cache import TRAIN_TEST, ArraySpec, cache_dir, load_npz, try_cache
from nos_symbolic.tasks.splits import Split, Splits, carve_val

MNIST1D_CLASSES = 10
MNIST1D_ARRAYS = TRAIN_TEST
MNIST1D_SPEC: ArraySpec = {
    "x": (np.dtype(np.float32), 2, ()), "y": (np.dtype(np.int64), 1, ()),
    "x_test": (np.dtype(np.float32), 2, ()), "y_test": (np.dtype(np.int64), 1, ()),
}


def mnist1d_arrays(num_samples: int = 5000, data_seed: int = 42) -> dict[str, np.ndarray]:
    """MNIST-1D's train/test arrays (x (N, 40) float32, y int64), generated once then cached.

    The generation args are the package defaults (`get_dataset_args()`) except num_samples and seed;
    the defaults give 4,000 train and 1,000 test sequences, the size of the published MNIST-1D. The
    cache name pins the package version, which pins its defaults, so a cache hit never imports
    the package (whose import pulls in matplotlib).
    """
    version = importlib.metadata.version("mnist1d")
    path = cache_dir() / f"mnist1d-{version}-n{num_samples}-seed{data_seed}.npz"
    cached = load_npz(path, MNIST1D_ARRAYS, MNIST1D_SPEC, num_classes=MNIST1D_CLASSES)
    if cached is not None:
        return cached
    arrays = _generate_mnist1d(num_samples, data_seed)
    try_cache(path, arrays)
    return arrays


def _generate_mnist1d(num_samples: int, data_seed: int) -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, data_seed
    # make_dataset reseeds the global `random` and numpy generators; give the caller theirs back
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x": d["x"].astype(np.float32), "y": d["y"].astype(np.int64),
        "x_test": d["x_test"].astype(np.float32), "y_test": d["y_test"].astype(np.int64),
    }


def load_mnist1d(
    num_samples: int = 5000,
    data_seed: int = 42,
    val_fraction: float = 0.2,
    n_train: int | None = None,
    split_seed: int = 0,
) -> Splits:
    """MNIST-1D as (N, 1, 40) sequences; val_fraction of the training data becomes validation.

    n_train, when given, keeps a seeded random n_train of the remaining training examples (for
    quick checks); validation and test are unaffected.
    """
    a = mnist1d_arrays(num_samples, data_seed)
    tr, va = carve_val(len(a["y"]), val_fraction, split_seed)
    if n_train is not None:
        if not 0 < n_train <= len(tr):
            raise NosError(f"n_train must lie in [1, {len(tr)}], got {n_train}")
        tr = np.sort(np.random.default_rng(split_seed + 1).choice(tr, n_train, replace=False))

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(x[:, None, :].copy()), torch.from_numpy(y.copy()))

    return Splits(
        train=split(a["x"][tr], a["y"][tr]),
        val=split(a["x"][va], a["y"][va]),
        test=split(a["x_test"], a["y_test"]),
        classes=tuple(str(i) for i in range(MNIST1D_CLASSES)),
    )
