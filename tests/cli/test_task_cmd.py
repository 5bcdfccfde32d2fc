"""A task of the user's own (`--task module:function`): the README's example module evaluated,
searched with 2 workers, resumed, confirmed and transferred from the command line and from Python;
every bad module or task is one `error:` line, exit 2, with nothing written."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from nos_cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_module() -> str:
    """The README's `my_tasks.py` (the python block that starts with that name)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return next(b for b in blocks if b.startswith("# my_tasks.py"))


@pytest.fixture()
def user_dir(tmp_path, monkeypatch):
    """A folder holding the README's my_tasks.py, as the current directory."""
    (tmp_path / "my_tasks.py").write_text(readme_module(), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "my_tasks", raising=False)  # another test's my_tasks.py ...
    monkeypatch.setattr(sys, "path", list(sys.path))  # ... and the folder it was found in
    return tmp_path


def _json(capsys) -> list[dict]:
    return json.loads(capsys.readouterr().out)


def test_readme_example_from_the_command_line(user_dir, capsys):
    assert main(["eval", "adam", "sgd", "--task", "my_tasks:blobs", "--task-option", "n=300", "--json"]) == 0
    rows = _json(capsys)
    assert {r["metric"] for r in rows} == {"accuracy"} and all(r["status"] == "ok" for r in rows)
    assert max(r["val_acc"] for r in rows) > 0.6  # three separable blobs, far above chance 1/3

    assert main(["eval", "adam", "--task", "my_tasks:sine", "--task-option", "n=300"]) == 0
    table = capsys.readouterr().out
    assert "score: negative MSE" in table and "val negative MSE" in table

    run = user_dir / "runs" / "sine"
    common = ["--budget", "4", "--round-size", "4", "--strategy", "random", "--lengths"]
    assert main(["search", "--task", "my_tasks:sine", "--task-option", "n=300", "--workers", "2",
                 "--run-dir", str(run), *common]) == 0
    config = json.loads((run / "config.json").read_text())["eval"]
    assert config["task"] == "my_tasks:sine" and config["task_options"] == {"n": 300}
    assert config["task_path"] == str(user_dir.resolve())
    elsewhere = user_dir / "elsewhere"  # resume from another folder: the recorded task_path finds the module
    elsewhere.mkdir()
    os.chdir(elsewhere)
    sys.path[:] = [p for p in sys.path if p != str(user_dir)]
    del sys.modules["my_tasks"]
    assert main(["search", "--run-dir", str(run), "--resume", "--budget", "8", "--workers", "2"]) == 0
    capsys.readouterr()
    assert main(["top", str(run), "--json"]) == 0
    top = _json(capsys)
    assert len(top) >= 2 and {r["metric"] for r in top} == {"negative MSE"}
    assert all(r["val_acc"] < 0 <= r["reward"] for r in top)  # the metric is negative, the reward not

    assert main(["confirm", str(run), "--top", "1", "--seeds", "2", "--workers", "2", "--epochs", "2",
                 "--json"]) == 0
    rows = _json(capsys)
    assert any(r["source"] == "search" for r in rows) and {r["metric"] for r in rows} == {"negative MSE"}
    assert main(["transfer", str(run), "--tasks", "my_tasks:blobs", "--task-option", "n=300", "--top", "1",
                 "--seeds", "2", "--workers", "2", "--epochs", "2", "--json"]) == 0
    rows = _json(capsys)
    assert {r["task"] for r in rows} == {"my_tasks:blobs"} and {r["metric"] for r in rows} == {"accuracy"}


def test_readme_example_from_python(user_dir):
    from controller import api

    rows = api.evaluate(["adam"], task="my_tasks:sine", task_options={"n": 300})
    assert rows[0]["metric"] == "negative MSE" and rows[0]["status"] == "ok"
    run = api.search(task="my_tasks:blobs", task_options={"n": 300}, budget=4, workers=2, round_size=4,
                     strategy="random", lengths=(), run_dir=user_dir / "runs" / "blobs")
    assert api.resume(run, budget=8) == run
    best = api.leaderboard(run, k=3)
    assert best and best[0]["metric"] == "accuracy" and best[0]["reward"] == best[0]["val_acc"]
    report = api.confirm(run, top=1, seeds=2, workers=2, epochs=2)
    ((task, summaries),) = report.summaries.items()
    assert task == "my_tasks:blobs" and any(s.source == "search" for s in summaries)


BAD_TASKS = {
    "no_such_module:blobs": "no module 'no_such_module'",
    "my_tasks:missing": "has no function 'missing'",
    "my_tasks:not_a_task": "returned a dict, not a nos_symbolic.Task",
    "my_tasks:sizes": "has 10 inputs but 9 targets",
    "my_tasks:float_labels": "the loss cannot take",
    "my_tasks:narrow_model": "the network fails on a batch of 2 training inputs",
    "my_tasks:wrong_outputs": "the loss cannot take the network's outputs (shape (2, 3)",
    "my_tasks": "unknown task 'my_tasks'",
    "my_tasks:": "is not module:function",
}
BAD_MODULE = '''
import torch
from torch import nn
from nos_symbolic import Task

x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))

def not_a_task():
    return {"train": (x, y)}

def sizes():
    return Task("sizes", (x, y[:9]), (x, y), (x, y), lambda seed: nn.Linear(4, 3))

def float_labels():
    return Task("float", (x, y.float()), (x, y.float()), (x, y.float()), lambda seed: nn.Linear(4, 3))

def narrow_model():
    return Task("narrow", (x, y), (x, y), (x, y), lambda seed: nn.Linear(5, 3))

def wrong_outputs():
    t = torch.randn(10, 1)
    return Task("wrong", (x, t), (x, t), (x, t), lambda seed: nn.Linear(4, 3), loss=torch.nn.functional.mse_loss)
'''


@pytest.mark.parametrize("spec", sorted(BAD_TASKS))
@pytest.mark.parametrize("command", ["eval", "search"])
def test_a_bad_task_is_one_error_line_and_writes_nothing(user_dir, capsys, spec, command):
    (user_dir / "my_tasks.py").write_text(BAD_MODULE, encoding="utf-8")
    run = user_dir / "runs" / "bad"
    argv = (["eval", "adam", "--task", spec] if command == "eval"
            else ["search", "--task", spec, "--budget", "1", "--workers", "1", "--run-dir", str(run)])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert BAD_TASKS[spec] in err, err
    assert not (user_dir / "runs").exists()


def test_a_bad_task_option_is_named(user_dir, capsys):
    assert main(["eval", "adam", "--task", "my_tasks:blobs", "--task-option", "size=3"]) == 2
    assert "cannot take the option(s) size" in capsys.readouterr().err
    assert main(["eval", "adam", "--task", "my_tasks:blobs", "--task-option", "n"]) == 2
    assert "is not key=value" in capsys.readouterr().err
