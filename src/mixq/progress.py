"""Progress of long stages: a live tqdm bar on a terminal; one summary line per stage when
output goes to a file or a pipe (tqdm's carriage-return updates make a log one long line)."""
from __future__ import annotations

import sys
import time


class _LineProgress:
    """tqdm's interface as used here; writes one line when the stage ends."""

    def __init__(self, iterable, total, desc: str, unit: str):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self.postfix, self.t0, self.closed = 0, {}, time.perf_counter(), False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **kw) -> None:
        self.postfix = kw

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        unit = self.unit if self.n == 1 else self.unit + ("es" if self.unit.endswith("ch") else "s")
        print(f"{self.desc}: {self.n} {unit} in "
              f"{time.perf_counter() - self.t0:.1f} s{extra}", file=sys.stderr, flush=True)


def progress(iterable=None, *, total: int | None = None, desc: str, unit: str, enabled: bool = True):
    """A progress bar over `iterable` (or one updated by hand); None when disabled."""
    if not enabled:
        return iterable if iterable is not None else None
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:  # bars are a nicety, not a dependency
            tqdm = None
        if tqdm is not None:
            return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False)
    return _LineProgress(iterable if iterable is not None else (), total, desc, unit)


def note(message: str) -> None:
    """One line on stderr that leaves a live tqdm bar intact (tqdm.write redraws it below)."""
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            tqdm.write(message, file=sys.stderr)
            return
    print(message, file=sys.stderr, flush=True)
