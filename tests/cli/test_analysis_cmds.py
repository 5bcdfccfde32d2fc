import json

from controller.store import RuleRecord, RunStore, SampleRecord
from nos_cli import main
from nos_symbolic import parse_rule
from nos_symbolic.result import EvalResult


def make_run(path, strategy, rules):
    """A run directory written through the store's own API: each rule evaluated once, then drawn again."""
    path.mkdir()
    with RunStore.open(path) as store:
        for i, (text, reward) in enumerate(rules):
            rule = parse_rule(text)
            record = RuleRecord(rule.key, rule.fingerprint, rule.scale_fingerprint, text, rule.canonical_text,
                                rule.latex(), 0)
            samples = [SampleRecord(2 * i + k, strategy, (1, 2, 3), rule.key, reward, bool(k)) for k in (0, 1)]
            store.record_evaluation(record, EvalResult("ok", reward, lr=0.01, val_acc=reward), samples)
    return path


def write_rules(path):
    path.write_text("powersign\t0.91\n2^(sign(m)*sign(g))*g\t0.9\naddsign-cd\t0.92\nsign(m)\t0.85\n"
                    "sign(g)*exp(m)\t0.2\n(m / sqrt(v)) + (1e-4*w)\t0.8\n")
    return path


def test_families_json_has_families_and_rules_in_dsl(tmp_path, capsys):
    rules = write_rules(tmp_path / "rules.txt")
    assert main(["families", "--rules", str(rules), "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert set(view) >= {"families", "rules"}
    texts = [line.split("\t")[0] for line in rules.read_text().splitlines()]
    assert sorted(r["key"] for r in view["rules"]) == sorted(parse_rule(t).key for t in texts)
    by_key = {r["key"]: r for r in view["rules"]}
    assert by_key[parse_rule("(m / sqrt(v)) + (1e-4*w)").key]["rule"] == "adam + 1e-4*w"
    power, base2 = by_key[parse_rule("powersign").key], by_key[parse_rule("2^(sign(m)*sign(g))*g").key]
    assert power["family_id"] == base2["family_id"] and power["subfamily_id"] != base2["subfamily_id"]
    tops = [f for f in view["families"] if f["parent"] is None]
    assert tops and all(set(f) >= {"id", "name", "parent", "signature", "anchor", "size", "best_rule", "best_reward"}
                        for f in tops)
    assert max(f["best_reward"] for f in tops) == 0.92
    family = {r["key"]: r["family"] for r in view["rules"]}
    assert family[parse_rule("powersign").key] == "PowerSign" and family[parse_rule("addsign-cd").key] == "AddSign"
    assert family[parse_rule("sign(m)").key] == "SignMomentum"
    assert family[parse_rule("(m / sqrt(v)) + (1e-4*w)").key] == "Adam-like"


def test_families_out_writes_tree_and_table(tmp_path, capsys):
    rules = write_rules(tmp_path / "rules.txt")
    assert main(["families", "--rules", str(rules), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "F1 AddSign" in out and "signature: g times (1 +- 1)" in out
    for name in ("family_tree.png", "family_tree.graphml", "family_tree.txt", "families.tex", "families.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("g\nfoo(g)\n")
    assert main(["families", "--rules", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "line 2" in err and err.count("\n") == 1
    assert main(["families", str(tmp_path / "nowhere")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere")]) == 2


def test_report_of_two_runs_writes_markdown_and_html(tmp_path, capsys):
    a = make_run(tmp_path / "a", "ppo", [("powersign", 0.8), ("adam", 0.7), ("g", 0.6)])
    b = make_run(tmp_path / "b", "random", [("sign(m)", 0.75), ("rmsprop", 0.65)])
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "rep" / "report.md"), str(tmp_path / "rep" / "report.html")]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Runs compared" in md and "| a | ppo | 6 | 3 | 0.8000 | `powersign` |" in md
    assert "| b | random | 4 | 2 | 0.7500 | `sign(m)` |" in md


def test_an_output_path_under_a_file_is_one_error_naming_it(tmp_path, capsys):
    rules = tmp_path / "rules.txt"
    rules.write_text("sign(g)\ng\n")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["families", "--rules", str(rules), "--out", str(blocker / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and str(blocker / "x") in err


def test_huge_rewards_print_compact_in_families_and_report(tmp_path, capsys):
    run = make_run(tmp_path / "run", "random", [("sign(g)*g", 1e300), ("g", 0.5), ("sign(m)", -1e299)])
    assert main(["families", str(run)]) == 0
    out = capsys.readouterr().out
    assert "1e+300" in out and "-1e+299" in out and "0.5000" in out
    assert max(map(len, out.splitlines())) < 300
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    capsys.readouterr()
    md = (tmp_path / "report" / "report.md").read_text()
    assert "1e+300" in md and "0" * 50 not in md
