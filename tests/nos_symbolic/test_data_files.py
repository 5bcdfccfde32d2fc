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
