"""The `nos` command. The only module that knows every package: it imports each command lazily, so
`nos parse` does not pay for the search or the analysis."""
from __future__ import annotations

import argparse
import importlib
import re
import sys
from typing import Sequence

from nos_cli.config import add_config_arguments, config_from_namespace, flag_namer

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "parse": ("nos_cli.parse_cmd", "parse a rule: canonical form, LaTeX, key, fingerprints, flags"),
    "eval": ("nos_cli.eval_cmd", "score rules and torch's baselines on a child task"),
    "search": ("nos_cli.search_cmd", "search for update rules (PPO, random or evolution)"),
    "top": ("nos_cli.top_cmd", "the best rules of a search run"),
    "confirm": ("nos_cli.confirm_cmd", "re-test a run's best rules on fresh seeds and the test split"),
    "transfer": ("nos_cli.transfer_cmd", "train confirmed (or given) rules and the baselines on held-out tasks"),
    "families": ("nos_cli.families_cmd", "group rules into families such as PowerSign and AddSign"),
    "report": ("nos_cli.report_cmd", "write a report (tables, family tree, plots) for a search run"),
}


# argparse's complaints when a word it took for an option was meant as a rule (`nos parse -g`).
_DASH_ERRORS = ("the following arguments are required", "unrecognized arguments", "expected one argument",
                "expected at least one argument")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line `error: ...` and exit status 2.

    `dash_words` are the command line's words that start with '-' but are no option of any command:
    when parsing fails on one, the error says to put `--` before it (a rule such as -g*m).
    """

    def __init__(self, *args, dash_words: tuple[str, ...] = (), command: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dash_words = dash_words
        self.command = command  # the command word, when it is known

    def error(self, message: str) -> None:  # type: ignore[override]
        words = [w for w in self.dash_words if w.split("=")[0] not in self._option_string_actions]
        if message.startswith("unrecognized arguments"):  # only the words argparse could not place
            words = [w for w in words if w in message.split()]
            option = next((w for w in words if re.fullmatch(r"--[a-z][a-z0-9-]*(=.*)?", w)), None)
            if option is not None:
                command = f"{self.prog} {self.command}" if self.command else self.prog
                sys.stderr.write(f"error: unknown option {option.split('=')[0]} (see `{command} --help`)\n")
                raise SystemExit(2)
        hint = ""
        if words and message.startswith(_DASH_ERRORS):
            hint = (f"; a rule that starts with '-' goes after `--`, e.g. `{self.prog} -- {words[0]}`")
        sys.stderr.write(f"error: {message}{hint} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The `nos` parser; `argv`, the words it will parse, lets a usage error explain `--`, and only
    the command it names is imported (None: every command, fully)."""
    # Built fully: every command (argv None), or only the one argv runs, so `nos parse` imports no
    # other; with no command named (`nos --help`, a usage error) the list of commands is enough.
    full = set(COMMANDS) if argv is None else set()
    argv = () if argv is None else argv
    chosen = _command_word(argv)
    dash = tuple(w for w in argv if w.startswith("-") and w not in ("-", "--"))
    parser = _Parser(prog="nos", description="Neural optimizer search with symbolic update rules.",
                     dash_words=dash, command=chosen)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        if name in full or name == chosen:
            cmd = importlib.import_module(module)
            add_config_arguments(sub.add_parser(name, help=help_text, description=cmd.__doc__, dash_words=dash),
                                 cmd.Config)
        elif chosen is None:
            sub.add_parser(name, help=help_text, dash_words=dash)
    return parser


def _command_word(argv: Sequence[str]) -> str | None:
    """The command argv runs (its first word that is not an option), when it names one."""
    word = next((w for w in argv if not w.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script `nos`."""
    from nos_symbolic.errors import NosError, SettingError

    argv = list(sys.argv[1:] if argv is None else argv)
    ns = build_parser(argv).parse_args(argv)
    cmd = importlib.import_module(COMMANDS[ns.command][0])
    try:
        return int(cmd.run(config_from_namespace(cmd.Config, ns)) or 0)
    except SettingError as err:  # written with this command's options: n_groups -> --groups
        sys.stderr.write(f"error: {' '.join(err.render(flag_namer(cmd.Config)).split())}\n")
        return 2
    except NosError as err:
        sys.stderr.write(f"error: {' '.join(str(err).split())}\n")
        return 2
    except OSError as err:  # a path nos could not read, write or make
        sys.stderr.write(f"error: {_os_error_text(err)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


def _os_error_text(err: OSError) -> str:
    """One line naming the path an OSError is about and why: `cannot write /proc/x: Permission denied`."""
    reason = err.strerror or type(err).__name__
    path = err.filename if err.filename is not None else None
    if path is None:
        return f"{reason} ({' '.join(str(err).split())})"
    other = f" -> {err.filename2}" if err.filename2 is not None else ""
    return f"cannot use {path}{other}: {reason}"


if __name__ == "__main__":
    sys.exit(main())
