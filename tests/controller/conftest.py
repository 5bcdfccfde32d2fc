"""Make `_jobs` importable as a top-level module, whatever pytest's import mode.

Worker processes are spawned: they import the work function by name, with the parent's sys.path
(multiprocessing hands sys.path to spawned children), so this entry reaches them too.
"""
import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
