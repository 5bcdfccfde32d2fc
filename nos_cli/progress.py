"""The one progress display of the long commands (search, confirm, transfer): a tqdm bar on a
terminal, otherwise a line every `every` seconds and at the end (a log file, CI, Slurm)."""
from __future__ import annotations

import sys
import time


class ProgressReporter:
    """Shows `done` of `total` units with a line of detail; `stored` of them were done before this
    invocation (a resumed run), so the bar starts there."""

    def __init__(self, desc: str, unit: str, every: float = 10.0) -> None:
        self.desc, self.unit, self.every, self.last = desc, unit, every, 0.0
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.started = time.monotonic()

    def show(self, done: int, total: int, info: str, stored: int = 0) -> None:
        """Draw the bar at `done`, or write a line when `every` seconds have passed or all is done."""
        if self.tty:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=stored, desc=self.desc, unit=self.unit, file=sys.stderr,
                                dynamic_ncols=True)
            self.bar.n = done
            self.bar.set_postfix_str(info, refresh=True)
        elif time.monotonic() - self.last >= self.every or done >= total:
            self.last = time.monotonic()
            before = f" ({stored} already stored)" if stored else ""
            sys.stderr.write(f"[{time.monotonic() - self.started:7.1f}s] {self.unit}s {done}/{total}{before}  "
                             f"{info}\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
