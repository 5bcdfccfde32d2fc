"""Plots of search runs, read from their samples: the best reward so far against evaluations (one line
per run and strategy, so several runs overlay), the reward distribution, and the share of each family
among the sampled rules over time. Each writes a PNG (matplotlib's Agg backend, no display) and returns
its path.

An evaluation is a sample that trained a network: neither a cache hit (a rule seen before), nor a rule
the pre-screen rejected, nor a sample whose tokens spelt no rule costs one.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.families import Families
from analysis.numbers import fixed, shorten
from analysis.sources import SampleRow

OTHER = "other families"
_DPI = 100


@dataclass(frozen=True)
class Curve:
    """One run's samples for the best-reward plot: its label, samples and the keys of rules that trained
    nothing (they do not count as evaluations)."""

    label: str
    samples: Sequence[SampleRow]
    untrained: Collection[str] = ()


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path | str) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    pyplot().close(fig)
    return path


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this run", ha="center", va="center", transform=ax.transAxes)


def _is_evaluation(sample: SampleRow, untrained: Collection[str]) -> bool:
    return not sample.cache_hit and sample.rule_key is not None and sample.rule_key not in untrained


def _by_strategy(samples: Sequence[SampleRow]) -> dict[str, list[SampleRow]]:
    out: dict[str, list[SampleRow]] = {}
    for sample in sorted(samples, key=lambda s: s.idx):
        out.setdefault(sample.strategy, []).append(sample)
    return out


def best_so_far(samples: Sequence[SampleRow], untrained: Collection[str] = ()) -> tuple[list[int], list[float]]:
    """(evaluations, best reward so far) after each sample of a trained rule, in draw order (a sample
    that trained nothing has no reward to count)."""
    evals, best, xs, ys = 0, float("-inf"), [], []
    for sample in sorted(samples, key=lambda s: s.idx):
        if sample.rule_key is None or sample.rule_key in untrained:
            continue
        evals += not sample.cache_hit
        best = max(best, sample.reward)
        xs.append(evals)
        ys.append(best)
    return xs, ys


def plot_best_reward(curves: Sequence[Curve], path: Path | str) -> Path:
    """Best reward so far against evaluations: one line per run and strategy."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    drawn = 0
    for curve in curves:
        for strategy, rows in _by_strategy(curve.samples).items():
            xs, ys = best_so_far(rows, curve.untrained)
            if not xs:
                continue
            label = f"{curve.label}: {strategy}" if len(curves) > 1 else strategy
            ax.step(xs, ys, where="post", lw=1.6, label=f"{label} (best {fixed(ys[-1])} after {xs[-1]} evaluations)")
            drawn += 1
    if drawn:
        ax.legend(loc="lower right", fontsize=9, framealpha=0.9)
    else:
        _empty(ax, "samples")
    ax.set_xlabel("evaluations (samples that trained a network)")
    ax.set_ylabel("best reward so far (validation accuracy)")
    ax.set_title("Best reward against evaluations" + (" (runs overlaid)" if len(curves) > 1 else ""))
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_reward_distribution(samples: Sequence[SampleRow], path: Path | str, bins: int = 30,
                             untrained: Collection[str] = ()) -> Path:
    """Histogram of the rewards of evaluations, one per strategy."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    groups = {s: [r.reward for r in rows if _is_evaluation(r, untrained)] for s, rows in _by_strategy(samples).items()}
    groups = {s: rewards for s, rewards in groups.items() if rewards}
    if groups:
        top = max(max(r) for r in groups.values())
        edges = [top * i / bins for i in range(bins + 1)] if top > 0 else bins
        for strategy, rewards in groups.items():
            ax.hist(rewards, bins=edges, histtype="stepfilled", alpha=0.4, label=f"{strategy} ({len(rewards)} evaluations)")
        ax.legend(loc="upper left", fontsize=9)
    else:
        _empty(ax, "evaluations")
    ax.set_xlabel("reward (validation accuracy)")
    ax.set_ylabel("evaluations")
    ax.set_title("Reward distribution of evaluated rules")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def family_of_keys(families: Families) -> dict[str, str]:
    """Rule key -> the name of its family."""
    return {m.row.key: f.name for f in families.families for m in f.members}


def plot_family_share(samples: Sequence[SampleRow], families: Families, path: Path | str,
                      top: int = 8, bins: int = 20) -> Path:
    """Stacked share of each family among the samples of trained rules (cache hits included), in `bins`
    windows of draw order: the `top` most sampled families, the rest pooled. Samples that trained
    nothing (pre-screen rejections, failures, tokens that spelt no rule) are counted in the title."""
    import numpy as np

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.8))
    of_key = family_of_keys(families)
    ordered = [s for s in sorted(samples, key=lambda s: s.idx) if s.rule_key in of_key]
    if not ordered:
        _empty(ax, "samples of trained rules")
        return save_figure(fig, path)
    labels = [of_key[s.rule_key] for s in ordered]
    kept = [name for name, _ in Counter(labels).most_common(top)]
    pooled = [label if label in kept else OTHER for label in labels]
    series = kept + ([OTHER] if OTHER in pooled else [])
    windows = np.array_split(np.arange(len(ordered)), min(bins, len(ordered)))
    # shares[i, j]: share of series i in window j; each window is drawn from its first sample to the next's.
    shares = np.array([[sum(pooled[k] == name for k in w) / len(w) for w in windows] for name in series])
    shares = np.concatenate([shares, shares[:, -1:]], axis=1)
    xs = [ordered[w[0]].idx for w in windows] + [ordered[-1].idx + 1]
    cmap = plt.get_cmap("tab10")
    bottom = np.zeros(len(xs))
    for i, (name, share) in enumerate(zip(series, shares)):
        ax.fill_between(xs, bottom, bottom + share, step="post", alpha=0.9, label=shorten(name),
                        color="0.6" if name == OTHER else cmap(i % 10))
        bottom = bottom + share
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("samples drawn")
    ax.set_ylabel("share of trained rules in the window")
    skipped = len(samples) - len(ordered)
    ax.set_title(f"Family share among the {len(ordered)} samples of trained rules\n"
                 f"({skipped} samples trained nothing: pre-screen rejections, failures, no rule)", fontsize=11)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
    return save_figure(fig, path)
