import json

import pytest

from nos_cli import main


def test_eval_json_scores_rules_and_baselines_with_the_same_protocol(capsys):
    args = ["eval", "--lrs", "0.01", "0.1", "--epochs", "1", "--grid-epochs", "0.25", "--json",
            "--", "sgd", "powersign", "-g"]
    assert main(args) == 0
    rows = {r["rule"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"sgd", "powersign", "-g"}
    for row in rows.values():
        assert set(row) >= {"rule", "key", "status", "lr", "val_acc", "test_acc", "seconds"}
    assert rows["sgd"]["status"] == "ok" and rows["sgd"]["key"] is None
    assert rows["powersign"]["status"] == "ok" and rows["powersign"]["lr"] in (0.01, 0.1)
    assert 0.1 < rows["powersign"]["val_acc"] <= 1.0
    assert rows["-g"]["status"] == "rejected" and rows["-g"]["val_acc"] is None


def test_eval_table_with_seeds(capsys):
    assert main(["eval", "adam", "--lrs", "0.01", "--epochs", "1", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "adam" in out and "±" in out and "2 seed(s)" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "g +"], "column"),
        (["eval", "--task", "cifar10", "g"], "data_dir"),
        (["eval", "--task", "cifar10", "--data-dir", "/nonexistent", "g"], "cifar-10-batches-py"),
        (["eval", "--data-dir", "/tmp", "g"], "cifar10"),
    ],
)
def test_eval_bad_input_is_exit_2(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_eval_of_hostile_rules_never_raises(capsys):
    args = ["eval", "--lrs", "0.1", "--epochs", "1", "--grid-epochs", "0.25", "--json", "--",
            "clip(g, 1e19)", "rd(1e30)", "1e300^15", "((1e300^64)^64)^64", "(1e300^64+1)^(1/7)", "g" + "^0.5" * 30]
    assert main(args) == 0
    rows = {r["rule"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["clip(g, 1e19)"]["status"] == "ok"  # the same update as sgd
    assert all(r["status"] == "rejected" for name, r in rows.items() if name != "clip(g, 1e19)")


@pytest.mark.parametrize("rule, message", [("cd(1e300^2)", "finite number"),
                                           ("g/(" * 150 + "g" + ")" * 150, "nested too deeply")])
def test_eval_of_a_hostile_rule_that_cannot_parse_is_exit_2(capsys, rule, message):
    assert main(["eval", "--", rule]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_eval_names_the_rule_that_does_not_parse(capsys):
    assert main(["eval", "sgd", "sign(m)", "adam", "g g"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: rule 'g g': two operands with no operator between them at column 3"
