"""`--task TASK` and `--task-option key=value`, shared by the commands that build a task.

A value is read as a Python literal when it is one (600, 0.1, True, None, "text", [1, 2]) and kept as
text otherwise (`--task-option kind=moons` passes the string "moons").
"""
from __future__ import annotations

import ast
from dataclasses import field
from typing import Any

TASK_HELP = ("child task: mnist1d, mnist1d-mlp, mnist1d-shuffled, cifar10, charlm, or module:function "
             "(a function in module.py, in the current directory or on PYTHONPATH, returning a "
             "nos_symbolic.Task)")
TASK_OPTION_HELP = "key=value, repeatable: a keyword argument of the task's function (or a built-in task's data option)"


def task_option_field() -> Any:
    """The `--task-option key=value` field of a command's Config."""
    return field(default=(), metadata={"append": True, "help": TASK_OPTION_HELP})


def parse_task_options(items: tuple[str, ...] | None) -> dict[str, Any]:
    """{key: value} from key=value words; a word without `=` or a key given twice is a NosError."""
    from nos_symbolic.errors import NosError

    options: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise NosError(f"--task-option {item!r} is not key=value (e.g. --task-option n=600)")
        if key in options:
            raise NosError(f"--task-option {key} is given twice")
        try:
            options[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            options[key] = text
    return options
