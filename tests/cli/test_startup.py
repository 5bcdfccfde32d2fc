"""`nos --help` lists the commands without importing torch or any command module."""
import subprocess
import sys

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
