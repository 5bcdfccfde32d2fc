"""Importing a module of the user's (`--task module:function`, `--strategy module:Class`): a module
that is missing, or broken, is one NosError naming it and what to do, never a traceback."""
from __future__ import annotations

import importlib
from types import ModuleType

from nos_symbolic.errors import NosError

ON_PATH = "in the current directory or its directory on PYTHONPATH"


def import_user_module(module_name: str, what: str, where: str = ON_PATH) -> ModuleType:
    """Import module_name for `what` (e.g. "task 'my_tasks:sine'"); `where` says where it should be."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is None or not (module_name == err.name or module_name.startswith(err.name + ".")):
            raise NosError(f"importing module {module_name!r} for {what} failed: {err}; install what "
                           f"it imports") from None
        raise NosError(f"no module {module_name!r} for {what}: put {module_name.split('.')[0]}.py "
                       f"{where}") from None
    except Exception as err:  # the user's module is broken: say where, not a traceback
        raise NosError(f"importing module {module_name!r} for {what} failed: "
                       f"{type(err).__name__}: {err}") from None
