import json

from nos_cli import main


def write_rules(path):
    path.write_text("powersign\t0.91\n2^(sign(m)*sign(g))*g\t0.9\naddsign-cd\t0.92\nsign(m)\t0.85\n"
                    "sign(g)*exp(m)\t0.2\n")
    return path


def test_families_json_puts_every_rule_in_exactly_one_family(tmp_path, capsys):
    rules = write_rules(tmp_path / "rules.txt")
    assert main(["families", "--rules", str(rules), "--json"]) == 0
    families = json.loads(capsys.readouterr().out)
    members = [m["rule"] for f in families for m in f["members"]]
    assert sorted(members) == sorted(line.split("\t")[0] for line in rules.read_text().splitlines())
    by_rule = {m["rule"]: f["name"] for f in families for m in f["members"]}
    assert by_rule["powersign"] == by_rule["2^(sign(m)*sign(g))*g"] == "PowerSign"
    assert by_rule["addsign-cd"].startswith("AddSign")
    assert not by_rule["sign(g)*exp(m)"].startswith(("PowerSign", "AddSign"))
    for f in families:
        assert set(f) >= {"name", "best", "members"}


def test_families_out_writes_tree_and_table(tmp_path, capsys):
    rules = write_rules(tmp_path / "rules.txt")
    assert main(["families", "--rules", str(rules), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "PowerSign" in out
    for name in ("family_tree.png", "family_tree.dot", "family_tree.txt", "families.tex"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_bad_rules_file_line_is_exit_2_with_line_number(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("g\nfoo(g)\n")
    assert main(["families", "--rules", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "line 2" in err
