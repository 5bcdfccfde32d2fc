"""Each setting is declared once, on a library config; the command line is generated from it."""
from __future__ import annotations

import dataclasses

import pytest

from nos_cli import build_parser, main
from nos_cli.config import command_config, config_from_namespace, explicit_settings, flag_namer, settings_from
from nos_symbolic.errors import NosError, SettingError
from nos_symbolic.eval_config import EvalConfig
from nos_symbolic.settings import setting


def _options(command: str) -> set[str]:
    parser = build_parser([command])
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {s for a in sub._actions for s in a.option_strings}


def _settings(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            out += _settings(f.default_factory, prefix + f.name + ".")
        elif f.metadata.get("option"):
            out.append((prefix + f.name, f))
    return out


@pytest.mark.parametrize("command, config, skip", [
    ("search", "controller.run_config:SearchConfig", {"eval.device"}),
    ("eval", "nos_symbolic.eval_config:EvalConfig", {"seed", "hurdle_quantile"}),
    ("confirm", "controller.workers:Workers", set()),
    ("transfer", "controller.workers:Workers", set()),
])
def test_every_setting_of_a_commands_config_is_an_option_with_help(command, config, skip):
    import importlib

    module, _, name = config.partition(":")
    cls = getattr(importlib.import_module(module), name)
    options, namer = _options(command), flag_namer(importlib.import_module(f"nos_cli.{command}_cmd").Config)
    settings = [(path, f) for path, f in _settings(cls) if path not in skip]
    assert settings
    for path, f in settings:
        assert namer(path) in options, path
        assert f.metadata["help"], path


@dataclasses.dataclass(frozen=True)
class _Inner:
    seed: int = setting(0, help="inner seed")
    rate: float = setting(0.5, flag="--learning-rate", help="a rate")

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise SettingError(f"{{0}} must be > 0, got {self.rate}", "rate")


@dataclasses.dataclass(frozen=True)
class _Outer:
    seed: int = setting(1, help="outer seed")
    names: str = setting("", nargs="*", from_text=",".join, help="names")
    hidden: int = setting(3, option=False)
    inner: _Inner = dataclasses.field(default_factory=_Inner)


@dataclasses.dataclass(frozen=True)
class _Own:
    json: bool = dataclasses.field(default=False, metadata={"help": "print JSON"})


def test_a_new_setting_is_one_field_option_help_value_and_error_included():
    import argparse

    from nos_cli.config import add_config_arguments

    Config = command_config(_Own, _Outer)
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Config)
    ns = parser.parse_args(["--seed", "7", "--inner-seed", "8", "--learning-rate", "0.25", "--names", "a", "b"])
    config = config_from_namespace(Config, ns)
    assert settings_from(config, _Outer) == _Outer(seed=7, names="a,b", inner=_Inner(seed=8, rate=0.25))
    assert explicit_settings(config) == {"seed", "inner.seed", "inner.rate", "names"}
    assert settings_from(config_from_namespace(Config, parser.parse_args([])), _Outer) == _Outer()
    assert "--hidden" not in parser.format_help() and "a rate" in parser.format_help()
    with pytest.raises(SettingError) as caught:
        settings_from(config_from_namespace(Config, parser.parse_args(["--learning-rate", "-1"])), _Outer)
    assert str(caught.value) == "inner.rate must be > 0, got -1.0"
    assert caught.value.render(flag_namer(Config)) == "--learning-rate must be > 0, got -1.0"


def test_library_errors_name_settings_and_the_command_line_its_flags(capsys):
    with pytest.raises(NosError) as caught:
        EvalConfig(epochs=0)
    assert str(caught.value) == "epochs must be an integer >= 1, got 0" and "--" not in str(caught.value)
    from controller.run_config import SearchConfig

    with pytest.raises(NosError) as caught:
        SearchConfig(n_groups=0)
    assert "n_groups" in str(caught.value) and "--" not in str(caught.value)
    assert main(["search", "--groups", "0"]) == 2
    assert capsys.readouterr().err == "error: --groups must be an integer >= 1, got 0\n"


def test_a_slot_that_names_no_setting_is_left_as_written():
    err = SettingError("{0} in /runs/{1}/{7} is taken", "run_dir")
    assert str(err) == "run_dir in /runs/{1}/{7} is taken"


def test_eval_prints_the_settings_it_ran_with(capsys):
    assert main(["eval", "sgd", "--epochs", "1", "--lrs", "0.1"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("task mnist1d, halving protocol, 1 epochs, 1 seed(s), lr grid [0.1], device cpu")
