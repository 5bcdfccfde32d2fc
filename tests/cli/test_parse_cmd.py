import json
import subprocess
import sys

import pytest

from nos_cli import main
from nos_symbolic import parse_rule


def test_parse_json_has_the_contract_fields(capsys):
    assert main(["parse", "--json", "exp(sign(g)*sign(m)) * g"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"input", "rule", "canonical", "latex", "key", "fingerprint", "scale_fingerprint", "operands",
                        "flags"}
    assert out["input"] == "exp(sign(g)*sign(m)) * g" and out["rule"] == "powersign"
    assert out["operands"] == ["g", "m"] and out["flags"] == []


@pytest.mark.parametrize("text", ["(m / sqrt(v)) + (1e-4*w)", "g*exp(sign(g*m))", "2^(sign(g)*sign(m))*g"])
def test_parse_json_rule_is_dsl_text_with_the_same_key(capsys, text):
    assert main(["parse", "--json", text]) == 0
    out = json.loads(capsys.readouterr().out)
    assert parse_rule(out["rule"]).key == out["key"] and "delta" not in out["rule"]


def test_parse_text_output(capsys):
    assert main(["parse", "powersign-cd"]) == 0
    out = capsys.readouterr().out
    assert "canonical" in out and "scheduled" in out


@pytest.mark.parametrize("rule, message", [("g +", "column 3"), ("foo(g)", "unknown name"), ("", "empty rule")])
def test_bad_rule_is_one_line_error_and_exit_2(capsys, rule, message):
    assert main(["parse", rule]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_console_script_never_prints_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "nos_cli", "parse", "g\x01 + ("], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_usage_mistake_is_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["parse"])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")


HOSTILE = ["clip(g, 1e19)", "rd(1e30)", "cd(1e300^2)", "1e300^15", "g/(" * 150 + "g" + ")" * 150,
           "((1e300^64)^64)^64", "(1e300^64+1)^(1/7)", "g" + "^0.5" * 30, "g" + "^m" * 80]


@pytest.mark.parametrize("rule", HOSTILE, ids=lambda r: r[:24])
def test_hostile_rules_print_a_result_or_one_error_line(capsys, rule):
    code = main(["parse", "--json", rule])
    out, err = capsys.readouterr()
    if code == 0:
        assert json.loads(out)["key"] and not err
    else:
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize("rule, message", [
    ("g,", "error: unexpected ',' .a comma only separates a function's arguments. at column 2"),
    ("clip(g, 1/0)", "c must be a finite number, got a division by zero"),
    ("1e-999*g", "'1e-999' is too small: a nonzero literal below 1e-300 is refused rather than rounded to 0"),
    ("1e-301*g", "'1e-301' is too small: a nonzero literal below 1e-300 is refused rather than rounded to 0"),
    ("drop(g, 1-1e-300)", r"got p = 1 at column 1$"),
], ids=["stray-comma", "division-by-zero", "underflow", "tiny", "compact-number"])
def test_bad_numbers_and_commas_are_named(capsys, rule, message):
    assert main(["parse", rule]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 300
    assert __import__("re").search(message, err), err
