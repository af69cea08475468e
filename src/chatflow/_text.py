"""Wording shared by messages: a count with its noun in the right number."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 instance``, ``2 instances``; ``plural`` for nouns not made plural by an "s".

    >>> counted(1, "instance"), counted(0, "phase"), counted(2, "entry", "entries")
    ('1 instance', '0 phases', '2 entries')
    """
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
