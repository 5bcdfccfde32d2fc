"""Settings: config dataclass fields that carry what a front end needs to offer them.

Each setting is declared once, as a field of a library config (`EvalConfig`, `SearchConfig`,
`Workers`); its default, its help and how it is written on a command line live in the field's
metadata. The command line is generated from these fields (nos_cli/config.py), and a bad value is a
`SettingError` naming the field, which each front end writes its own way.

    budget: int = setting(240, help="trainings of a child network at any length")
    n_groups: int = setting(3, flag="--groups", help="5-token groups per rule")
    halving: ... = setting(None, option=False)           # recorded, never given on a command line

Metadata keys: help; flag (the option's spelling when it is not --field-name); option (False: not a
command-line option); nargs, choices, append (argparse's); from_text (turns what the command line
read into the field's value: "none" -> None, names -> a comma list).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from nos_symbolic.errors import SettingError


def setting(default: Any = dataclasses.MISSING, *, help: str = "",
            default_factory: Callable[[], Any] | Any = dataclasses.MISSING, flag: str | None = None,
            option: bool = True, nargs: str | None = None, choices: list[str] | None = None,
            append: bool = False, from_text: Callable[[Any], Any] | None = None) -> Any:
    """A dataclass field with its command-line description in the metadata (see the module doc)."""
    meta: dict[str, Any] = {"help": help, "option": option}
    for key, value in (("flag", flag), ("nargs", nargs), ("choices", choices), ("from_text", from_text)):
        if value is not None:
            meta[key] = value
    if append:
        meta["append"] = True
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def check_int(name: str, value: Any, low: int, high: int | None = None, *, subject: str = "{0}") -> None:
    """Refuse a `value` of the setting `name` that is not an integer in [low, high]; the message
    calls it `subject` ({0}: the setting)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        raise SettingError(f"{subject} must be {bound}, got {value!r}", name)


def check_number(name: str, value: Any, low: float = 0.0, *, strict: bool = False, subject: str = "{0}") -> None:
    """Refuse a `value` of the setting `name` that is not a finite number >= low (> low if strict);
    the message calls it `subject` ({0}: the setting)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= low if strict else value < low):
        raise SettingError(f"{subject} must be a finite number {'>' if strict else '>='} {low:g}, got {value!r}",
                           name)


def check_fraction(name: str, value: Any, *, closed: bool = True) -> None:
    """Refuse a `value` of the setting `name` outside [0, 1] (closed) or (0, 1)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (0 <= value <= 1 if closed else 0 < value < 1):
        what = "a number from 0 to 1" if closed else "a fraction between 0 and 1"
        raise SettingError(f"{{0}} must be {what}, got {value!r}", name)
