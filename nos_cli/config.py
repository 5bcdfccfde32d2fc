"""Typed command configs -> argparse. Each command declares a dataclass; its fields become options.

A command's own options (a run directory, --json) are fields of its dataclass; the settings of the
library configs it runs (`SearchConfig`, `EvalConfig`, `Workers`, declared once with
nos_symbolic/settings.py `setting`) are added to it by `command_config`, and `settings_from` builds
the library config back from what was given. A `SettingError` is written with the command's flags by
`flag_namer`.

Field metadata keys: help (str), positional (bool), nargs, choices, flag (the option spelling when it is
not --field-name), short (e.g. "-k"), append (bool: the option may repeat, each value joining a tuple),
given (bool: the field is no option; it receives the names of the fields whose options were given on
the command line, so a command can tell `--budget 300` from the default 300), setting (the dotted
library setting a generated field sets, "eval.epochs"), from_text (see settings.py).
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
        kind = str if "from_text" in meta else _base_type(hints[f.name])
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
        if "flag" in meta:
            kwargs["metavar"] = meta["flag"].lstrip("-").replace("-", "_").upper()
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


def command_config(own: type, settings: type, *, skip: frozenset[str] = frozenset()) -> type:
    """The dataclass of a command: `own`'s fields, then one field per setting of the library config
    `settings` and the configs nested in it (dotted names in `skip` left out). A nested setting whose
    name is taken already is prefixed with its config's name (eval.seed -> --eval-seed). Each generated
    field defaults to None, "not given": the library config then keeps its own default."""
    taken = {f.name for f in dataclasses.fields(own)}
    extra: list[tuple[str, Any, dataclasses.Field]] = []
    for path, f, hint in _settings(settings):
        if path in skip:
            continue
        name = path.rpartition(".")[2]
        name = path.replace(".", "_") if name in taken else name
        taken.add(name)
        meta = {**f.metadata, "setting": path}
        meta.pop("option", None)
        listed = "nargs" in meta or meta.get("append")
        kind = (tuple[str, ...] if listed else str) if "from_text" in meta else hint
        extra.append((name, kind | None, dataclasses.field(default=None, metadata=meta)))
    if not any(f.metadata.get("given") for f in dataclasses.fields(own)):
        extra.append(("given", frozenset, dataclasses.field(default=frozenset(), metadata={"given": True})))
    return dataclasses.make_dataclass(own.__name__, extra, bases=(own,), frozen=True,
                                      namespace={"__module__": own.__module__, "__doc__": own.__doc__})


def settings_from(config: Any, settings: type[T], prefix: str = "") -> T:
    """The library config `settings` with the values given on the command line set (a generated
    field that is not None), the others at the config's own defaults. A nested config's error names
    its settings with their dotted names (eval.epochs)."""
    from nos_symbolic.errors import SettingError

    given = {f.metadata["setting"]: (f, getattr(config, f.name)) for f in dataclasses.fields(config)
             if "setting" in f.metadata and getattr(config, f.name) is not None}
    values: dict[str, Any] = {}
    hints = typing.get_type_hints(settings)
    for f in dataclasses.fields(settings):
        path = prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]) and any(p.startswith(path + ".") for p in given):
            try:
                values[f.name] = settings_from(config, hints[f.name], path + ".")
            except SettingError as err:
                raise err.within(f.name) from None
        elif path in given:
            field, value = given[path]
            convert = field.metadata.get("from_text")
            values[f.name] = convert(value) if convert is not None else value
    return settings(**values)


def explicit_settings(config: Any) -> set[str]:
    """The dotted settings (budget, eval.lrs) the command line gave."""
    return {f.metadata["setting"] for f in dataclasses.fields(config)
            if "setting" in f.metadata and f.name in config.given}


def flag_namer(cls: type) -> typing.Callable[[str], str]:
    """setting -> the command's option for it (n_groups -> --groups, eval.seed -> --eval-seed); a
    setting the command has no option for keeps its name."""
    flags = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("given") or f.metadata.get("positional"):
            continue
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        flags[f.metadata.get("setting", f.name)] = flag

    def name(setting: str) -> str:
        """The exact setting's flag, else that of the one setting nested anywhere under that name (a
        check of eval's data run on its own names data_dir, the command's eval.data_dir)."""
        if setting in flags:
            return flags[setting]
        nested = [flag for path, flag in flags.items() if path.rpartition(".")[2] == setting]
        return nested[0] if len(nested) == 1 else setting

    return name


def _settings(cls: type, prefix: str = "") -> typing.Iterator[tuple[str, dataclasses.Field, Any]]:
    """(dotted name, field, type) of every command-line setting of `cls`, nested configs after."""
    hints = typing.get_type_hints(cls)
    own = list(vars(cls).get("__annotations__", {}))  # a config's own settings before those it inherits
    nested = []
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.name not in own):
        if dataclasses.is_dataclass(hints[f.name]):
            nested.append((prefix + f.name + ".", hints[f.name]))
        elif f.metadata.get("option"):
            yield prefix + f.name, f, hints[f.name]
    for path, inner in nested:
        yield from _settings(inner, path)
