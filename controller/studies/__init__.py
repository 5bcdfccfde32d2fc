"""Studies of a search's results: `confirm` (fresh seeds and the test split on the search's task) and
`transfer` (held-out tasks). Both train contenders (rules and baselines) with shared seeds on the
search's executors, store every training in the run store, and summarise them with paired tests.

    contenders.py  what is trained: the run's best rules, a rules file's, the baselines; the seeds
    runner.py      jobs, the executor, one store transaction per finished training, resuming
    summary.py     stored trainings -> means, intervals, paired tests, verdicts, steps-to-target
    confirm.py     nos confirm
    transfer.py    nos transfer
"""
