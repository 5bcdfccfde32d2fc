"""`optimizer.state` that counts its edits, so a step knows in O(1) whether the state changed.

`WatchedState` is the defaultdict torch keeps as ``optimizer.state``; its values are `WatchedEntry`
dicts. Every way of changing either (item assignment and deletion, clear, pop, popitem, update,
setdefault, |=) adds one to the shared `Edits.count`; in-place edits of the tensors they hold are not
edits of the dicts (the optimizer's buffers are those tensors). `plain` turns them back into the
defaultdict and dicts torch and its checkpoint formats expect.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any


class Edits:
    """A counter shared by a state and its entries."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def _counting(method: str) -> Any:
    base = getattr(dict, method)

    def edit(self, *args: Any, **kwargs: Any) -> Any:
        self.edits.count += 1
        return base(self, *args, **kwargs)

    edit.__name__ = method
    return edit


_EDITS = ("__setitem__", "__delitem__", "clear", "pop", "popitem", "update", "setdefault", "__ior__")


class WatchedEntry(dict):
    """One parameter's state."""

    def __init__(self, edits: Edits, *args: Any) -> None:
        super().__init__(*args)
        self.edits = edits


class WatchedState(defaultdict):
    """``optimizer.state``: parameter -> WatchedEntry."""

    def __init__(self, edits: Edits, items: dict | None = None) -> None:
        super().__init__(None, {k: WatchedEntry(edits, v) if isinstance(v, dict) else v
                                for k, v in (items or {}).items()})
        self.edits = edits

    def __missing__(self, key: Any) -> WatchedEntry:
        entry = self[key] = WatchedEntry(self.edits)
        return entry


for _cls in (WatchedEntry, WatchedState):
    for _name in _EDITS:
        setattr(_cls, _name, _counting(_name))


def plain(state: dict) -> defaultdict:
    """The same state as torch's own types (a defaultdict of dicts)."""
    return defaultdict(dict, {k: dict(v) if isinstance(v, dict) else v for k, v in state.items()})
