"""Run directories: made by nos, never among a user's files, with names that never collide; one
writer at a time."""
from __future__ import annotations

import subprocess
import sys

import pytest

from controller.lock import RunLockedError, holder, run_lock
from controller.rundir import RunDirError, create_run_dir, default_run_dir, discard_run_dir, is_run_dir
from nos_symbolic.errors import SettingError


def test_default_names_never_collide(tmp_path):
    made = [default_run_dir("ppo", root=tmp_path / "runs") for _ in range(20)]
    assert len(set(made)) == 20 and all(p.is_dir() and not any(p.iterdir()) for p in made)
    assert all(p.name.startswith("ppo-") and p.parent == tmp_path / "runs" for p in made)


def test_a_default_directory_that_cannot_be_made_names_the_setting_not_a_flag(tmp_path):
    (tmp_path / "runs").write_text("a file where runs/ would go")
    with pytest.raises(RunDirError, match="cannot create run directory") as info:
        default_run_dir("ppo", root=tmp_path / "runs")
    assert isinstance(info.value, SettingError) and info.value.settings == ("run_dir",)
    assert "--" not in str(info.value) and "set run_dir to a writable place" in str(info.value)


def test_create_accepts_new_empty_and_run_directories(tmp_path):
    assert create_run_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
    assert create_run_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"  # empty: fine
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    assert is_run_dir(tmp_path / "run") and create_run_dir(tmp_path / "run") == tmp_path / "run"


def test_create_refuses_a_directory_of_other_files_and_touches_nothing(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    (tmp_path / "controller.pt").write_bytes(b"my own model")
    with pytest.raises(RunDirError, match=r"is not empty and holds no run \(controller.pt, mine.txt\)"):
        create_run_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["controller.pt", "mine.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is not a directory"):
        create_run_dir(tmp_path / "file")


def test_discard_removes_only_what_a_failed_start_left(tmp_path):
    create_run_dir(tmp_path / "x")
    with run_lock(tmp_path / "x", "nos search"):  # a start that failed after taking the lock
        discard_run_dir(tmp_path / "x")
    assert not (tmp_path / "x").exists()
    create_run_dir(tmp_path / "y")
    (tmp_path / "y" / "user.txt").write_text("x")
    discard_run_dir(tmp_path / "y")
    assert (tmp_path / "y" / "user.txt").exists()


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path):
    code = ("import sys, time; from controller.lock import run_lock\n"
            "with run_lock(sys.argv[1], 'nos search'):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"held\n"
        assert holder(tmp_path) == f"process {proc.pid} (nos search)"
        with pytest.raises(RunLockedError, match=f"in use by process {proc.pid} \\(nos search\\)"):
            with run_lock(tmp_path, "nos search"):
                pass
    finally:
        proc.kill()  # kill -9: the kernel releases the lock
        proc.wait()
        proc.stdout.close()
    assert holder(tmp_path) is None
    with run_lock(tmp_path, "nos top"):
        assert holder(tmp_path) is not None
