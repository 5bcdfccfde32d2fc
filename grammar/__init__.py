"""The DSL's Lark grammar and the one place that loads it."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lark import Lark

GRAMMAR_PATH = Path(__file__).with_name("nos.lark")


@lru_cache(maxsize=1)
def load_parser() -> Lark:
    """The LALR parser for the rule DSL (built once per process; LALR keeps parsing linear-time)."""
    return Lark(
        GRAMMAR_PATH.read_text(encoding="ascii"),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=False,
    )


__all__ = ["GRAMMAR_PATH", "load_parser"]
