"""Errors a user can fix. The CLI turns any `NosError` into one line `error: ...` and exit status 2."""
from __future__ import annotations


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


def check_known_keys(cls: type, data: dict, what: str) -> None:
    """Refuse keys of `data` that are not fields of the dataclass `cls` (a config read from JSON)."""
    import dataclasses

    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise NosError(f"unknown {what} setting(s): {', '.join(sorted(unknown))}")
