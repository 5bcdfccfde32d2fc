"""`nos confirm` and `nos transfer` on the command line: JSON rows, tables, files, exit status 2."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nos_cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "controller"))
from _studies import make_run  # noqa: E402

CONFIRM_KEYS = {"rule", "key", "source", "seeds", "test_acc_mean", "test_acc_ci95", "delta_vs_best_baseline",
                "p_ttest", "p_wilcoxon", "verdict", "steps_to_target", "epochs", "search_epochs",
                "search_test_acc_mean", "search_verdict", "flipped"}


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NOS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def test_confirm_json_rows(tmp_path, capsys):
    run = make_run(tmp_path / "r", [("m", 0.9, "ok")])
    assert main(["confirm", str(run), "--top", "1", "--seeds", "2", "--workers", "0", "--epochs", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 10 and all(CONFIRM_KEYS <= set(r) for r in rows)
    assert "adam-cosine" in {r["rule"] for r in rows} and {r["epochs"] for r in rows} == {2}
    (rule,) = [r for r in rows if r["source"] == "search"]
    assert rule["rule"] == "m" and rule["seeds"] == [1, 2] and len(rule["test_acc_ci95"]) == 2
    assert rule["verdict"] in ("better", "same", "worse")

    assert main(["confirm", str(run), "--top", "1", "--seeds", "2", "--workers", "0", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "paired against the best baseline" in out and "rules beat the best baseline" in out


@pytest.mark.parametrize("argv, message", [
    (["--top", "0"], "error: --top must be at least 1"),
    (["--seeds", "0"], "error: --seeds must be at least 1"),
])
def test_confirm_bad_numbers(tmp_path, capsys, argv, message):
    run = make_run(tmp_path / "r", [("m", 0.9, "ok")])
    assert main(["confirm", str(run), *argv]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_confirm_needs_a_run(tmp_path, capsys):
    assert main(["confirm", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_transfer_writes_tables_and_plots(tmp_path, capsys):
    rules = tmp_path / "rules.txt"
    rules.write_text("m\n")
    own = tmp_path / "own"
    assert main(["transfer", "--rules", str(rules), "--run-dir", str(own), "--tasks", "mnist1d-mlp", "--seeds", "1",
                 "--epochs", "1", "--lrs", "0.01", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "| `m` |" in out and f"run directory: {own}" in out
    files = {p.name for p in (own / "transfer").iterdir()}
    assert files == {"transfer.md", "transfer.tex", "transfer-mnist1d-mlp.png"}
    assert (own / "transfer" / "transfer.tex").read_text().startswith(r"\begin{tabular}")


def test_transfer_bad_rules_file(tmp_path, capsys):
    rules = tmp_path / "rules.txt"
    rules.write_text("m\n)(\n")
    assert main(["transfer", "--rules", str(rules), "--run-dir", str(tmp_path / "own")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "line 2" in err and err.count("\n") == 1
    assert not (tmp_path / "own").exists()
