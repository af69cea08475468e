"""How the ``chatflow`` command writes: JSON, aligned tables, colour, times, progress.

Colour and the progress bar appear only on a terminal: piped output stays plain text
that other tools can parse, and ``NO_COLOR`` (https://no-color.org) or ``--no-color``
turn colour off everywhere.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

_COLOURS = {
    "completed": "32",
    "running": "36",
    "created": "36",
    "paused": "33",
    "awaiting_approval": "33",
    "failed": "31",
    "cancelled": "90",
    "rejected": "31",
    "bold": "1",
    "dim": "2",
}

# A progress bar appears once work has taken this long (short runs stay quiet).
PROGRESS_AFTER_S = 1.0


class Output:
    """stdout for results, stderr for everything else; styled only on a terminal."""

    def __init__(self, *, json_mode: bool, colour: bool | None = None) -> None:
        self.json = json_mode
        self.colour = _wants_colour(sys.stdout) if colour is None else colour

    def emit_json(self, data: Any) -> None:
        print(json.dumps(data, indent=2, ensure_ascii=False))

    def line(self, text: str = "") -> None:
        print(text)

    def paint(self, text: str, style: str) -> str:
        """``text`` in the colour of ``style`` (a status or "bold"/"dim") on a terminal."""
        code = _COLOURS.get(style)
        return _Painted(f"\033[{code}m{shown(text)}\033[0m") if self.colour and code else text

    def table(
        self, headers: Sequence[str], rows: Iterable[Sequence[Any]], *, status: int = -1
    ) -> None:
        """Aligned columns; the ``status`` column (by index) is coloured by its value."""
        text_rows = [["" if cell is None else shown(cell) for cell in row] for row in rows]
        widths = [len(header) for header in headers]
        for row in text_rows:
            widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=False)]
        print(self.paint(_join(headers, widths), "bold"))
        for row in text_rows:
            cells = [
                self.paint(cell.ljust(width), cell) if index == status else cell.ljust(width)
                for index, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            print("  ".join(cells).rstrip())

    def fields(self, pairs: Iterable[tuple[str, Any]]) -> None:
        """``name: value`` lines with the values aligned."""
        items = [(name, "" if value is None else shown(value)) for name, value in pairs]
        width = max((len(name) for name, _ in items), default=0)
        for name, value in items:
            print(f"{self.paint(name.ljust(width), 'dim')}  {value}")


class _Painted(str):
    """Text ``paint`` styled: its escape codes are ours, kept as they are."""


def shown(value: object) -> str:
    """``value`` as a cell or field shows it: control characters a name, note or model
    may carry (a newline, an escape sequence) written as escapes (``\\x1b``), so
    they can neither break a table's lines nor drive the terminal."""
    text = str(value)
    if isinstance(value, _Painted) or text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def short_time(iso: str | None) -> str:
    """A view's time for people: the same local ISO 8601 with offset, to the second."""
    return "-" if iso is None else iso[:19] + iso[23:]


def warn(message: str) -> None:
    print(f"chatflow: warning: {message}", file=sys.stderr)


class Progress:
    """A progress bar on stderr, drawn only on a terminal and once work passes
    ``PROGRESS_AFTER_S``: short runs, logs and CI output never fill with bars."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self.start = time.monotonic()
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        if self.enabled and total and time.monotonic() - self.start >= PROGRESS_AFTER_S:
            _draw(sys.stderr, self.label, done, total)
            self.drawn = True

    def over(self, items: Sequence[T]) -> Iterator[T]:
        """Yield ``items``, showing how many are done."""
        for done, item in enumerate(items):
            self(done, len(items))
            yield item
        self(len(items), len(items))

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            self.drawn = False


def _draw(stream: TextIO, label: str, done: int, total: int) -> None:
    width = 30
    filled = width * done // total
    stream.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    stream.flush()


def _wants_colour(stream: TextIO) -> bool:
    return not os.environ.get("NO_COLOR") and stream.isatty() and os.environ.get("TERM") != "dumb"


def _join(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
