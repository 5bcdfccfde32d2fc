"""charlm: the corpus split by file, the character encoding, the Transformer, and a short training."""
from __future__ import annotations

import pytest
import torch

from nos_symbolic.tasks import DataError, get_task, metric_of
from nos_symbolic.tasks.baselines import BASELINES
from nos_symbolic.tasks.charlm import (
    CONTEXT,
    UNKNOWN,
    VOCAB,
    CharTransformer,
    bits_per_char,
    decode,
    encode,
    load_charlm,
    windows,
)
from nos_symbolic.tasks.train import train_run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """40 small modules, each with its own marker line, in a package tree with noise to skip."""
    root = tmp_path_factory.mktemp("corpus")
    for i in range(40):
        folder = root / f"pkg{i % 4}"
        folder.mkdir(exist_ok=True)
        body = "".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}\n\n" for j in range(12))
        (folder / f"mod{i}.py").write_text(f"# module {i:03d}\n{body}")
    (root / "site-packages").mkdir()
    (root / "site-packages" / "big.py").write_text("# installed, not the corpus\n" * 1000)
    (root / "notes.txt").write_text("not python")
    return root


def _modules(split) -> set[str]:
    text = "".join(decode(row) for row in split.x)
    return {line for line in text.splitlines() if line.startswith("# module")}


def test_split_is_by_file_deterministic_and_capped(corpus):
    a = load_charlm(corpus, max_chars=20_000)
    b = load_charlm(corpus, max_chars=20_000)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    train, val, test = _modules(a.train), _modules(a.val), _modules(a.test)
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)
    text = "".join(decode(row) for split in (a.train, a.val, a.test) for row in split.x)
    assert "installed" not in text and "not python" not in text
    total = sum(s.x.numel() for s in (a.train, a.val, a.test))
    assert total <= 20_000 and a.train.x.shape[1] == CONTEXT and a.classes == VOCAB


def test_targets_are_the_next_character(corpus):
    split = load_charlm(corpus, max_chars=20_000).train
    assert torch.equal(split.x[0, 1:], split.y[0, :-1])
    assert torch.equal(split.y[0, -1], split.x[1, 0])  # windows are cut without overlap or gap


def test_encoding_round_trip_and_unknown_characters():
    text = "def f(x):\n\treturn x  # ok"
    assert decode(encode(text)) == text
    ids = encode("é\r€a")
    assert list(ids[:3]) == [UNKNOWN] * 3 and decode(ids[3:]) == "a"
    with pytest.raises(DataError, match="more than"):
        windows(encode("short"))


def test_bad_corpus_folders(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_charlm(tmp_path / "missing")
    with pytest.raises(DataError, match="no .py files"):
        load_charlm(tmp_path)
    (tmp_path / "one.py").write_text("x = 1\n" * 200)
    with pytest.raises(DataError, match="needs more files"):
        load_charlm(tmp_path)


def test_transformer_size_and_causality():
    model = CharTransformer()
    assert 90_000 <= sum(p.numel() for p in model.parameters()) <= 110_000
    ids = torch.randint(0, len(VOCAB), (2, CONTEXT))
    changed = ids.clone()
    changed[:, 40:] = (changed[:, 40:] + 1) % len(VOCAB)
    model.eval()
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert a.shape == (2, CONTEXT, len(VOCAB))
    assert torch.allclose(a[:, :40], b[:, :40], atol=1e-6)  # no position sees the future
    assert not torch.allclose(a[:, 40:], b[:, 40:])


def test_task_trains_above_chance(corpus):
    task = get_task("charlm", data_dir=str(corpus), max_chars=20_000, epochs=3)
    assert task.batch_size == 32 and task.num_classes == len(VOCAB)
    assert metric_of("charlm") == "next-character accuracy"
    out = train_run(task, BASELINES["adam"], lr=3e-3, seed=0, test=True, curve=True)
    assert out.status == "ok" and out.test_acc > 0.3 > 5 * task.chance
    assert [step for step, _ in out.val_curve] == [task.steps_per_epoch * (e + 1) for e in range(3)]
    assert bits_per_char(out.test_loss) == pytest.approx(out.test_loss / 0.6931471805599453)
    assert bits_per_char(out.test_loss) < 5.0  # log2(98) = 6.6 bits is a uniform guess
