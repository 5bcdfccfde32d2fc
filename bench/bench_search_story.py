"""The search story at full length: a default search, its best rules confirmed at 30 epochs.

    python bench/bench_search_story.py [--run-dir runs/story] [--seeds 5] [--top 3] [--old PATH]

1. `nos search` with the default settings (wall time printed; with --old PATH, the same command is first
   run with PATH on PYTHONPATH, a checkout of an earlier version, for the ratio of wall times in one run).
2. `nos confirm RUN --top K --seeds N`: the run's K best rules (by the longest length they reached) and
   the baselines, Adam with a cosine decay included, at 30 epochs and at the search's 3 epochs, on
   fresh seeds and the test split; paired t-tests against the best baseline.
3. `nos families RUN --json`: the family of the winner.
Prints a Markdown table for the README. A run directory that exists is resumed, not searched again.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BASELINES_SHOWN = ("adam", "adam-cosine", "powersign-cd", "addsign-cd")


def nos(args: list[str], pythonpath: str | None = None) -> tuple[str, float]:
    """Run `nos ARGS`; (stdout, wall seconds). Exits on failure."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nos_cli", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"nos {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/story"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--old", help="a checkout of an earlier version: its default search is timed first")
    args = parser.parse_args()

    if args.old:
        old = args.run_dir.with_name(args.run_dir.name + "-old")
        if not old.exists():
            _, seconds = nos(["search", "--run-dir", str(old)], pythonpath=args.old)
            print(f"earlier version's default search: {seconds:.0f} s wall")
    if not args.run_dir.exists():
        out, seconds = nos(["search", "--run-dir", str(args.run_dir)])
        print(f"default search: {seconds:.0f} s wall\n{out}")
    out, seconds = nos(["confirm", str(args.run_dir), "--top", str(args.top), "--seeds", str(args.seeds), "--json"])
    rows = json.loads(out)
    print(f"confirmation: {seconds:.0f} s wall")
    families, _ = nos(["families", str(args.run_dir), "--json"])
    family_of = _family_index(json.loads(families))

    epochs, short = rows[0]["epochs"], rows[0]["search_epochs"]
    print(f"\n| rule | test % at {epochs} epochs [95% CI] | vs {rows[0]['best_baseline']}, points | p (t) | verdict "
          f"| test % at {short} epochs | verdict there | family |\n|---|---:|---:|---:|---|---:|---|---|")
    for r in rows:
        if r["source"] != "search" and r["rule"] not in BASELINES_SHOWN:
            continue
        mean, (low, high) = r["test_acc_mean"], r["test_acc_ci95"]
        ci = "" if low is None else f" [{100 * low:.2f}, {100 * high:.2f}]"
        delta = "-" if r["delta_vs_best_baseline"] is None else f"{100 * r['delta_vs_best_baseline']:+.2f}"
        p = "-" if r["p_ttest"] is None else f"{r['p_ttest']:.3f}"
        name = f"`{r['rule']}`" + (" (baseline)" if r["source"] == "baseline" else "")
        flip = " (flips)" if r["flipped"] else ""
        print(f"| {name} | {100 * mean:.2f}{ci} | {delta} | {p} | {r['verdict']} | "
              f"{100 * (r['search_test_acc_mean'] or 0):.2f} | {r['search_verdict']}{flip} | "
              f"{family_of.get(r['key'], '-')} |")


def _family_index(families: dict) -> dict[str, str]:
    """rule key -> "family: signature" from `nos families --json`."""
    return {r["key"]: f"{r['family']} ({r['subfamily']})" for r in families.get("rules", [])}


if __name__ == "__main__":
    main()
