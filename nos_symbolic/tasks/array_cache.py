"""The cache of generated and decoded arrays: .npz files under $NOS_CACHE_DIR (default
~/.cache/nos-symbolic), written atomically so concurrent workers never read half a file. A cache
file that is unreadable, lacks an array or holds arrays of another dtype or shape than expected is
treated as absent (and rebuilt by the caller); a folder that cannot be written costs a rebuild next
time, never the run.

A dataset is cached as its train and test arrays, `TRAIN_TEST`: inputs x and x_test, int64 labels
y and y_test (and, for a dataset with named classes, `classes`).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

TRAIN_TEST = ("x", "y", "x_test", "y_test")
# What each cached array must be: its name -> (exact dtype, number of dimensions, trailing shape).
ArraySpec = dict[str, tuple[np.dtype, int, tuple[int, ...]]]


def cache_dir() -> Path:
    """Where decoded and generated arrays are cached: $NOS_CACHE_DIR, else ~/.cache/nos-symbolic."""
    env = os.environ.get("NOS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "nos-symbolic"


def _save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def try_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Cache `arrays` at `path` when the cache folder can be written; otherwise keep them in memory only
    (an unwritable or full $NOS_CACHE_DIR costs a rebuild next time, never the run)."""
    try:
        _save_npz_atomic(path, **arrays)
    except OSError as err:
        warnings.warn(f"cannot cache data in {path.parent} ({err.strerror or err}); building it in memory "
                      f"each time: set NOS_CACHE_DIR to a writable folder to cache it", RuntimeWarning,
                      stacklevel=3)


def load_npz(path: Path, names: tuple[str, ...], spec: ArraySpec,
             num_classes: int | None = None) -> dict[str, np.ndarray] | None:
    """The cached arrays `names`, or None when the file is absent, unreadable, lacks one of them, holds
    an array of another dtype or shape than `spec` says, a label outside 0..num_classes-1, or pairs
    inputs and labels of different lengths (it is then rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if not set(names) <= set(f.files):
                return None
            arrays = {k: f[k] for k in names}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    if not _valid_arrays(arrays, spec):
        return None
    if num_classes is not None and max(arrays["y"].max(), arrays["y_test"].max(initial=0)) >= num_classes:
        return None
    return arrays


def _valid_arrays(arrays: dict[str, np.ndarray], spec: ArraySpec) -> bool:
    """Whether the arrays have the dtypes and shapes of `spec`, inputs and labels pair up, train and test
    inputs have the same shape, and labels are >= 0 (below the number of classes when cached)."""
    for name, (dtype, ndim, tail) in spec.items():
        a = arrays[name]
        if a.dtype != dtype or a.ndim != ndim or (tail and a.shape[-len(tail):] != tail):
            return False
    if len(arrays["x"]) != len(arrays["y"]) or len(arrays["x_test"]) != len(arrays["y_test"]):
        return False
    if arrays["x"].shape[1:] != arrays["x_test"].shape[1:] or len(arrays["y"]) == 0:
        return False
    labels = np.concatenate([arrays["y"], arrays["y_test"]])
    if labels.min() < 0:
        return False
    if "classes" in arrays:
        classes = arrays["classes"]
        return classes.ndim == 1 and classes.dtype.kind == "U" and labels.max() < len(classes)
    return True


def digest(obj: object) -> str:
    """A short hash of a JSON-able object: a cache file's name for what it was built from."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]
