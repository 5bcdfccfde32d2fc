"""The run store's rows: one frozen dataclass per table, and `Table`, the one mapping between a row
type and its table, generated from the dataclass's fields (controller/store.py reads and writes every
table through it; controller/schema.py creates the columns).

A field is a column of the same name, stored as it is, unless its metadata says otherwise:

    json_column()     the value is stored as JSON text (and decoded back, e.g. into a tuple)
    flag_column()     a bool, stored as 0 or 1
    result_columns()  an EvalResult, stored as one column per field of it; a field named like one of
                      the row's own (`seed`) shares that column, the row's value written
    not_stored()      known only when read back (filled in by the store), no column

So a new field of EvalResult or of a row is a new column with no mapping code to write: add the field
and the migration that adds its column (controller/schema.py).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, Generic, TypeVar

from nos_symbolic.result import EvalResult

R = TypeVar("R")


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Codec:
    """How one column's value is written (encode) and read back (decode)."""

    encode: Callable[[Any], Any] = _same
    decode: Callable[[Any], Any] = _same


def json_column(encode: Callable[[Any], Any] = _same, decode: Callable[[Any], Any] = _same, **kw: Any) -> Any:
    """A field stored as JSON text: `encode` makes the value JSON-safe first, `decode` rebuilds it.
    Python's json writes and reads back inf and nan (a diverged run's loss curve holds them)."""
    codec = Codec(lambda v: json.dumps(encode(v)), lambda text: decode(json.loads(text)))
    return field(metadata={"codec": codec}, **kw)


def flag_column(**kw: Any) -> Any:
    """A bool field, stored as SQLite's 0 or 1."""
    return field(metadata={"codec": Codec(lambda v: int(bool(v)), bool)}, **kw)


def result_columns(json_fields: tuple[str, ...], skip: tuple[str, ...] = (), **kw: Any) -> Any:
    """An EvalResult field stored as one column per field of EvalResult but `skip`; those in
    `json_fields` as JSON text."""
    return field(metadata={"result": (frozenset(json_fields), frozenset(skip))}, **kw)


def not_stored(**kw: Any) -> Any:
    """A field the store fills in when reading; no column holds it."""
    return field(metadata={"stored": False}, **kw)


# -- the rows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetaRow:
    """A `meta` entry: the schema version, the run's id and config, its progress."""

    key: str
    value: Any = json_column()


@dataclass(frozen=True)
class StoredRule:
    """A `rules` row: a rule's identity and forms, the seed the search chose, and its evaluation.

    The search builds one without a result (`RuleRecord`) and hands the result to
    `RunStore.record_evaluation`; every row read back has one, whose `seed` is the row's. `top` also
    fills in `epochs`, the length `result` was trained at when longer than the search's, and
    `search_result`, the result at the search's own length.
    """

    key: str
    fingerprint: str | None
    scale_fingerprint: str | None
    text: str
    canonical: str | None
    latex: str | None
    seed: int
    # val_loss and test_loss are not kept: nothing the search or its readers rank by.
    result: EvalResult | None = result_columns(("loss_curve", "val_curve"), skip=("val_loss", "test_loss"),
                                               default=None)
    created_at: str = ""
    updated_at: str = ""
    epochs: float | None = not_stored(default=None)
    search_result: EvalResult | None = not_stored(default=None)


RuleRecord = StoredRule  # the name the search writes a rule by, before it has a result


@dataclass(frozen=True)
class SampleRow:
    """A `samples` row: one draw of the search, in draw order (rule_key None where the tokens spelt
    no rule); `created_at` is set by the store."""

    idx: int
    strategy: str
    tokens: tuple[int, ...] = json_column(encode=lambda tokens: [int(t) for t in tokens], decode=tuple)
    rule_key: str | None
    reward: float
    cache_hit: bool = flag_column()
    created_at: str = ""


SampleRecord = SampleRow  # the name the search writes a sample by


@dataclass(frozen=True)
class UpdateRow:
    """An `updates` row: the controller's statistics (pg_loss, entropy, ...) of one learning step."""

    round: int
    idx: int  # the step within the round
    stats: dict[str, float] = json_column(encode=dict)


@dataclass(frozen=True)
class TrainingRow:
    """A `trainings` row: one training of a study (`confirm`, `transfer`), a rule or baseline on a
    task with one seed.

    rule:    DSL text (a baseline's name for torch's optimizers); key: the rule's key or that name
    source:  `search` (a rule the search found), `baseline` or `given` (from a rules file)
    metrics: JSON-safe extras of the training (per-epoch validation curve, losses, reason, ...)
    """

    study: str
    rule: str
    key: str
    source: str
    task: str
    seed: int
    status: str
    lr: float | None
    val_acc: float | None
    test_acc: float | None
    metrics: dict[str, Any] = json_column()
    seconds: float
    created_at: str = ""


@dataclass(frozen=True)
class LengthRow:
    """A `lengths` row: rule `key` trained at `epochs`, past the search's length, after its promotion
    in `round`."""

    key: str
    epochs: float
    round: int
    result: EvalResult = json_column(encode=EvalResult.to_dict, decode=EvalResult.from_dict)
    created_at: str = ""


@dataclass(frozen=True)
class VariantRow:
    """A `variants` row: rule `key` is the decayed variant of rule `parent`, made in `round`."""

    key: str
    parent: str
    round: int


@dataclass(frozen=True)
class RecordedRounds:
    """meta's `progress`: the rounds the store has recorded as ended and the samples they drew."""

    rounds: int = 0
    samples: int = 0


# -- the mapping ----------------------------------------------------------------------------------


class _ResultColumns:
    """The columns an EvalResult field spreads over, and its values to and from them."""

    def __init__(self, f: Field, own: Collection[str]) -> None:
        self.name = f.name
        self.json, skip = f.metadata["result"]
        names = [g.name for g in fields(EvalResult) if g.name not in skip]
        self.shared = [n for n in names if n in own]  # the row's own column holds these
        self.columns = [n for n in names if n not in own]

    def encode(self, result: EvalResult) -> dict[str, Any]:
        d = result.to_dict()
        return {c: json.dumps(d[c]) if c in self.json else d[c] for c in self.columns}

    def decode(self, row: Mapping[str, Any]) -> EvalResult:
        return EvalResult.from_dict({c: json.loads(row[c]) if c in self.json else row[c]
                                     for c in self.columns + self.shared})


class Table(Generic[R]):
    """Table `name`, whose rows are `row_type`s: its columns and the mapping both ways.

    `to_params(row)` gives the named parameters of an INSERT; `from_row(row)` rebuilds a row from a
    query's result by column name (extra columns of the query are ignored).
    """

    def __init__(self, name: str, row_type: type[R]) -> None:
        self.name, self.row_type = name, row_type
        stored = [f for f in fields(row_type) if f.metadata.get("stored", True)]
        self._codecs = {f.name: f.metadata.get("codec", Codec()) for f in stored if "result" not in f.metadata}
        self._results = [_ResultColumns(f, self._codecs) for f in stored if "result" in f.metadata]
        self.columns = (*self._codecs, *(c for r in self._results for c in r.columns))

    def to_params(self, row: R) -> dict[str, Any]:
        params = {name: codec.encode(getattr(row, name)) for name, codec in self._codecs.items()}
        for r in self._results:
            params.update(r.encode(getattr(row, r.name)))
        return params

    def from_row(self, row: Mapping[str, Any]) -> R:
        values = {name: codec.decode(row[name]) for name, codec in self._codecs.items()}
        values.update({r.name: r.decode(row) for r in self._results})
        return self.row_type(**values)

    def insert_sql(self, on_conflict: str = "") -> str:
        """INSERT of one row by named parameters, with an optional ON CONFLICT clause."""
        return (f"INSERT INTO {self.name} ({', '.join(self.columns)}) "
                f"VALUES ({', '.join(':' + c for c in self.columns)}) {on_conflict}").rstrip()

    def upsert_sql(self, key: str, keep: Collection[str] = ()) -> str:
        """INSERT that, when row `key` exists, replaces every column but `key` and those in `keep`."""
        changed = [c for c in self.columns if c != key and c not in keep]
        return self.insert_sql(f"ON CONFLICT ({key}) DO UPDATE SET "
                               + ", ".join(f"{c} = excluded.{c}" for c in changed))


META = Table("meta", MetaRow)
RULES = Table("rules", StoredRule)
SAMPLES = Table("samples", SampleRow)
UPDATES = Table("updates", UpdateRow)
TRAININGS = Table("trainings", TrainingRow)
LENGTHS = Table("lengths", LengthRow)
VARIANTS = Table("variants", VariantRow)
