"""Errors a user can fix. The CLI turns any `NosError` into one line `error: ...` and exit status 2."""
from __future__ import annotations

import re
from typing import Callable


class NosError(ValueError):
    """Bad input: a rule, a path, a config. The message says what is wrong and how to fix it."""


class RuleError(NosError):
    """A rule that cannot be parsed or is not valid. Syntax errors carry `line` and `column` (1-based)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.line = line
        self.column = column
        self.reason = message
        if column is None:
            where = ""
        elif line is not None and line > 1:
            where = f" at line {line}, column {column}"
        else:
            where = f" at column {column}"
        super().__init__(f"{message}{where}")


class SettingError(NosError):
    """A bad value of a setting: a field of a config dataclass (`n_groups`, `eval.epochs`).

    The message is a template whose {0}, {1}, ... stand for the settings it is about, so each
    front end names them its own way: str(err) gives the field names (a Python caller's words),
    `render(name)` lets the command line put its flags there (`--groups must be >= 1, got 0`).

        raise SettingError("{0} must be an integer >= 1, got 0", "n_groups")
    """

    _SLOT = re.compile(r"\{(\d)\}")

    def __init__(self, template: str, *settings: str) -> None:
        self.template, self.settings = template, tuple(settings)
        super().__init__(self.render())

    def render(self, name: Callable[[str], str] = str) -> str:
        """The message with each setting written as `name(setting)`."""
        def slot(m: re.Match) -> str:  # a {digit} that names no setting (in a path, say) stays as it is
            i = int(m.group(1))
            return name(self.settings[i]) if i < len(self.settings) else m.group(0)

        return self._SLOT.sub(slot, self.template)

    def within(self, config: str) -> "SettingError":
        """The same error about settings of a config nested at `config` (eval -> eval.epochs)."""
        return SettingError(self.template, *(f"{config}.{s}" for s in self.settings))


def check_known_keys(cls: type, data: dict, what: str) -> None:
    """Refuse keys of `data` that are not fields of the dataclass `cls` (a config read from JSON)."""
    import dataclasses

    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise NosError(f"unknown {what} setting(s): {', '.join(sorted(unknown))}")
