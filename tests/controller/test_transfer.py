"""nos transfer: rules (a file's, or a run's confirmation) and the baselines on held-out tasks."""
from __future__ import annotations

import pytest

from _studies import make_run
from analysis.studies import study_tables
from controller.store import RunStore, TrainingRow
from controller.studies.contenders import BASELINES, baseline_key
from controller.studies.runner import Workers
from controller.studies.summary import summary_json
from controller.studies.transfer import Protocol, TransferSource, confirmed_rules, transfer
from nos_symbolic.errors import NosError

SERIAL = Workers(workers=0)
TINY = Protocol(epochs=1, lrs=(0.01,))


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NOS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for i in range(40):
        (root / f"mod{i}.py").write_text("".join(f"def f{j}(x):\n    return x + {i * j}\n\n" for j in range(8)))
    return root


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "rules.txt"
    path.write_text("# found elsewhere\nsign(m) * abs(g)\t0.91\n\nm\nm\n")  # m twice: trained once
    return path


def test_rules_file_transfer_gets_its_own_run_dir(tmp_path, rules_file, corpus):
    out = tmp_path / "own"
    protocol = Protocol(epochs=1, lrs=(0.01,), corpus=str(corpus))
    report = transfer(TransferSource(rules_file=rules_file, out_dir=out), tasks=("mnist1d-shuffled", "charlm"),
                      seeds=1, protocol=protocol, workers=SERIAL)
    assert report.run_dir == out and (out / "store.sqlite").is_file()
    with RunStore.open_readonly(out) as store:
        rows = store.trainings("transfer")
    assert len(rows) == (2 + len(BASELINES)) * 2 and {r.seed for r in rows} == {1}
    for task, summaries in report.summaries.items():
        assert len(summaries) == 2 + len(BASELINES) and sum(s.best for s in summaries) == 1
        assert {s.source for s in summaries} == {"given", "baseline"}
        row = summary_json(summaries[0])
        assert {"rule", "task", "seeds", "mean", "ci95", "metric"} <= set(row) and row["task"] == task
    lm = summary_json(report.summaries["charlm"][0])
    assert lm["metric"] == "next-character accuracy" and lm["bpc"] > 0

    again = transfer(TransferSource(rules_file=rules_file, out_dir=out), tasks=("charlm",), seeds=1,
                     protocol=protocol, workers=SERIAL)
    assert again.progress.done == 0 and again.progress.stored == 2 + len(BASELINES)

    (table,) = study_tables(out, tmp_path / "tables")
    assert "mnist1d-shuffled" in table.markdown and "**" in table.markdown and "bits per character" in table.markdown
    assert table.latex.startswith(r"\begin{tabular}") and r"\toprule" in table.latex
    assert "documentclass" not in table.latex
    assert [p.name for p in table.plots] == ["transfer-mnist1d-shuffled.png", "transfer-charlm.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in table.plots)


def test_a_changed_protocol_is_refused(tmp_path, rules_file):
    out = tmp_path / "own"
    transfer(TransferSource(rules_file=rules_file, out_dir=out), tasks=("mnist1d-mlp",), seeds=1, protocol=TINY,
             workers=SERIAL)
    with pytest.raises(NosError, match="another protocol .*epochs: 1 stored, 2 now"):
        transfer(TransferSource(rules_file=rules_file, out_dir=out), tasks=("mnist1d-mlp",), seeds=1,
                 protocol=Protocol(epochs=2, lrs=(0.01,)), workers=SERIAL)


@pytest.mark.parametrize("text, tasks, message", [
    ("m\nsign(\n", ("mnist1d-mlp",), "line 2"),
    ("# nothing\n", ("mnist1d-mlp",), "holds no rule"),
    ("m\n", ("imagenet",), "unknown task 'imagenet'"),
    ("m\n", ("mnist1d-mlp", "mnist1d-mlp"), "names a task twice"),
    ("m\n", ("cifar10",), "cifar10 task needs"),
])
def test_bad_input_writes_nothing(tmp_path, text, tasks, message):
    path = tmp_path / "rules.txt"
    path.write_text(text)
    with pytest.raises(NosError, match=message):
        transfer(TransferSource(rules_file=path, out_dir=tmp_path / "own"), tasks=tasks, protocol=TINY,
                 workers=SERIAL)
    assert not (tmp_path / "own").exists()


def test_a_run_needs_its_confirmation_first(tmp_path):
    run = make_run(tmp_path / "r", [("m", 0.9, "ok")])
    with pytest.raises(NosError, match="no confirmation"):
        transfer(TransferSource(run_dir=run), tasks=("mnist1d-mlp",), protocol=TINY, workers=SERIAL)
    with RunStore.open_readonly(run) as store:
        assert store.trainings() == []


def test_confirmed_rules_come_first_then_the_best_by_test_accuracy(tmp_path):
    run = make_run(tmp_path / "r", [("m", 0.9, "ok")])
    scores = {  # key -> (rule, source, per-seed test accuracy)
        "k1": ("m", "search", [0.80, 0.81, 0.80]),
        "k2": ("sign(m)", "search", [0.95, 0.96, 0.97]),  # confirmed better than adam
        "k3": ("g", "search", [0.90, 0.89, 0.91]),
        "k4": ("sign(g)", "search", [0.99]),  # one seed only (an interrupted confirmation): not comparable
        baseline_key("adam"): ("adam", "baseline", [0.90, 0.90, 0.91]),
    }
    with RunStore.open(run) as store:
        for key, (rule, source, accs) in scores.items():
            for seed, acc in enumerate(accs, start=1):
                store.record_training(TrainingRow("confirm", rule, key, source, "mnist1d", seed, "ok", 0.01,
                                                  acc, acc, {"chance": 0.1, "val_curve": []}, 0.1))
    assert [c.rule for c in confirmed_rules(run, top=2)] == ["sign(m)", "g"]
    assert [c.key for c in confirmed_rules(run, top=5)] == ["k2", "k3", "k1"]
    with pytest.raises(NosError, match="top must be at least 1"):
        confirmed_rules(run, top=0)


def test_no_trainings_no_tables(tmp_path):
    run = make_run(tmp_path / "r", [("m", 0.9, "ok")])
    assert study_tables(run, tmp_path / "t") == [] and not (tmp_path / "t").exists()
