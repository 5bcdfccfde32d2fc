"""`nos search` refuses every bad setting before it writes anything; rules that start with '-'."""
from __future__ import annotations


import pytest

from nos_cli import main


@pytest.mark.parametrize("args,message", [
    (["--timeout", "0"], "--timeout must be a finite number > 0, got 0.0"),
    (["--timeout", "nan"], "--timeout must be a finite number > 0, got nan"),
    (["--timeout", "-5"], "--timeout must be a finite number > 0, got -5.0"),
    (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
    (["--lrs", "0"], "--lrs: every learning rate must be a finite number > 0, got 0.0"),
    (["--lrs", "0.1", "-1"], "--lrs: every learning rate must be a finite number > 0, got -1.0"),
    (["--lrs", "inf"], "--lrs: every learning rate must be a finite number > 0, got inf"),
    (["--lrs", "nan"], "--lrs: every learning rate must be a finite number > 0, got nan"),
    (["--budget", "0"], "--budget must be an integer >= 1, got 0"),
    (["--round-size", "0"], "--round-size must be an integer >= 1, got 0"),
    (["--groups", "0"], "--groups must be an integer >= 1, got 0"),
    (["--workers", "-1"], "--workers must be an integer >= 0, got -1"),
    (["--workers", "100000"], "--workers 100000 is more than 4 per core"),
    (["--seed", "-1"], "--seed must be an integer from 0 to"),
    (["--eval-seed", "-1"], "the evaluation seed (--eval-seed) must be an integer >= 0, got -1"),
    (["--subset", "0", "--task", "cifar10", "--data-dir", "."], "--subset must be an integer >= 1, got 0"),
    (["--cpus-per-eval", "nan"], "--cpus-per-eval must be a finite number >= 0, got nan"),
    (["--top", "-1"], "--top must be an integer >= 0, got -1"),
    (["--task", "nope"], "unknown task 'nope' (--task)"),
    (["--task", "cifar10"], "the cifar10 task needs data_dir (--data-dir)"),
    (["--task", "cifar10", "--data-dir", "/no/such/folder"], "--data-dir /no/such/folder does not exist"),
    (["--gpus-per-eval", "1"], "--gpus-per-eval applies to the ray backend"),
    (["--strategy", "nope"], "unknown strategy 'nope' (--strategy); expected one of ppo, random, evolution"),
    (["--hurdle-quantile", "half"], "--hurdle-quantile must be a number from 0 to 1, auto or none, got 'half'"),
    (["--hurdle-quantile", "1.5"], "--hurdle-quantile must be a number from 0 to 1, got 1.5"),
    (["--protocol", "full", "--hurdle-quantile", "0.5"], "--hurdle-quantile applies to --protocol halving"),
    (["--protocol", "fast"], "unknown protocol 'fast' (--protocol); expected one of full, halving"),
])
def test_a_bad_setting_is_one_error_line_and_leaves_nothing(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)  # the default run directory would be runs/ here
    assert main(["search", "--run-dir", str(tmp_path / "run"), *args]) == 2
    assert main(["search", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 2, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, expected", [
    ([], ("halving", 3, 0.25)),
    (["--hurdle-quantile", "none"], ("halving", 3, None)),
    (["--hurdle-quantile", "0.5", "--epochs", "4"], ("halving", 4, 0.5)),
    (["--protocol", "full"], ("full", 5, None)),
])
def test_the_protocol_sets_the_final_run_and_the_hurdle_unless_given(args, expected):
    from nos_cli import build_parser
    from nos_cli.config import config_from_namespace
    from nos_cli.search_cmd import Config, search_config

    config = search_config(config_from_namespace(Config, build_parser().parse_args(["search", *args])))
    assert (config.eval.protocol, config.eval.epochs, config.eval.hurdle_quantile) == expected


def test_cuda_on_a_machine_without_it_leaves_nothing(tmp_path, monkeypatch, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    pytest.importorskip("ray")
    assert main(["search", "--run-dir", str(tmp_path / "run"), "--backend", "ray", "--gpus-per-eval", "1"]) == 2
    assert "CUDA is not available here" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_plug_in_strategy_name_reaches_the_strategy_loader(tmp_path, capsys):
    assert main(["search", "--run-dir", str(tmp_path / "run"), "--strategy", "no_such_module:Thing"]) == 2
    assert "no_such_module" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_resume_without_a_run_is_refused(tmp_path, capsys):
    assert main(["search", "--resume"]) == 2
    assert main(["search", "--resume", "--run-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: --resume needs --run-dir: the run to continue",
                   f"error: nothing to resume: {tmp_path / 'nope'} does not exist"]


def test_a_rule_starting_with_a_dash(capsys):
    assert main(["parse", "--", "-g"]) == 0
    assert "-g" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["parse", "-g*m"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "goes after `--`, e.g. `nos parse -- -g*m`" in err
    with pytest.raises(SystemExit):
        main(["top", "-k"])  # a real option missing its value: no talk of rules
    assert capsys.readouterr().err == "error: argument --top/-k: expected one argument (see `nos top --help`)\n"


def test_a_directory_of_other_files_is_refused_untouched(tmp_path, capsys):
    (tmp_path / "controller.pt").write_bytes(b"the user's own model")
    (tmp_path / "updates.jsonl").write_text('{"mine": 1}\n')
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main(["search", "--run-dir", str(tmp_path), "--budget", "1"]) == 2
    assert "is not empty and holds no run (controller.pt, updates.jsonl)" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_top_on_a_foreign_sqlite_file_leaves_it_byte_identical(tmp_path, capsys):
    import sqlite3

    db = sqlite3.connect(tmp_path / "store.sqlite")
    db.execute("CREATE TABLE accounts (name TEXT, balance REAL)")
    db.execute("INSERT INTO accounts VALUES ('x', 1.0)")
    db.commit()
    db.close()
    before = (tmp_path / "store.sqlite").read_bytes()
    assert main(["top", str(tmp_path)]) == 2
    assert main(["top", str(tmp_path / "store.sqlite")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") and "not a run store" in line for line in err)
    assert (tmp_path / "store.sqlite").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["store.sqlite"]


def test_sigterm_stops_a_search_as_ctrl_c_does():
    import os
    import signal

    import pytest

    from nos_cli import search_cmd

    previous = search_cmd._interrupt_on_sigterm()
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0) if hasattr(signal, "sigtimedwait") else None
    finally:
        search_cmd._restore_sigterm(previous)
    assert signal.getsignal(signal.SIGTERM) is previous
