"""Typed command configs -> argparse. Each command declares a dataclass; its fields become options.

Field metadata keys: help (str), positional (bool), nargs, choices, flag (the option spelling when it is
not --field-name), short (e.g. "-k"), append (bool: the option may repeat, each value joining a tuple), given (bool: the field is no option; it receives the names of the
fields whose options were given on the command line, so a command can tell `--budget 300` from the
default 300).
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one argument per field of the dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata)
        if meta.get("given"):
            continue
        kind = _base_type(hints[f.name])
        kwargs: dict[str, Any] = {"help": meta.get("help", "")}
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if meta.get("positional"):
            kwargs["nargs"] = meta.get("nargs")
            if kind is not bool:
                kwargs["type"] = kind
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                kwargs["nargs"] = kwargs["nargs"] or "?"
                kwargs["default"] = _default(f)
            parser.add_argument(f.name, **{k: v for k, v in kwargs.items() if v is not None})
            continue
        names = [meta.get("flag", "--" + f.name.replace("_", "-"))] + ([meta["short"]] if "short" in meta else [])
        # An option left out stays out of the namespace (SUPPRESS); config_from_namespace fills in the
        # field's default and knows which options were given.
        if kind is bool:
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction
                                if _default(f) else "store_true", default=argparse.SUPPRESS, help=kwargs["help"])
            continue
        if "nargs" in meta:
            kwargs["nargs"] = meta["nargs"]
        if meta.get("append"):
            kwargs["action"] = "append"
        parser.add_argument(*names, dest=f.name, type=kind, default=argparse.SUPPRESS, **kwargs)


def config_from_namespace(cls: type[T], ns: argparse.Namespace) -> T:
    """Build the dataclass from parsed arguments: an option not given takes the field's default."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    given = frozenset(f.name for f in dataclasses.fields(cls) if hasattr(ns, f.name) and not f.metadata.get("given"))
    for f in dataclasses.fields(cls):
        if f.metadata.get("given"):
            values[f.name] = given
        elif hasattr(ns, f.name):
            value = getattr(ns, f.name)
            values[f.name] = tuple(value) if isinstance(value, list) and _is_tuple(hints[f.name]) else value
    return cls(**values)


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _is_tuple(tp: Any) -> bool:
    return typing.get_origin(tp) is tuple or any(typing.get_origin(a) is tuple for a in typing.get_args(tp))


def _base_type(tp: Any) -> type:
    """int | None -> int; tuple[float, ...] -> float; list[str] -> str."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        return args[0]
    if args:  # Optional / Union
        return _base_type(args[0])
    return tp
