"""Progress lines of a benchmark, tagged with its name: "[e2e] ..."."""
from __future__ import annotations

import sys


def make_log(tag: str):
    """A log(msg) that prints "[tag] msg" and flushes (the runs are long; logs are tailed)."""
    def log(msg: str) -> None:
        print(f"[{tag}] {msg}", flush=True)
    return log


def progress(text: str, done: bool = False) -> None:
    """A progress line rewritten in place on a terminal; in a log only the final (done) one."""
    if sys.stdout.isatty():
        print("\r\033[K" + text, end="\n" if done else "", flush=True)
    elif done:
        print(text, flush=True)
