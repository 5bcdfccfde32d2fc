"""Make `_jobs` importable as a top-level module, whatever pytest's import mode.

Worker processes are spawned: they import the work function by name, with the parent's sys.path
(multiprocessing hands sys.path to spawned children), so this entry reaches them too.

The controller's LSTM is tiny: one thread runs it fastest, and on a busy machine many threads
spend their time waiting for each other.
"""
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
