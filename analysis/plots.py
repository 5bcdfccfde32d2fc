"""Plots of a search run, read from its samples: the best reward against evaluations per strategy, the
reward distribution, and the share of each family among the sampled rules over time. Each writes a PNG
(matplotlib's Agg backend, no display) and returns its path.

An evaluation is a sample that trained a network: neither a cache hit (a rule seen before) nor a sample
whose tokens spelt no rule costs one.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from analysis.families import Families
from analysis.sources import SampleRow

NO_RULE = "no rule"  # samples whose tokens spelt no valid rule
OTHER = "other"
_DPI = 100


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path | str) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    _pyplot().close(fig)
    return path


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this run", ha="center", va="center", transform=ax.transAxes)


def _is_evaluation(sample: SampleRow, untrained: Collection[str]) -> bool:
    """A sample that trained a network: not a cache hit, and not rejected by the pre-screen."""
    return not sample.cache_hit and sample.rule_key is not None and sample.rule_key not in untrained


def _by_strategy(samples: Sequence[SampleRow]) -> dict[str, list[SampleRow]]:
    out: dict[str, list[SampleRow]] = {}
    for sample in sorted(samples, key=lambda s: s.idx):
        out.setdefault(sample.strategy, []).append(sample)
    return out


def plot_best_reward(samples: Sequence[SampleRow], path: Path | str, untrained: Collection[str] = ()) -> Path:
    """Best reward so far against the number of evaluations, one line per strategy. `untrained` holds
    the keys of rules that trained nothing (pre-screen rejections): they do not count as evaluations."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, rows in _by_strategy(samples).items():
        evals, best, xs, ys = 0, float("-inf"), [], []
        for sample in rows:
            evals += _is_evaluation(sample, untrained)
            best = max(best, sample.reward)
            xs.append(evals)
            ys.append(best)
        ax.step(xs, ys, where="post", label=f"{strategy} (best {best:.4f})")
    if samples:
        ax.legend(loc="lower right")
    else:
        _empty(ax, "samples")
    ax.set_xlabel("evaluations (samples that trained a network)")
    ax.set_ylabel("best reward so far (validation accuracy)")
    ax.set_title("Best reward against evaluations")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_reward_distribution(samples: Sequence[SampleRow], path: Path | str, bins: int = 30,
                             untrained: Collection[str] = ()) -> Path:
    """Histogram of the rewards of evaluations (each rule once per strategy), one per strategy."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = {s: [r.reward for r in rows if _is_evaluation(r, untrained)] for s, rows in _by_strategy(samples).items()}
    groups = {s: rewards for s, rewards in groups.items() if rewards}
    if groups:
        top = max(max(r) for r in groups.values())
        edges = [top * i / bins for i in range(bins + 1)] if top > 0 else bins
        for strategy, rewards in groups.items():
            ax.hist(rewards, bins=edges, histtype="stepfilled", alpha=0.35, label=f"{strategy} (n={len(rewards)})")
        ax.legend(loc="upper left")
    else:
        _empty(ax, "evaluations")
    ax.set_xlabel("reward (validation accuracy)")
    ax.set_ylabel("evaluations")
    ax.set_title("Reward distribution")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def family_of_keys(families: Families) -> dict[str, str]:
    """Rule key -> its top-level family."""
    return {m.row.key: families.root_of(families.family_of[m.index]) for m in families.members}


def plot_family_share(samples: Sequence[SampleRow], families: Families, path: Path | str,
                      top: int = 8, bins: int = 20) -> Path:
    """Stacked share of each top-level family among sampled rules, in `bins` windows of draw order.

    Every named family sampled is drawn (PowerSign, AddSign, ... are what a search is hoped to find),
    then the most sampled clusters up to `top` series; the rest are pooled as "other".
    """
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ordered = sorted(samples, key=lambda s: s.idx)
    if not ordered:
        _empty(ax, "samples")
        return _save(fig, path)
    of_key = family_of_keys(families)
    labels = [NO_RULE if s.rule_key is None else of_key.get(s.rule_key, OTHER) for s in ordered]
    ranked = [name for name, _ in Counter(labels).most_common() if name not in (OTHER, NO_RULE)]
    named = [name for name in ranked if families.groups[name].kind == "named"]
    kept = named + [name for name in ranked if name not in named][: max(0, top - len(named))]
    pooled = [label if label in kept or label == NO_RULE else OTHER for label in labels]
    series = kept + [name for name in (OTHER, NO_RULE) if name in pooled]
    windows = np.array_split(np.arange(len(ordered)), min(bins, len(ordered)))
    # shares[i, j]: share of series i in window j; each window is drawn from its first sample to the next's.
    shares = np.array([[sum(pooled[k] == name for k in w) / len(w) for w in windows] for name in series])
    shares = np.concatenate([shares, shares[:, -1:]], axis=1)
    xs = [ordered[w[0]].idx for w in windows] + [ordered[-1].idx + 1]
    bottom = np.zeros(len(xs))
    for name, share in zip(series, shares):
        ax.fill_between(xs, bottom, bottom + share, step="post", alpha=0.85, label=_shorten(name))
        bottom = bottom + share
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("samples drawn")
    ax.set_ylabel("share of samples in the window")
    ax.set_title("Family share among sampled rules")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    return _save(fig, path)


def _shorten(text: str, width: int = 32) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
