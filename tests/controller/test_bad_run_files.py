"""Malformed or foreign run files and unusable run directories: each is one `error:` line naming the
file and the way out, nothing stored changes, and a refused start leaves nothing behind.

Evaluations are faked (_jobs.fake_evaluate) so the tests exercise the checks, not training."""
from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import _jobs
from controller import lock
from controller.lock import LOCK_FILE
from controller.search import CHECKPOINT_FILE, CONFIG_FILE, Search, SearchConfig
from controller.store import SCHEMA_VERSION, RunStore, StoreError
from nos_cli import main

SEARCH = ["search", "--strategy", "random", "--workers", "0", "--seed", "3", "--round-size", "2"]


@pytest.fixture(autouse=True)
def fake_evaluation(monkeypatch, tmp_path):
    import nos_symbolic.evaluate as evaluate

    monkeypatch.setattr(evaluate, "evaluate_job", _jobs.fake_evaluate)
    monkeypatch.setattr(evaluate, "warm_worker", _jobs.no_warm_up)
    monkeypatch.setenv("NOS_CACHE_DIR", str(tmp_path / "cache"))


def make_run(run_dir: Path, budget: int = 4) -> None:
    search = Search(SearchConfig(strategy="random", budget=budget, workers=0, seed=3, round_size=2), run_dir)
    try:
        search.run()
    finally:
        search.close()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- config.json ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, kind", [("[]", "a list"), ("null", "null"), ('"text"', "a string"), ("3", "a number")])
def test_a_config_that_is_no_json_object_is_refused_on_resume_and_confirm(tmp_path, capsys, text, kind):
    make_run(tmp_path / "run")
    (tmp_path / "run" / CONFIG_FILE).write_text(text)
    before = snapshot(tmp_path / "run")
    assert main([*SEARCH, "--run-dir", str(tmp_path / "run"), "--resume"]) == 2
    err = one_error(capsys)
    assert f"{tmp_path / 'run' / CONFIG_FILE} is not a run config: it holds {kind}" in err and "mv " in err
    assert main(["confirm", str(tmp_path / "run"), "--top", "1", "--seeds", "1"]) == 2
    assert f"it holds {kind}" in one_error(capsys)
    assert snapshot(tmp_path / "run") == before


def test_moving_a_bad_config_away_resumes_from_the_store_copy(tmp_path, capsys):
    make_run(tmp_path / "run", budget=4)
    config = tmp_path / "run" / CONFIG_FILE
    config.write_text("null")
    config.rename(config.with_name("config.json.bad"))
    assert main([*SEARCH, "--run-dir", str(tmp_path / "run"), "--resume", "--budget", "6"]) == 0
    assert json.loads(config.read_text())["budget"] == 6


# -- store.sqlite ----------------------------------------------------------------------------------------


def _store_with_other_tables(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    db.execute("CREATE TABLE rules (a INTEGER)")
    db.execute("INSERT INTO rules VALUES (1)")
    db.commit()
    db.close()


@pytest.mark.parametrize("damage", ["no rules table", "rules of other columns"])
def test_a_store_whose_tables_are_something_else_is_a_store_error(tmp_path, capsys, damage):
    tmp_path.joinpath("run").mkdir()
    store = tmp_path / "run" / "store.sqlite"
    _store_with_other_tables(store)
    if damage == "no rules table":
        db = sqlite3.connect(store)
        db.execute("DROP TABLE rules")
        db.commit()
        db.close()
    before = store.read_bytes()
    assert main(["top", str(tmp_path / "run")]) == 2
    err = one_error(capsys)
    assert f"cannot read run store {store}" in err and "restore it from a backup" in err
    with RunStore.open_readonly(store) as opened, pytest.raises(StoreError, match="cannot read run store"):
        list(opened.rules())
    assert store.read_bytes() == before


def test_a_garbled_progress_entry_is_a_store_error(tmp_path):
    make_run(tmp_path / "run", budget=2)
    db = sqlite3.connect(tmp_path / "run" / "store.sqlite")
    db.execute("UPDATE meta SET value = '[1, 2]' WHERE key = 'progress'")
    db.commit()
    db.close()
    with RunStore.open_readonly(tmp_path / "run") as store, pytest.raises(StoreError, match="store.sqlite"):
        store.progress


# -- controller.pt ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["garbage", {"what": "not a state"}, None])
def test_a_checkpoint_with_a_garbage_strategy_says_to_move_it_away(tmp_path, capsys, strategy):
    make_run(tmp_path / "run", budget=4)
    path = tmp_path / "run" / CHECKPOINT_FILE
    torch.save({**torch.load(path, weights_only=False), "strategy": strategy}, path)
    before = snapshot(tmp_path / "run")
    assert main([*SEARCH, "--run-dir", str(tmp_path / "run"), "--resume"]) == 2
    err = one_error(capsys)
    assert str(path) in err and "move it away" in err and "rebuild the controller from the store" in err
    assert snapshot(tmp_path / "run") == before
    path.rename(path.with_name("controller.pt.bad"))  # the way out the message gives
    assert main([*SEARCH, "--run-dir", str(tmp_path / "run"), "--resume", "--budget", "6"]) == 0


# -- a directory that is not a nos run -----------------------------------------------------------------


def test_a_foreign_sqlite_store_is_named_and_gets_no_lock_file(tmp_path, capsys):
    db = sqlite3.connect(tmp_path / "store.sqlite")
    db.execute("CREATE TABLE photos (name TEXT)")
    db.execute("INSERT INTO photos VALUES ('cat.jpg')")
    db.commit()
    db.close()
    before = snapshot(tmp_path)
    assert main([*SEARCH, "--budget", "2", "--run-dir", str(tmp_path)]) == 2
    err = one_error(capsys)
    assert "is not a nos run" in err and "store.sqlite, which is no run store" in err and "--resume" not in err
    assert snapshot(tmp_path) == before and not (tmp_path / LOCK_FILE).exists()


@pytest.mark.parametrize("text", ['{"model": "resnet", "lr": 0.1}', "[]", "not json"])
def test_a_users_config_json_is_named_and_gets_no_lock_file(tmp_path, capsys, text):
    (tmp_path / CONFIG_FILE).write_text(text)
    assert main([*SEARCH, "--budget", "2", "--run-dir", str(tmp_path)]) == 2
    err = one_error(capsys)
    assert "is not a nos run" in err and "config.json that is not a nos run's config" in err
    assert [p.name for p in tmp_path.iterdir()] == [CONFIG_FILE]


def test_a_run_without_resume_is_still_told_to_resume_and_gets_no_lock_file(tmp_path, capsys):
    make_run(tmp_path / "run", budget=2)
    (tmp_path / "run" / LOCK_FILE).unlink()
    before = snapshot(tmp_path / "run")
    assert main([*SEARCH, "--budget", "2", "--run-dir", str(tmp_path / "run")]) == 2
    # The search names the settings (run_dir, resume); the command line writes them as its flags.
    assert "already holds a run; set --resume to continue it, or choose another --run-dir" in one_error(capsys)
    assert snapshot(tmp_path / "run") == before


# -- directories nos cannot write ------------------------------------------------------------------------


def _read_only_lock_files(monkeypatch) -> None:
    """Stand for a read-only run directory (the tests may run as root, whom chmod does not stop)."""
    real_open = os.open

    def refuse(path, flags, *args):
        if Path(path).name == LOCK_FILE and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(lock.os, "open", refuse)


def test_resuming_a_read_only_run_directory_says_so(tmp_path, capsys, monkeypatch):
    make_run(tmp_path / "run", budget=2)
    before = snapshot(tmp_path / "run")
    _read_only_lock_files(monkeypatch)
    assert main([*SEARCH, "--run-dir", str(tmp_path / "run"), "--resume", "--budget", "4"]) == 2
    err = one_error(capsys)
    assert f"{tmp_path / 'run'} is read-only" in err and "copy the run" in err
    assert snapshot(tmp_path / "run") == before


def test_reading_a_run_needs_no_lock_file(tmp_path, capsys, monkeypatch):
    make_run(tmp_path / "run", budget=2)
    (tmp_path / "run" / LOCK_FILE).unlink()
    _read_only_lock_files(monkeypatch)
    assert lock.holder(tmp_path / "run") is None
    assert main(["top", str(tmp_path / "run"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_a_runs_folder_that_cannot_be_made_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("runs").write_text("a file where runs/ would go")
    assert main([*SEARCH, "--budget", "2"]) == 2
    err = one_error(capsys)
    assert "cannot create run directory runs" in err and "set --run-dir to a writable place" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


# -- data found broken while a search starts ---------------------------------------------------------------


def _image_tree(root: Path) -> Path:
    for split in ("train", "test"):
        for label, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((32, 32, 3), 40 * label + i, np.uint8)).save(folder / f"{i}.png")
    return root


def test_a_broken_image_at_the_start_is_one_error_and_leaves_no_run_directory(tmp_path, capsys):
    data = _image_tree(tmp_path / "data")
    broken = data / "train" / "dog" / "1.png"
    good = broken.read_bytes()
    broken.write_bytes(good[:30])
    args = [*SEARCH, "--budget", "2", "--task", "cifar10", "--data-dir", str(data), "--epochs", "1"]
    for run_dir in (tmp_path / "new", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        assert main([*args, "--run-dir", str(run_dir)]) == 2
        err = one_error(capsys)
        assert f"unreadable image {broken}" in err
    assert not (tmp_path / "new").exists() and list((tmp_path / "empty").iterdir()) == []
    broken.write_bytes(good)  # the corrected command then works
    assert main([*args, "--run-dir", str(tmp_path / "new")]) == 0
    assert (tmp_path / "new" / "store.sqlite").is_file()


# -- throughput after a resume -------------------------------------------------------------------------------


def test_the_throughput_after_a_resume_counts_only_this_invocations_trainings(tmp_path, capsys):
    make_run(tmp_path / "run", budget=4)
    with RunStore.open_readonly(tmp_path / "run") as store:
        stored = store.n_evaluations() + sum(map(len, store.lengths().values()))  # promotions included
    search = Search(SearchConfig(strategy="random", budget=14, workers=0, seed=3, round_size=2), tmp_path / "run",
                    resume=True)
    try:
        progress = search.run()
    finally:
        search.close()
    assert progress.evaluations_at_start == stored
    assert progress.new_evaluations == progress.evaluations - stored and 0 < progress.new_evaluations < progress.evaluations

    from nos_cli.search_cmd import _throughput

    progress.wall_seconds = 60.0
    text = _throughput(progress)
    assert text.startswith(f"{progress.new_evaluations} trained in 60 s ({stored} were already stored): "
                           f"{progress.new_evaluations:.1f} trainings/min"), text
