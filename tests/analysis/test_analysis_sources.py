"""Loading rules files and run stores into plain rows."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from analysis.sources import RuleRow, load_rules_file, load_run
from nos_symbolic import NosError, parse_rule


def test_rules_file_skips_comments_and_blanks(rules_file: Path, rule_rewards) -> None:
    rows = load_rules_file(rules_file)
    assert [(r.text, r.reward) for r in rows] == rule_rewards
    assert rows[0].key == parse_rule("powersign").key
    assert rows[0].canonical == parse_rule("powersign").canonical_text and rows[0].latex


def test_rules_file_reward_is_optional(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_text("  # comment\ng\n\nadam\t0.7\n")
    assert [(r.text, r.reward) for r in load_rules_file(path)] == [("g", None), ("adam", 0.7)]


@pytest.mark.parametrize("lines,number", [
    (["g", "# fine", "g +", "adam"], 3),
    (["", "exp(g"], 2),
    (["g\t0.5", "m\tnot-a-number"], 2),
    (["g\tnan"], 1),
    (["unknown_op(g)"], 1),
])
def test_bad_rules_file_line_names_its_number(tmp_path: Path, lines: list[str], number: int) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(NosError, match=rf"line {number}:") as info:
        load_rules_file(path)
    assert "\n" not in str(info.value)


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(NosError, match="not found"):
        load_rules_file(tmp_path / "nope.txt")


def test_load_run(run_dir: Path, rule_rewards) -> None:
    run = load_run(run_dir)
    assert [(r.text, r.reward) for r in run.rules] == rule_rewards
    first = run.rules[0]
    assert first.status == "ok" and first.lr == 1e-3 and first.test_acc == pytest.approx(0.75)
    assert [s.idx for s in run.samples] == list(range(len(run.samples)))
    assert {s.strategy for s in run.samples} == {"random", "ppo"}
    assert run.samples[0].tokens == (1, 2, 3, 4, 5) and run.samples[-1].rule_key is None
    assert load_run(run_dir / "store.sqlite").rules == run.rules  # the file itself also works


def test_load_run_errors(tmp_path: Path) -> None:
    with pytest.raises(NosError, match="not found"):
        load_run(tmp_path / "missing")
    with pytest.raises(NosError, match="no run store"):
        load_run(tmp_path)
    (tmp_path / "store.sqlite").write_text("not a database")
    with pytest.raises(NosError, match="not a run store"):
        load_run(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    sqlite3.connect(other / "store.sqlite").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(NosError, match="not a run store"):
        load_run(other)


def test_load_run_reads_the_real_run_store(tmp_path: Path) -> None:
    from controller.store import RuleRecord, RunStore, SampleRecord
    from nos_symbolic.result import EvalResult

    rule = parse_rule("powersign-cd")
    with RunStore.open(tmp_path) as store:
        record = RuleRecord(rule.key, rule.fingerprint, rule.scale_fingerprint, "powersign-cd",
                            rule.canonical_text, rule.latex(), seed=0)
        result = EvalResult("ok", reward=0.77, lr=0.1, val_acc=0.77, test_acc=0.76, seconds=2.0)
        store.record_evaluation(record, result, [SampleRecord(0, "ppo", (1, 2), rule.key, 0.77, False)])
        store.record_samples([SampleRecord(1, "ppo", (1, 2), rule.key, 0.77, True)])
    run = load_run(tmp_path)
    assert run.rules == (RuleRow(rule.key, "powersign-cd", rule.canonical_text, rule.latex(), "ok", 0.77, 0.1,
                                 0.77, 0.76, 2.0),)
    assert [(s.idx, s.cache_hit) for s in run.samples] == [(0, False), (1, True)]


def test_rules_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "rules.txt"
    path.write_bytes(b"\xef\xbb\xbfsign(g)\t0.5\ng\n")
    assert [(r.text, r.reward) for r in load_rules_file(path)] == [("sign(g)", 0.5), ("g", None)]


def test_a_non_finite_rule_prints_as_written() -> None:
    from nos_symbolic.dsl import to_dsl

    assert to_dsl(parse_rule("1e300^15")) == "1e300^15"
    assert to_dsl(parse_rule("g * 1e300^15")) == "g * 1e300^15"
