"""A tiny search run for the study tests: a run directory with config.json and a store holding a few
rules, made directly (no search), evaluated by a protocol that takes a fraction of a second."""
from __future__ import annotations

import json
from pathlib import Path

from controller.search import SearchConfig
from controller.store import RuleRecord, RunStore
from nos_symbolic.evaluate import EvalConfig
from nos_symbolic.result import EvalResult
from nos_symbolic.rule import parse_rule

# One lr (no grid) and one epoch: 32 steps of MNIST-1D's ConvNet per training.
TINY = EvalConfig(lrs=(0.01,), epochs=1)


def make_run(run_dir: Path, rules: list[tuple[str, float, str]], eval_config: EvalConfig = TINY) -> Path:
    """rules: (DSL text, reward, status); fingerprints are the rules' own unless text ends in '#FP'."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(SearchConfig(workers=0, eval=eval_config).to_dict()))
    with RunStore.open(run_dir) as store:
        for text, reward, status in rules:
            text, _, fp = text.partition("#")
            rule = parse_rule(text)
            record = RuleRecord(rule.key, fp or rule.fingerprint, rule.scale_fingerprint, rule.text,
                                rule.canonical_text, rule.latex(), eval_config.seed)
            store.record_evaluation(record, EvalResult(status, reward=reward, val_acc=reward), [])
    return run_dir
