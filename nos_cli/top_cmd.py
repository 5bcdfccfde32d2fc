"""The best rules of a search run: those trained at the longest length first (multi-fidelity
promotion), each by its score at the longest length it reached."""
from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Config:
    run: str = field(metadata={"positional": True, "help": "run directory"})
    k: int = field(default=10, metadata={"short": "-k", "flag": "--top", "help": "how many rules"})
    json: bool = field(default=False, metadata={"help": "print a JSON list"})


def run(config: Config) -> int:
    from controller.api import leaderboard

    rows = leaderboard(config.run, config.k)
    if config.json:
        print(json.dumps(rows))
        return 0
    metric = rows[0]["metric"] if rows else ""
    print(table(rows) + (f"\n(reward: {metric} on validation, test: on the test split, at the longest length "
                         f"each rule reached; @search: the reward at the search's length)" if metric else ""))
    return 0


def table(rows: list[dict]) -> str:
    """Leaderboard rows as a table: length, reward and test score there, lr, reward at the search's length."""
    lines = [f"{'epochs':>6}  {'reward':>7}  {'test':>6}  {'lr':>7}  {'@search':>7}  rule"]
    for r in rows:
        test = "-" if r["test_acc"] is None else f"{r['test_acc']:.4f}"
        lr = "-" if r["lr"] is None else f"{r['lr']:.0e}"
        epochs = "-" if r["epochs"] is None else f"{r['epochs']:g}"
        lines.append(f"{epochs:>6}  {r['reward']:7.4f}  {test:>6}  {lr:>7}  {r['search_reward']:7.4f}  {r['rule']}")
    return "\n".join(lines)

