"""Real English text offline: short quotes from Debian's ``fortunes`` package.

The package installs '%'-separated plain-text files under /usr/share/games/fortunes/ (plus a
binary ``.dat`` index and a ``.u8`` symlink per file, both skipped, and possibly an ``off/``
folder of offensive ones, skipped too). Each kept item is one fortune, cleaned: whitespace
collapsed, attribution lines ("-- Author") removed, non-prose (ASCII art, code, tables, IRC
logs, links) dropped, duplicates removed. Most items are one to three sentences.

The order is fixed by a hash of each text: deterministic for a given package version and
well mixed across topics, so the first n are a fair sample for any n.
"""
from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

from .fmnist import DatasetNotFoundError

__all__ = ["FORTUNES_DIR", "sentences"]

FORTUNES_DIR = Path("/usr/share/games/fortunes")
_INSTALL_HINT = "Install it with `apt-get update && apt-get install -y fortunes`."
_SKIP_DIRS = {"off"}  # fortunes-off: offensive quotes
_SKIP_FILES = {"translate-me"}  # not English
_ATTRIBUTION = re.compile(r"^\s*--\s*\S")  # "\t\t-- Lazarus Long"
_MIN_LETTER_SHARE = 0.8  # letters among non-space characters; below that it is not prose
_CHAT_OR_URL = re.compile(r"<[^<>\s]+>|https?://|www\.")  # IRC logs ("<nick> ..."), links


def _fortune_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if (not path.is_file() or path.suffix in (".dat", ".u8")
                or _SKIP_DIRS & set(rel.parts[:-1]) or path.name in _SKIP_FILES):
            continue
        files.append(path)
    return files


def _clean(record: str) -> str | None:
    """One '%'-record -> one line of prose, or None if it is not prose."""
    if any(c < " " and c not in "\t\n" for c in record) or "\ufffd" in record:
        return None  # overstriking (backspaces), escape sequences, bad bytes: art, not prose
    lines = [ln for ln in record.splitlines() if not _ATTRIBUTION.match(ln)]
    text = " ".join(" ".join(lines).split())
    if _CHAT_OR_URL.search(text):
        return None
    chars = text.replace(" ", "")
    if not chars or sum(c.isalpha() for c in chars) < _MIN_LETTER_SHARE * len(chars):
        return None
    return text


@lru_cache(maxsize=4)
def _all_texts(root: str) -> tuple[str, ...]:
    texts, seen = [], set()
    for path in _fortune_files(Path(root)):
        raw = path.read_text(encoding="utf-8", errors="replace")
        for record in re.split(r"^%\s*$", raw, flags=re.M):
            text = _clean(record)
            if text is not None and text.casefold() not in seen:
                seen.add(text.casefold())
                texts.append(text)
    texts.sort(key=lambda t: hashlib.sha256(t.encode()).digest())
    return tuple(texts)


def sentences(n: int | None = None, min_words: int = 4, max_words: int = 40,
              root: str | os.PathLike | None = None) -> list[str]:
    """The first ``n`` (all if None) distinct fortunes with ``min_words``..``max_words`` words.

    ``root`` defaults to /usr/share/games/fortunes. Raises DatasetNotFoundError if the
    package is not installed, ValueError if fewer than ``n`` texts qualify."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive int or None, got {n!r}")
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    folder = Path(root) if root is not None else FORTUNES_DIR
    if not folder.is_dir() or not _fortune_files(folder):
        raise DatasetNotFoundError(f"no fortune files under {folder}: the Debian package "
                                   f"'fortunes' is not installed. {_INSTALL_HINT}")
    kept = [t for t in _all_texts(str(folder.resolve())) if min_words <= len(t.split()) <= max_words]
    if n is None:
        return kept
    if len(kept) < n:
        raise ValueError(f"only {len(kept)} fortunes under {folder} have {min_words}..{max_words} "
                         f"words; asked for {n}")
    return kept[:n]
