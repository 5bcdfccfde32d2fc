"""Warm starts: named optimizers as the first proposals of a search (Lion's evolution starts from AdamW).

Each name is one line of DSL (a lone operand is spelled keep(x, 1), one group, the same rule as x);
"-D" adds the decay D (ld, cd or rd) as the rule's factor, as the named
rules of nos_symbolic.registry fade their sign term. A space expresses a name when
`SearchSpace.tokens_from_text` reads it (AddSign with a decay needs 4 groups, so the default 3-group
space leaves it out); `warm_start_tokens` keeps those, in the order given.
"""
from __future__ import annotations

from typing import Sequence

from controller.space import SearchSpace
from nos_symbolic.errors import NosError, SettingError
from nos_symbolic.registry import DECAYS

BASE_STARTS: dict[str, str] = {
    "sgd": "keep(g, 1)",
    "momentum": "keep(m, 1)",
    "adam": "keep(adam, 1)",
    "rmsprop": "keep(rmsprop, 1)",
    "powersign": "exp(sign(g) * sign(m)) * g",
    "addsign": "(1 + sign(g) * sign(m)) * g",
}
# The decayed variants: the decay multiplies the direction, or the sign term of PowerSign and AddSign.
DECAYED: dict[str, str] = {
    "sgd": "{f} * g",
    "momentum": "{f} * m",
    "adam": "{f} * adam",
    "rmsprop": "{f} * rmsprop",
    "powersign": "exp({f} * (sign(g) * sign(m))) * g",
    "addsign": "(1 + {f} * (sign(g) * sign(m))) * g",
}
NAMED_STARTS: dict[str, str] = {**BASE_STARTS,
                                **{f"{name}-{d}": DECAYED[name].format(f=d) for name in DECAYED for d in DECAYS}}
ALL = "all"  # every named start the space expresses


def warm_start_names(names: Sequence[str]) -> tuple[str, ...]:
    """The names, checked (a SettingError for an unknown one); "all" stands for all."""
    names = tuple(names)
    if ALL in names:
        return tuple(NAMED_STARTS)
    unknown = [n for n in names if n not in NAMED_STARTS]
    if unknown:
        raise SettingError(f"unknown {{0}} {', '.join(map(repr, unknown))}; expected {ALL} or names from "
                           f"{', '.join(NAMED_STARTS)}", "warm_start")
    return names


def warm_start_tokens(space: SearchSpace, names: Sequence[str]) -> list[list[int]]:
    """The canonical tokens of each named start `space` can express, in the order given."""
    found = []
    for name in warm_start_names(names):
        try:
            found.append(space.tokens_from_text(NAMED_STARTS[name]))
        except NosError:
            continue  # more groups than the space has: the name is left out
    return found


__all__ = ["ALL", "NAMED_STARTS", "warm_start_names", "warm_start_tokens"]
