"""Take rules to tasks the search never scored them on: a run's confirmed rules (its best by the
confirmation's test accuracy, those confirmed better than every baseline first) or the rules of a file,
and the same baselines as `nos confirm`, trained with N shared seeds on held-out tasks: mnist1d-mlp (an
MLP), mnist1d-shuffled (positions permuted, so the ConvNet's locality bias stops helping), charlm (a
two-layer character Transformer on the Python standard library's source; scored by next-character
accuracy, bits per character alongside) and cifar10 (with --data-dir).

Prints a rules x tasks table (mean ± 95% CI half-width, the best per task in bold, arrows where the
paired test puts a rule above or below the task's best baseline) and writes it as Markdown and booktabs
LaTeX with a dot-and-whisker plot per task. A run's trainings go to its store; a rules file's to a run
directory of its own (--run-dir; the same one again resumes)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from controller.workers import Workers
from nos_cli.config import command_config, settings_from
from nos_cli.confirm_cmd import show_study
from nos_cli.progress import ProgressReporter
from nos_symbolic.eval_config import EvalConfig, task_options_value

TASKS = "mnist1d-mlp,mnist1d-shuffled,charlm"


@dataclass(frozen=True, kw_only=True)
class Options:
    """`nos transfer`'s own options; where its trainings run is Workers' (controller/workers.py)."""

    run: str | None = field(default=None, metadata={"positional": True, "help": "run directory of a confirmed search"})
    rules: str | None = field(default=None, metadata={"help": "a rules file instead: one DSL rule per line"})
    run_dir: str | None = field(default=None, metadata={"help": "with --rules: the run directory to store the "
                                                                "trainings in (default runs/transfer-DATE-TIME)"})
    tasks: str = field(default=TASKS, metadata={"help": "comma-separated held-out tasks (mnist1d, mnist1d-mlp, "
                                                        "mnist1d-shuffled, charlm, cifar10, or module:function "
                                                        "for a task of your own)"})
    task_options: tuple[str, ...] = field(default=(), metadata={
        "append": True, "flag": "--task-option",
        "help": next(f for f in fields(EvalConfig) if f.name == "task_options").metadata["help"]})
    seeds: int = field(default=5, metadata={"help": "seeds per rule and task, the same for every rule"})
    top: int = field(default=3, metadata={"help": "how many of the run's confirmed rules"})
    epochs: int | None = field(default=None, metadata={"help": "epochs of each final run (default: 10x the run's, 30 for a default search)"})
    lrs: tuple[float, ...] | None = field(default=None, metadata={"nargs": "+", "help": "learning-rate grid (default: the run's)"})
    grid_epochs: float | None = field(default=None, metadata={"help": "epochs of each grid run (default: the run's)"})
    data_dir: str | None = field(default=None, metadata={"help": "cifar10: the CIFAR-10 folder"})
    corpus: str | None = field(default=None, metadata={"help": "charlm: a folder of .py files (default: the standard library)"})
    out: str | None = field(default=None, metadata={"help": "folder for transfer.md, transfer.tex and the plots "
                                                            "(default RUN/transfer)"})
    json: bool = field(default=False, metadata={"help": "print a JSON list"})


Config = command_config(Options, Workers)


def run(config: Config) -> int:
    from analysis.studies import transfer_table
    from controller.studies.summary import summary_json
    from controller.studies.transfer import Protocol, TransferSource, transfer
    from nos_symbolic.errors import NosError

    if config.run_dir is not None and config.rules is None:
        raise NosError("--run-dir applies to --rules FILE; a run's transfer is stored in the run itself")
    if config.out is not None and Path(config.out).exists() and not Path(config.out).is_dir():
        raise NosError(f"--out {config.out} is a file; choose a folder")
    source = TransferSource(run_dir=Path(config.run) if config.run else None,
                            rules_file=Path(config.rules) if config.rules else None,
                            out_dir=Path(config.run_dir) if config.run_dir else None)
    protocol = Protocol(epochs=config.epochs, lrs=config.lrs, grid_epochs=config.grid_epochs,
                        data_dir=config.data_dir, corpus=config.corpus,
                        task_options=task_options_value(config.task_options))
    tasks = tuple(t.strip() for t in config.tasks.split(",") if t.strip())
    reporter = ProgressReporter("transfer", "training")
    try:
        report = transfer(source, tasks=tasks, seeds=config.seeds, top=config.top, protocol=protocol,
                          workers=settings_from(config, Workers), on_progress=lambda p: show_study(reporter, p))
    finally:
        reporter.close()
    out = Path(config.out) if config.out else report.run_dir / "transfer"
    out.mkdir(parents=True, exist_ok=True)
    table = transfer_table(report.summaries, out)
    (out / "transfer.md").write_text(f"{table.title}\n\n{table.markdown}", encoding="utf-8")
    (out / "transfer.tex").write_text(table.latex, encoding="utf-8")
    if config.json:
        print(json.dumps([summary_json(s) for summaries in report.summaries.values() for s in summaries]))
    else:
        print(f"{table.title}\n\n{table.markdown}\nwritten to {out}: transfer.md, transfer.tex, "
              + ", ".join(p.name for p in table.plots) + f"\nrun directory: {report.run_dir}")
    return 0
