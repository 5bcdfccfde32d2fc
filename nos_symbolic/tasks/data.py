"""Datasets of the child tasks, as ready-made tensors.

Every builder returns `Split`s of float32 inputs and int64 labels that a training loop can index
directly: no DataLoader, no workers, no per-sample transforms. The test split is kept apart from the
validation split, which is carved from the training data with a fixed seed, so the test split never
feeds a reward.

MNIST-1D is generated locally with the `mnist1d` package (never downloaded). CIFAR-10 is read from
a folder the user names, in torchvision's pickled layout or as image folders. Generated and decoded
arrays are cached as .npz files under $NOS_CACHE_DIR (default ~/.cache/nos-symbolic), written
atomically so concurrent workers never read half a file. A decoded-image cache is keyed on the size
and mtime_ns of every source image, so an image overwritten under the same name is read again; a cache
file that is unreadable or lacks an array is rebuilt. A bad data file (an unreadable or truncated
image, a decompression bomb, a label outside the classes) is a DataError naming the file.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import pickle
import random
import tempfile
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nos_symbolic.errors import NosError

CIFAR_LAYOUTS = (
    "cifar-10-batches-py/ (torchvision layout) or train/<class>/*.jpg and test/<class>/*.jpg "
    "(image folders; .png also accepted)"
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CIFAR_SIDE = 32
CIFAR_TEST_PER_TRAIN = 5  # CIFAR-10 has 50,000 training and 10,000 test images
CIFAR_CLASSES = 10
MNIST1D_CLASSES = 10


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
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]


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


def _try_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Cache `arrays` at `path` when the cache folder can be written; otherwise keep them in memory only
    (an unwritable or full $NOS_CACHE_DIR costs a rebuild next time, never the run)."""
    try:
        _save_npz_atomic(path, **arrays)
    except OSError as err:
        warnings.warn(f"cannot cache data in {path.parent} ({err.strerror or err}); building it in memory "
                      f"each time: set NOS_CACHE_DIR to a writable folder to cache it", RuntimeWarning,
                      stacklevel=3)


MNIST1D_ARRAYS = ("x", "y", "x_test", "y_test")
CIFAR_ARRAYS = MNIST1D_ARRAYS + ("classes",)
# What each cached array must be: (dtype kind or exact dtype, number of dimensions, trailing shape).
MNIST1D_SPEC: dict[str, tuple[np.dtype, int, tuple[int, ...]]] = {
    "x": (np.dtype(np.float32), 2, ()), "y": (np.dtype(np.int64), 1, ()),
    "x_test": (np.dtype(np.float32), 2, ()), "y_test": (np.dtype(np.int64), 1, ()),
}
CIFAR_SPEC: dict[str, tuple[np.dtype, int, tuple[int, ...]]] = {
    "x": (np.dtype(np.uint8), 4, (CIFAR_SIDE, CIFAR_SIDE, 3)), "y": (np.dtype(np.int64), 1, ()),
    "x_test": (np.dtype(np.uint8), 4, (CIFAR_SIDE, CIFAR_SIDE, 3)), "y_test": (np.dtype(np.int64), 1, ()),
}


def _load_npz(path: Path, names: tuple[str, ...],
              spec: dict[str, tuple[np.dtype, int, tuple[int, ...]]] | None = None,
              num_classes: int | None = None) -> dict[str, np.ndarray] | None:
    """The cached arrays `names`, or None when the file is absent, unreadable, lacks one of them, holds
    an array of another dtype or shape than `spec` says (MNIST1D_SPEC by default), a label outside
    0..num_classes-1, or pairs inputs and labels of different lengths (it is then rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if not set(names) <= set(f.files):
                return None
            arrays = {k: f[k] for k in names}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    if not _valid_arrays(arrays, spec or MNIST1D_SPEC):
        return None
    if num_classes is not None and max(arrays["y"].max(), arrays["y_test"].max(initial=0)) >= num_classes:
        return None
    return arrays


def _valid_arrays(arrays: dict[str, np.ndarray], spec: dict[str, tuple[np.dtype, int, tuple[int, ...]]]) -> bool:
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


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def _carve_val(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) of a fixed seeded split of n training examples."""
    if not 0.0 < val_fraction < 1.0:
        raise NosError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


# ---------------------------------------------------------------------------------------------
# MNIST-1D


def mnist1d_arrays(num_samples: int = 5000, data_seed: int = 42) -> dict[str, np.ndarray]:
    """MNIST-1D's train/test arrays (x (N, 40) float32, y int64), generated once then cached.

    The generation args are the package defaults (`get_dataset_args()`) except num_samples and seed;
    the defaults give 4,000 train and 1,000 test sequences, the size of the published MNIST-1D. The
    cache name pins the package version, which pins its defaults, so a cache hit never imports
    the package (whose import pulls in matplotlib).
    """
    version = importlib.metadata.version("mnist1d")
    path = cache_dir() / f"mnist1d-{version}-n{num_samples}-seed{data_seed}.npz"
    cached = _load_npz(path, MNIST1D_ARRAYS, MNIST1D_SPEC, num_classes=MNIST1D_CLASSES)
    if cached is not None:
        return cached
    arrays = _generate_mnist1d(num_samples, data_seed)
    _try_cache(path, arrays)
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
    tr, va = _carve_val(len(a["y"]), val_fraction, split_seed)
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


# ---------------------------------------------------------------------------------------------
# CIFAR-10


def load_cifar10(
    data_dir: str | os.PathLike,
    subset: int | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
) -> Splits:
    """CIFAR-10 from data_dir, as normalised (N, 3, 32, 32) images.

    data_dir holds either torchvision's `cifar-10-batches-py/` (or is that folder) or image folders
    `train/<class>/*.jpg|png` and `test/<class>/*.jpg|png`; class ids follow the sorted class names,
    which for CIFAR-10 equals torchvision's label order.

    subset=N keeps a class-balanced, seeded N training images and N // 5 test images (CIFAR-10's
    ratio; at least one a class); val_fraction of the kept training images become validation (the
    default 0.1 gives the usual 45,000 / 5,000 split). Each channel is normalised by the mean and
    std of the training part.
    """
    root = Path(data_dir).expanduser()
    batches = _find_batches_dir(root)
    if batches is not None:
        raw = _read_cifar_batches(batches, subset, split_seed)
    elif (root / "train").is_dir() and (root / "test").is_dir():
        raw = _read_image_folders_cached(root, subset, split_seed)
    else:
        why = "it does not exist" if not root.exists() else "neither layout is there"
        raise DataError(f"no CIFAR-10 found in {root} ({why}): expected {CIFAR_LAYOUTS}")

    tr, va = _carve_val(len(raw["y"]), val_fraction, split_seed)
    x_train = raw["x"][tr]  # (N, H, W, C) uint8
    # per channel and in float64: a float32 sum over 46M pixels drifts visibly
    mean = np.array([x_train[..., c].mean(dtype=np.float64) for c in range(3)])
    std = np.array([x_train[..., c].std(dtype=np.float64) for c in range(3)]) + 1e-8

    def split(x_uint8: np.ndarray, y: np.ndarray) -> Split:
        x = torch.from_numpy(x_uint8).permute(0, 3, 1, 2).contiguous().float()  # (N, C, H, W)
        x.sub_(torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        x.div_(torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        return Split(x, torch.from_numpy(y.astype(np.int64)))

    return Splits(
        train=split(raw["x"][tr], raw["y"][tr]),
        val=split(raw["x"][va], raw["y"][va]),
        test=split(raw["x_test"], raw["y_test"]),
        classes=tuple(str(c) for c in raw["classes"]),
    )


def _balanced_subset(y: np.ndarray, n: int | None, num_classes: int, seed: int) -> np.ndarray:
    """Sorted indices of n examples, n // num_classes per class (the remainder to the first
    classes), chosen with a seeded generator; all indices when n is None."""
    if n is None:
        return np.arange(len(y))
    if n < num_classes:
        raise NosError(f"subset must be at least the number of classes ({num_classes}), got {n}")
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(num_classes):
        want = n // num_classes + (c < n % num_classes)
        members = np.flatnonzero(y == c)
        if len(members) < want:
            raise DataError(f"subset={n} needs {want} examples of class {c}, found {len(members)}")
        picked.append(rng.choice(members, want, replace=False))
    return np.sort(np.concatenate(picked))


def _subset_sizes(subset: int | None, num_classes: int) -> tuple[int | None, int | None]:
    """(train, test) sizes for a subset: test keeps CIFAR-10's 5:1 ratio, one image a class at
    least."""
    if subset is None:
        return None, None
    return subset, max(num_classes, subset // CIFAR_TEST_PER_TRAIN)


def _find_batches_dir(root: Path) -> Path | None:
    if (root / "cifar-10-batches-py").is_dir():
        return root / "cifar-10-batches-py"
    if (root / "data_batch_1").is_file() or (root / "test_batch").is_file():
        return root
    return None


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"malformed CIFAR-10 in {path.parent}: {path.name} is missing; "
                        f"expected {CIFAR_LAYOUTS}")
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        x = _pixels(path, np.asarray(d[b"data"])).reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE)
        y = np.asarray(d[b"labels"], dtype=np.int64)
    except DataError:
        raise
    except Exception as e:  # any unreadable batch is the user's data problem, not a crash
        raise DataError(f"malformed CIFAR-10 batch {path}: {type(e).__name__}: {e}; "
                        f"expected {CIFAR_LAYOUTS}") from e
    if len(x) != len(y):
        raise DataError(f"malformed CIFAR-10 batch {path}: {len(x)} images but {len(y)} labels")
    return {"x": x.transpose(0, 2, 3, 1), "y": y}


def _pixels(path: Path, data: np.ndarray) -> np.ndarray:
    """A batch's pixel data as uint8, refusing values a byte cannot hold (negative, above 255, not whole
    numbers, NaN) instead of letting them wrap."""
    if data.dtype == np.uint8:
        return data
    if data.dtype.kind not in "uif" or data.size == 0:
        raise DataError(f"malformed CIFAR-10 batch {path}: pixel data of type {data.dtype} ({data.size} values); "
                        f"expected whole numbers 0..255")
    bad = ~np.isfinite(data) | (data < 0) | (data > 255) if data.dtype.kind == "f" else (data < 0) | (data > 255)
    if data.dtype.kind == "f":
        bad |= np.isfinite(data) & (data != np.round(data))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise DataError(f"malformed CIFAR-10 batch {path}: pixel value {data.ravel()[i]!r} at index {i} is not a "
                        f"whole number from 0 to 255 ({int(bad.sum())} such value(s)); store pixels as 0..255")
    return data.astype(np.uint8)


def _read_cifar_batches(folder: Path, subset: int | None, seed: int) -> dict[str, np.ndarray]:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {name: _unpickle(folder / name) for name in names}
    classes = _batch_class_names(folder)
    for name, batch in batches.items():
        _check_labels(folder / name, batch["y"], len(classes))
    parts, test = [batches[name] for name in names[:-1]], batches["test_batch"]
    x = np.concatenate([p["x"] for p in parts])
    y = np.concatenate([p["y"] for p in parts])
    n_train, n_test = _subset_sizes(subset, len(classes))
    tr = _balanced_subset(y, n_train, len(classes), seed)
    te = _balanced_subset(test["y"], n_test, len(classes), seed)
    return {"x": x[tr], "y": y[tr], "x_test": test["x"][te], "y_test": test["y"][te],
            "classes": np.array(classes)}


def _check_labels(path: Path, y: np.ndarray, num_classes: int) -> None:
    """Every label must name one of the classes: 0 <= label < num_classes."""
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if len(bad):
        raise DataError(f"malformed CIFAR-10 batch {path}: label {int(y[bad[0]])} at index {int(bad[0])} "
                        f"is outside 0..{num_classes - 1} ({len(bad)} such label(s))")


def _batch_class_names(folder: Path) -> list[str]:
    """The class names of batches.meta, else CIFAR-10's ten classes as the numbers 0..9."""
    meta = folder / "batches.meta"
    if meta.is_file():
        try:
            with open(meta, "rb") as f:
                names = pickle.load(f, encoding="bytes")[b"label_names"]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        except Exception:
            names = []  # the names are cosmetic; fall back to numbers
        if names:
            return names
    return [str(i) for i in range(CIFAR_CLASSES)]


def _list_image_folder(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    files = []
    for label, name in enumerate(classes):
        images = [(p, label) for p in sorted((folder / name).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise DataError(f"malformed CIFAR-10 in {folder.parent}: class folder {folder / name} holds no images "
                            f"({', '.join(IMAGE_SUFFIXES)}); add its images or remove the folder from both "
                            f"train/ and test/")
        files += images
    if not classes or not files:
        raise DataError(f"malformed CIFAR-10 in {folder.parent}: {folder.name}/ holds no "
                        f"<class>/ folders of images; expected {CIFAR_LAYOUTS}")
    return classes, files


def _read_image_folders_cached(root: Path, subset: int | None, seed: int) -> dict[str, np.ndarray]:
    train_classes, train_files = _list_image_folder(root / "train")
    test_classes, test_files = _list_image_folder(root / "test")
    if train_classes != test_classes:
        raise DataError(f"malformed CIFAR-10 in {root}: train/ has classes {train_classes} but "
                        f"test/ has {test_classes}")
    key = _digest({"path": str(root.resolve()), "subset": subset, "seed": seed,
                   "files": _file_stamps(root, [p for p, _ in train_files + test_files])})
    path = cache_dir() / f"cifar10-images-{key}.npz"
    cached = _load_npz(path, CIFAR_ARRAYS, CIFAR_SPEC)
    if cached is not None:
        return cached

    k = len(train_classes)
    n_train, n_test = _subset_sizes(subset, k)
    tr = _balanced_subset(np.array([c for _, c in train_files]), n_train, k, seed)
    te = _balanced_subset(np.array([c for _, c in test_files]), n_test, k, seed)
    train_sel, test_sel = [train_files[i] for i in tr], [test_files[i] for i in te]
    arrays = {
        "x": _decode_images([p for p, _ in train_sel]),
        "y": np.array([c for _, c in train_sel], dtype=np.int64),
        "x_test": _decode_images([p for p, _ in test_sel]),
        "y_test": np.array([c for _, c in test_sel], dtype=np.int64),
        "classes": np.array(train_classes),
    }
    _try_cache(path, arrays)
    return arrays


def _file_stamps(root: Path, paths: list[Path]) -> list[tuple[str, int, int]]:
    """(path under root, size, mtime_ns) of each file: the cache key changes when any file is added,
    removed, renamed or rewritten in place."""
    stamps = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as e:
            raise DataError(f"unreadable image {p}: {e.strerror}") from e
        stamps.append((p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return stamps


def _decode_one(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            # check the declared size before decoding: a decompression bomb declares a huge one
            if im.size != (CIFAR_SIDE, CIFAR_SIDE):
                raise DataError(f"image {path} is {im.size[0]}x{im.size[1]}; CIFAR-10 images are 32x32")
            a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"image {path} declares too many pixels (a decompression bomb?): {e}") from e
    except Exception as e:  # truncated, garbled or unknown formats are the user's data problem
        raise DataError(f"unreadable image {path}: {type(e).__name__}: {e}") from e
    if a.shape != (CIFAR_SIDE, CIFAR_SIDE, 3):
        raise DataError(f"image {path} is {a.shape[1]}x{a.shape[0]}; CIFAR-10 images are 32x32")
    return a


def _decode_images(paths: list[Path]) -> np.ndarray:
    """(N, 32, 32, 3) uint8, decoded on a few threads (PIL releases the GIL while decoding)."""
    from PIL import Image

    if not paths:
        return np.zeros((0, CIFAR_SIDE, CIFAR_SIDE, 3), dtype=np.uint8)
    # PIL only warns below twice its pixel limit; such an image is refused like a larger bomb
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            return np.stack(list(pool.map(_decode_one, paths)))
