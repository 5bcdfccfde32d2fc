"""What a search runs with, built from its config: the strategy that proposes rules and the executor
that evaluates them (controller/workers.py: worker processes here, or tasks on a Ray cluster)."""
from __future__ import annotations

from controller.executors import Executor
from controller.run_config import SearchConfig
from controller.workers import evaluation_executor


def make_search_executor(config: SearchConfig) -> Executor:
    """The executor that runs the search's evaluations, where its workers say."""
    return evaluation_executor(config, config.eval)


def make_strategy(config: SearchConfig):
    """The strategy named in config, on the paper's search space."""
    from controller.space import SearchSpace
    from controller.strategies import build_strategy, strategy_options

    return build_strategy(config.strategy, SearchSpace(n_groups=config.n_groups), seed=config.seed,
                          round_size=config.round_size, **strategy_options(config))
