"""Bad data files: each is a DataError naming the file; the image cache notices changed sources."""
from __future__ import annotations

import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nos_symbolic.errors import NosError
from nos_symbolic.tasks import DataError, get_task
from nos_symbolic.tasks import data as data_mod

CLASSES = ["cat", "dog"]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("NOS_CACHE_DIR", str(path))
    return path


def image(value: int) -> np.ndarray:
    return np.full((32, 32, 3), value, dtype=np.uint8)


def write_tree(root: Path) -> dict[str, Path]:
    """A 4-image CIFAR tree: train/{cat,dog}/0.png, test/{cat,dog}/0.png; returns the paths by name."""
    paths = {}
    for split, base in (("train", 10), ("test", 200)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            paths[f"{split}/{name}"] = folder / "0.png"
            Image.fromarray(image(base + 20 * label)).save(paths[f"{split}/{name}"])
    return paths


def write_batches(folder: Path, labels: list[int], names: list[str] | None = None) -> None:
    """A pickled CIFAR layout whose every batch holds one image per label in `labels`."""
    folder.mkdir(parents=True)
    rows = np.zeros((len(labels), 3 * 32 * 32), dtype=np.uint8)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rows, b"labels": labels}, f)
    if names is not None:
        with open(folder / "batches.meta", "wb") as f:
            pickle.dump({b"label_names": [n.encode() for n in names]}, f)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels (its data is a few bytes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def load_error(root: Path) -> str:
    with pytest.raises(DataError) as err:
        get_task("cifar10", data_dir=root)
    assert isinstance(err.value, NosError)
    return str(err.value)


def test_the_four_image_tree_loads(tmp_path):
    write_tree(tmp_path)
    task = get_task("cifar10", data_dir=tmp_path, val_fraction=0.5)
    assert task.classes == ("cat", "dog") and len(task.test) == 2
    assert task.test.y.tolist() == [0, 1]


@pytest.mark.parametrize("limit", [100, 600])
def test_a_decompression_bomb_is_a_data_error_naming_the_file(tmp_path, monkeypatch, limit):
    # 10^6 pixels against a limit of 10^5 (PIL raises) or 6 * 10^5 (PIL only warns): both refused
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit * 1000)
    paths = write_tree(tmp_path)
    paths["train/dog"].write_bytes(png_declaring(1000, 1000))
    message = load_error(tmp_path)
    assert str(paths["train/dog"]) in message


@pytest.mark.parametrize("breakage", ["truncated", "garbled", "empty"])
def test_broken_images_are_data_errors_naming_the_file(tmp_path, breakage):
    paths = write_tree(tmp_path)
    target = paths["test/cat"]
    data = target.read_bytes()
    target.write_bytes({"truncated": data[: len(data) // 2], "garbled": data[:40] + b"\xff" * 200,
                        "empty": b""}[breakage])
    assert str(target) in load_error(tmp_path)


def test_an_image_overwritten_under_the_same_name_is_read_again(tmp_path):
    paths = write_tree(tmp_path)
    first = get_task("cifar10", data_dir=tmp_path, val_fraction=0.5)
    folder_mtime = os.stat(paths["test/dog"].parent).st_mtime_ns
    noise = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(paths["test/dog"])  # same name, same folder, new pixels
    os.utime(paths["test/dog"].parent, ns=(folder_mtime, folder_mtime))
    second = get_task("cifar10", data_dir=tmp_path, val_fraction=0.5)
    assert not torch.equal(first.test.x, second.test.x)
    assert torch.equal(first.test.x[0], second.test.x[0])  # the cat was not touched


def test_a_cache_missing_its_arrays_is_rebuilt(tmp_path, cache):
    write_tree(tmp_path)
    first = get_task("cifar10", data_dir=tmp_path, val_fraction=0.5)
    (path,) = cache.glob("cifar10-images-*.npz")
    np.savez(path, x=np.zeros((1, 32, 32, 3), dtype=np.uint8))  # no labels, no test split
    again = get_task("cifar10", data_dir=tmp_path, val_fraction=0.5)
    assert torch.equal(first.test.x, again.test.x) and torch.equal(first.train.y, again.train.y)
    assert set(np.load(path).files) == set(data_mod.CIFAR_ARRAYS)


def test_a_cache_whose_lengths_disagree_is_rebuilt(tmp_path, cache):
    get_task("mnist1d", num_samples=300)
    (path,) = cache.glob("mnist1d-*.npz")
    arrays = dict(np.load(path))
    np.savez(path, **{**arrays, "y": arrays["y"][:5]})
    assert len(get_task("mnist1d", num_samples=300).train) == 192


@pytest.mark.parametrize("labels", [[0, 1, 10], [0, -1], [0, 12]])
def test_labels_outside_the_classes_are_data_errors_naming_the_file(tmp_path, labels):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder, labels)  # no batches.meta: CIFAR-10's ten classes
    message = load_error(tmp_path)
    assert str(folder / "data_batch_1") in message and "outside 0..9" in message


def test_labels_are_checked_against_the_named_classes(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder, [0, 1, 2], names=["cat", "dog"])
    assert "label 2 at index 2 is outside 0..1" in load_error(tmp_path)


@pytest.mark.parametrize("damage", ["x 3-d", "x float64", "y float32", "x_test other width", "label 10"])
def test_a_cache_of_the_wrong_shape_or_dtype_is_rebuilt(cache, damage):
    first = get_task("mnist1d", num_samples=300)
    (path,) = cache.glob("mnist1d-*.npz")
    arrays = dict(np.load(path))
    x, y = arrays["x"], arrays["y"]
    arrays.update({"x 3-d": {"x": x[:, None, :]}, "x float64": {"x": x.astype(np.float64)},
                   "y float32": {"y": y.astype(np.float32)}, "x_test other width": {"x_test": arrays["x_test"][:, :7]},
                   "label 10": {"y": np.where(y == y[0], 10, y)}}[damage])
    np.savez(path, **{k: arrays[k] for k in data_mod.MNIST1D_ARRAYS})
    again = get_task("mnist1d", num_samples=300)
    assert torch.equal(first.train.x, again.train.x) and torch.equal(first.test.y, again.test.y)
    rebuilt = np.load(path)
    assert rebuilt["x"].dtype == np.float32 and rebuilt["x"].ndim == 2 and rebuilt["y"].dtype == np.int64


def test_a_cifar_cache_of_the_wrong_image_shape_is_rebuilt(tmp_path, cache):
    write_tree(tmp_path / "data")
    first = get_task("cifar10", data_dir=tmp_path / "data", val_fraction=0.5)
    (path,) = cache.glob("cifar10-images-*.npz")
    arrays = dict(np.load(path))
    np.savez(path, **{**arrays, "x": np.zeros((len(arrays["y"]), 16, 16, 3), dtype=np.uint8)})
    again = get_task("cifar10", data_dir=tmp_path / "data", val_fraction=0.5)
    assert torch.equal(first.train.x, again.train.x)
    assert np.load(path)["x"].shape[1:] == (32, 32, 3)


def test_an_unwritable_cache_dir_builds_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("NOS_CACHE_DIR", str(blocker / "cache"))
    write_tree(tmp_path / "data")
    with pytest.warns(RuntimeWarning, match="NOS_CACHE_DIR"):
        task = get_task("cifar10", data_dir=tmp_path / "data", val_fraction=0.5)
    assert task.classes == ("cat", "dog") and len(task.test) == 2
    assert blocker.read_text().startswith("a file")


def test_an_empty_class_folder_is_a_data_error_naming_it(tmp_path):
    write_tree(tmp_path)
    for split in ("train", "test"):
        (tmp_path / split / "emu").mkdir()
    message = load_error(tmp_path)
    assert str(tmp_path / "test" / "emu") in message or str(tmp_path / "train" / "emu") in message
    assert "holds no images" in message


def test_a_class_folder_with_only_other_files_is_refused(tmp_path):
    write_tree(tmp_path)
    (tmp_path / "train" / "cat" / "0.png").rename(tmp_path / "train" / "cat" / "notes.txt")
    assert str(tmp_path / "train" / "cat") in load_error(tmp_path)


@pytest.mark.parametrize("value", [256.0, -1.0, 0.5, float("nan"), 300])
def test_pixel_data_a_byte_cannot_hold_is_refused(tmp_path, value):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder, [0, 1])
    rows = np.zeros((2, 3 * 32 * 32), dtype=np.float64 if isinstance(value, float) else np.int64)
    rows[1, 5] = value
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": rows, b"labels": [0, 1]}, f)
    message = load_error(tmp_path)
    assert str(folder / "data_batch_1") in message and "0 to 255" in message and "index 3077" in message


def test_whole_float_pixels_within_a_byte_are_read(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder, list(range(10)))
    rows = np.full((10, 3 * 32 * 32), 255.0)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": rows, b"labels": list(range(10))}, f)
    task = get_task("cifar10", data_dir=tmp_path, val_fraction=0.5)
    assert len(task.test) == 10
