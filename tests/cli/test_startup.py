"""`nos --help` lists the commands without importing torch or any command module; `nos parse` runs
without torch."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = ("import sys\nfrom nos_cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
         "print('torch' in sys.modules, sorted(m for m in sys.modules if m.endswith('_cmd')))")


def test_help_imports_neither_torch_nor_the_commands():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert "search" in out and "families" in out  # the command list is there
    assert out.strip().splitlines()[-1] == "False []"


def test_a_command_imports_only_its_own_module():
    probe = PROBE.replace("['--help']", "['parse', 'g', '--json']")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1].endswith("['nos_cli.parse_cmd']")


@pytest.mark.parametrize("argv", [["parse", "g"], ["parse", "--json", "drop(g, 0.5) * cd + noise / (m + 1e300^2)"]])
def test_parse_imports_no_torch_module(argv):
    """Parsing, the constant folding and the fingerprints all run on numpy: `nos parse` never loads torch."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nos_cli", *argv], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fingerprint" in done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "numpy" in imported  # the report is there
    assert [m for m in imported if m == "torch" or m.startswith("torch.")] == []


def test_an_unknown_option_is_named_with_its_command(capsys):
    import pytest

    from nos_cli import main

    for argv in (["eval", "adam", "--epochs", "3", "--workers", "2"], ["eval", "adam", "--workers=2"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert capsys.readouterr().err == "error: unknown option --workers (see `nos eval --help`)\n"
