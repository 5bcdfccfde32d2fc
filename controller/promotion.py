"""Multi-fidelity promotion: which rules a search trains again, longer (asynchronous successive halving).

A reward measured after a few epochs is biased towards rules that win short runs (short-horizon bias,
Wu et al. 2018): sign-momentum beats Adam at 3 epochs and trails it at 30. So the search trains
every sampled rule at its own length (rung 0), and at the end of every round promotes, rung by rung,

    the best floor(n_k x promote) of the n_k rules that ended rung k `ok`, ranked by their score there,
    that are not yet at rung k + 1,

to the next length (ASHA's rule, Li et al. 2020, applied once per round so a run stays
deterministic). A rule promoted to the first longer length also has its decayed variant trained
there beside it, `(rule)*cd`: a decay's benefit shows only at the end of a long run, so short runs
cannot select for it; from there the variants compete for the longer lengths like every rule (on the
fidelity study's truth, sign(m)*cd trains to 96.1% at 30 epochs, sign(m) to 93.2% and Adam to
95.6%). The leaderboard ranks rules by the longest length they reached, then by their score there
(RunStore.top). Pure decisions: no I/O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# Chosen on bench/bench_fidelity.py: the best quarter of each length goes on to the next, 3 -> 10 -> 30
# epochs, with the cosine decay tried beside the rules that reach 10 (cd: the best single decay there).
DEFAULT_LENGTHS: tuple[int, ...] = (10, 30)
DEFAULT_PROMOTE = 0.25
DEFAULT_DECAYS: tuple[str, ...] = ("cd",)
# A search's default budget, in trainings at every length: 240 with promotion take about 1.5x the wall
# time 300 trainings at 3 epochs did (bench/bench_search_story.py: 128 s before, 233 s for 300 now).
DEFAULT_BUDGET = 240


@dataclass(frozen=True)
class Entrant:
    """A rule at one rung: its key, its DSL text and its score there (validation accuracy)."""

    key: str
    text: str
    score: float


def promoted(population: Sequence[Entrant], promote: float, already: set[str]) -> list[Entrant]:
    """The entrants to train at the next length: the best floor(len(population) x promote) by score
    (ties: by key, so the choice does not depend on the order the population was read in), less
    those in `already` (trained there before)."""
    keep = math.floor(len(population) * promote + 1e-9)
    best = sorted(population, key=lambda e: (-e.score, e.key))[:keep]
    return [e for e in best if e.key not in already]


def variant_text(text: str, decay: str) -> str:
    """The rule `text` multiplied by the schedule `decay` (ld, cd, rd), as DSL text."""
    return f"({text})*{decay}"
