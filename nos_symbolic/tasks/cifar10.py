"""CIFAR-10, read from a folder the user names: torchvision's pickled batches or image folders.

Decoded image folders are cached, keyed on the size and mtime_ns of every source image, so an image
overwritten under the same name is read again. A bad data file (an unreadable or truncated image, a
decompression bomb, a label outside the classes) is a DataError naming the file.
"""
from __future__ import annotations

import os
import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from nos_symbolic.errors import NosError
from nos_symbolic.tasks.array_cache import TRAIN_TEST, ArraySpec, cache_dir, digest, load_npz, try_cache
from nos_symbolic.tasks.splits import DataError, Split, Splits, carve_val

CIFAR_LAYOUTS = (
    "cifar-10-batches-py/ (torchvision layout) or train/<class>/*.jpg and test/<class>/*.jpg "
    "(image folders; .png also accepted)"
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CIFAR_SIDE = 32
CIFAR_TEST_PER_TRAIN = 5  # CIFAR-10 has 50,000 training and 10,000 test images
CIFAR_CLASSES = 10
CIFAR_ARRAYS = TRAIN_TEST + ("classes",)
CIFAR_SPEC: ArraySpec = {
    "x": (np.dtype(np.uint8), 4, (CIFAR_SIDE, CIFAR_SIDE, 3)), "y": (np.dtype(np.int64), 1, ()),
    "x_test": (np.dtype(np.uint8), 4, (CIFAR_SIDE, CIFAR_SIDE, 3)), "y_test": (np.dtype(np.int64), 1, ()),
}


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

    tr, va = carve_val(len(raw["y"]), val_fraction, split_seed)
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
    key = digest({"path": str(root.resolve()), "subset": subset, "seed": seed,
                   "files": _file_stamps(root, [p for p, _ in train_files + test_files])})
    path = cache_dir() / f"cifar10-images-{key}.npz"
    cached = load_npz(path, CIFAR_ARRAYS, CIFAR_SPEC)
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
    try_cache(path, arrays)
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
