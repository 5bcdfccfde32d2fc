"""Child tasks: MNIST-1D generation and cache, both CIFAR-10 layouts, models, get_task."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nos_symbolic.errors import NosError
from nos_symbolic.tasks import TASK_NAMES, DataError, Task, get_task
from nos_symbolic.tasks import cifar10, mnist1d_data
from nos_symbolic.tasks.models import MLP, CifarConvNet, ConvNet1d, seeded

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_CLASS_TRAIN, PER_CLASS_TEST = 10, 2


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("NOS_CACHE_DIR", str(path))
    return path


def fake_images(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) uint8 images grouped by class, and their labels."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(CLASSES)), per_class)
    x = rng.integers(0, 256, size=(len(y), 32, 32, 3), dtype=np.uint8)
    x[..., 0] = np.minimum(255, x[..., 0] // 2 + 12 * y[:, None, None])  # classes differ a little
    return x, y


def write_batches(folder: Path) -> None:
    """torchvision's cifar-10-batches-py: five training pickles, a test pickle, the class names."""
    folder.mkdir(parents=True)
    x, y = fake_images(PER_CLASS_TRAIN, seed=0)
    xt, yt = fake_images(PER_CLASS_TEST, seed=1)

    def dump(name: str, xs: np.ndarray, ys: np.ndarray) -> None:
        rows = xs.transpose(0, 3, 1, 2).reshape(len(xs), -1)  # CIFAR stores channel planes
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rows, b"labels": ys.tolist()}, f)

    for i, idx in enumerate(np.array_split(np.arange(len(y)), 5), start=1):
        dump(f"data_batch_{i}", x[idx], y[idx])
    dump("test_batch", xt, yt)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES]}, f)


def write_image_folders(root: Path, suffix: str = ".png") -> None:
    """train/<class>/*.png and test/<class>/*.png holding the same pixels as write_batches."""
    for split, (x, y) in {"train": fake_images(PER_CLASS_TRAIN, 0),
                          "test": fake_images(PER_CLASS_TEST, 1)}.items():
        for i, (img, label) in enumerate(zip(x, y)):
            folder = root / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:05d}{suffix}")


# --------------------------------------------------------------------------------------------
# CIFAR-10


def test_both_cifar_layouts_load_the_same_data(tmp_path):
    write_batches(tmp_path / "pickles" / "cifar-10-batches-py")
    write_image_folders(tmp_path / "folders")
    a = get_task("cifar10", data_dir=tmp_path / "pickles")
    b = get_task("cifar10", data_dir=tmp_path / "folders")
    assert a.classes == b.classes == tuple(CLASSES)
    assert (len(a.train), len(a.val), len(a.test)) == (90, 10, 20)
    assert a.train.x.shape == (90, 3, 32, 32) and a.train.x.dtype == torch.float32
    assert a.train.y.dtype == torch.int64
    for name in ("train", "val", "test"):  # PNG is lossless and the orders agree: equal tensors
        sa, sb = getattr(a, name), getattr(b, name)
        assert torch.equal(sa.y, sb.y)
        assert torch.allclose(sa.x, sb.x)
    # normalised by the training part's per-channel statistics
    assert torch.allclose(a.train.x.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(a.train.x.std((0, 2, 3)), torch.ones(3), atol=1e-2)


def test_cifar_data_dir_may_be_the_batches_folder_itself(tmp_path):
    write_batches(tmp_path / "cifar-10-batches-py")
    a = get_task("cifar10", data_dir=tmp_path)
    b = get_task("cifar10", data_dir=str(tmp_path / "cifar-10-batches-py"))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)


def test_cifar_subset_is_class_balanced_and_seeded(tmp_path):
    write_batches(tmp_path / "cifar-10-batches-py")
    task = get_task("cifar10", data_dir=tmp_path, subset=50, val_fraction=0.2)
    labels = torch.cat([task.train.y, task.val.y])
    assert (len(task.train), len(task.val), len(task.test)) == (40, 10, 10)
    assert labels.bincount(minlength=10).tolist() == [5] * 10
    assert task.test.y.bincount(minlength=10).tolist() == [1] * 10
    again = get_task("cifar10", data_dir=tmp_path, subset=50, val_fraction=0.2)
    assert torch.equal(task.train.x, again.train.x)


def test_cifar_jpeg_folders_load(tmp_path):
    write_image_folders(tmp_path, suffix=".jpg")
    task = get_task("cifar10", data_dir=tmp_path, subset=20)
    assert task.train.x.shape[1:] == (3, 32, 32) and len(task.train) + len(task.val) == 20
    assert task.num_classes == 10 and task.chance == pytest.approx(0.1)


def test_image_folders_are_cached_after_the_first_read(tmp_path, cache, monkeypatch):
    write_image_folders(tmp_path)
    first = get_task("cifar10", data_dir=tmp_path, subset=30)
    assert list(cache.glob("cifar10-images-*.npz"))

    def no_decoding(paths):
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(cifar10, "_decode_images", no_decoding)
    second = get_task("cifar10", data_dir=tmp_path, subset=30)
    assert torch.equal(first.train.x, second.train.x)


def test_missing_cifar_dir_names_both_layouts(tmp_path):
    with pytest.raises(DataError) as e:
        get_task("cifar10", data_dir=tmp_path / "nowhere")
    assert isinstance(e.value, NosError)  # the CLI prints it as one line
    msg = str(e.value)
    assert "nowhere" in msg and "does not exist" in msg
    assert "cifar-10-batches-py" in msg and "train/<class>" in msg
    with pytest.raises(DataError, match="data_dir"):
        get_task("cifar10")


@pytest.mark.parametrize("breakage", ["empty", "missing_batch", "corrupt_batch", "no_classes",
                                      "bad_image", "wrong_size", "class_mismatch"])
def test_malformed_cifar_dir_raises_data_error(tmp_path, breakage):
    if breakage == "empty":
        tmp_path.joinpath("stuff.txt").write_text("hello")
    elif breakage in ("missing_batch", "corrupt_batch"):
        write_batches(tmp_path / "cifar-10-batches-py")
        target = tmp_path / "cifar-10-batches-py" / "data_batch_3"
        if breakage == "missing_batch":
            target.unlink()
        else:
            target.write_bytes(b"not a pickle")
    else:
        write_image_folders(tmp_path)
        if breakage == "no_classes":
            for p in sorted((tmp_path / "test").rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
        elif breakage == "bad_image":
            (tmp_path / "train" / "cat" / "99999.png").write_bytes(b"garbage")
        elif breakage == "wrong_size":
            Image.new("RGB", (8, 8)).save(tmp_path / "train" / "cat" / "99999.png")
        else:
            (tmp_path / "test" / "dog").rename(tmp_path / "test" / "wolf")
    with pytest.raises(DataError) as e:
        get_task("cifar10", data_dir=tmp_path)
    assert str(tmp_path) in str(e.value)


# --------------------------------------------------------------------------------------------
# MNIST-1D


def test_mnist1d_splits_and_cache(cache, monkeypatch):
    rng_state = np.random.get_state()
    task = get_task("mnist1d", num_samples=500)
    assert np.array_equal(np.random.get_state()[1], rng_state[1])  # caller's numpy RNG untouched
    assert (len(task.train), len(task.val), len(task.test)) == (320, 80, 100)
    assert task.train.x.shape == (320, 1, 40) and task.train.x.dtype == torch.float32
    assert task.classes == tuple("0123456789") and task.num_classes == 10
    assert len(list(cache.glob("mnist1d-*n500-seed42.npz"))) == 1

    def no_generation(*args, **kwargs):
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(mnist1d_data, "_generate_mnist1d", no_generation)
    again = get_task("mnist1d-mlp", num_samples=500)
    assert torch.equal(task.train.x, again.train.x) and torch.equal(task.val.y, again.val.y)
    small = get_task("mnist1d", num_samples=500, n_train=64, batch_size=16)
    assert len(small.train) == 64 and len(small.val) == 80 and small.steps_per_epoch == 4
    # validation is carved from training data and never overlaps the examples trained on
    train_rows = {tuple(r) for r in task.train.x[:, 0].tolist()}
    assert not any(tuple(r) in train_rows for r in task.val.x[:, 0].tolist())


def test_a_broken_cache_file_is_rebuilt(cache):
    get_task("mnist1d", num_samples=300)
    (path,) = cache.glob("mnist1d-*.npz")
    path.write_bytes(b"truncated")
    assert len(get_task("mnist1d", num_samples=300).train) == 192
    assert not list(cache.glob("*.tmp"))


# --------------------------------------------------------------------------------------------
# get_task and models


def test_get_task_rejects_unknown_names_and_options():
    assert {"mnist1d", "mnist1d-mlp", "mnist1d-shuffled", "charlm", "cifar10"} == set(TASK_NAMES)
    with pytest.raises(ValueError, match="unknown task 'mnist'"):
        get_task("mnist")
    with pytest.raises(ValueError, match="unknown option.*subset"):
        get_task("mnist1d", subset=10)
    with pytest.raises(ValueError, match="positive"):
        get_task("mnist1d", num_samples=300, batch_size=0)


def test_task_defaults():
    task = get_task("mnist1d", num_samples=300)
    assert isinstance(task, Task)
    assert (task.batch_size, task.epochs) == (100, 5)
    assert task.steps_per_epoch == 192 // 100
    assert isinstance(task.make_model(0), ConvNet1d)
    assert isinstance(get_task("mnist1d-mlp", num_samples=300).make_model(0), MLP)


@pytest.mark.parametrize("model, shape", [(ConvNet1d(), (4, 1, 40)), (MLP(), (4, 1, 40)),
                                          (CifarConvNet(), (4, 3, 32, 32))])
def test_model_output_shapes(model, shape):
    assert model(torch.randn(shape)).shape == (4, 10)


def test_seeded_models_depend_only_on_the_seed():
    make = seeded(ConvNet1d)
    state = torch.get_rng_state()
    a, b, c = make(3), make(3), make(4)
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))
