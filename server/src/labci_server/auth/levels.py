"""Permission levels on a repository, ordered: none < read < write < admin."""

from __future__ import annotations

from typing import Final

LEVELS: Final = ("none", "read", "write", "admin")
SCOPES: Final = ("read", "write", "admin")  # what a personal API token may be limited to


def rank(level: str | None) -> int:
    return LEVELS.index(level) if level in LEVELS else 0


def at_least(have: str, need: str) -> bool:
    return rank(have) >= rank(need)


def highest(*levels: str | None) -> str:
    return LEVELS[max((rank(level) for level in levels), default=0)]


def lowest(*levels: str) -> str:
    return LEVELS[min((rank(level) for level in levels), default=0)]
