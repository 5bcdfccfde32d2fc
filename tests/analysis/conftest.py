"""Tiny run stores and rules files, made here: a SQLite file of the store's schema written with sqlite3
directly, and rules files with rewards."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from controller.schema import MIGRATIONS, SCHEMA_VERSION
from nos_symbolic import parse_rule

# (text, reward): PowerSign and AddSign in several spellings, their kin, and rules in no named family.
RULES: list[tuple[str, float]] = [
    ("powersign", 0.760),
    ("powersign-cd", 0.772),
    ("2^(sign(g)*sign(m)*ld)*g", 0.765),
    ("g*exp(sign(m)*sign(g)*rd)", 0.755),
    ("3*e^(sign(g)*sign(m))*g", 0.750),
    ("addsign", 0.745),
    ("g + g*sign(g)*sign(m)", 0.741),
    ("(1 + cd*sign(m)*sign(g))*g", 0.768),
    ("addsign-ld + 1e-4*w", 0.740),
    ("adam", 0.734),
    ("rmsprop", 0.700),
    ("g", 0.690),
    ("g + 1e-3*w", 0.695),
    ("sign(m)", 0.650),
    ("sign(g)*exp(m)", 0.520),
    ("2*sign(g)*exp(m)", 0.530),
    ("sign(g)*exp(2*m)", 0.510),
    ("sign(g)*sign(m)", 0.300),
    ("clip(g, 1e-3)*v", 0.200),
]

def write_store(run_dir: Path, rules: list[tuple[str, float]], status: dict[str, str] | None = None) -> Path:
    """A run directory whose store holds `rules` and, per strategy, samples that draw them in order then
    draw each again (cache hits), plus one sample that spelt no rule."""
    run_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(run_dir / "store.sqlite")
    for statement in MIGRATIONS[0]:  # the schema as the store creates it
        db.execute(statement)
    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    now = "2024-01-01T00:00:00.000+00:00"
    keys = []
    for text, reward in rules:
        rule = parse_rule(text)
        keys.append((rule.key, reward))
        db.execute("INSERT INTO rules VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
            rule.key, rule.fingerprint, rule.scale_fingerprint, text, rule.canonical_text, rule.latex(),
            (status or {}).get(text, "ok"), reward, 1e-3, reward, reward - 0.01, 100, 1.5, 0, "", "[]", "[]",
            now, now))
    idx = 0
    for strategy, order in (("random", keys), ("ppo", keys[::-1])):
        for hit, sequence in ((False, order), (True, order)):
            for key, reward in sequence:
                db.execute("INSERT INTO samples VALUES (?,?,?,?,?,?,?)",
                           (idx, strategy, json.dumps([1, 2, 3, 4, 5]), key, reward, int(hit or strategy == "ppo"),
                            now))
                idx += 1
    db.execute("INSERT INTO samples VALUES (?,?,?,?,?,?,?)", (idx, "ppo", "[0]", None, 0.0, 0, now))
    db.commit()
    db.close()
    return run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_store(tmp_path / "run", RULES)


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.txt"
    lines = ["# rules with rewards", ""] + [f"{text}\t{reward}" for text, reward in RULES]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def rule_rewards() -> list[tuple[str, float]]:
    return list(RULES)


@pytest.fixture
def make_store():
    """write_store(run_dir, rules, status=None) for tests that need their own store."""
    return write_store
