"""The library's loggers, with ``logging`` imported only when there is something to log.

Most runs never log (``chatflow list`` reads and prints), and importing ``logging``
costs several milliseconds of start-up (bench/bench_cli.py). So library code asks
``logger()`` at the moment it logs, and the ``chatflow`` command hands its log set-up
to ``on_first_use`` instead of importing ``logging`` itself.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

# Run once, just before the first logger is handed out: the command's handler set-up.
on_first_use: Callable[[], None] | None = None


def logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, after any pending ``on_first_use`` has run."""
    global on_first_use
    import logging  # noqa: PLC0415 - the reason this module exists

    setup, on_first_use = on_first_use, None
    if setup is not None:
        setup()
    return logging.getLogger(name)


def loaded() -> bool:
    """Whether ``logging`` is imported. Until it is, nothing can have set a level or a
    handler, so a record below WARNING would go nowhere (Python's last-resort handler
    shows warnings only): such records can be skipped without importing it."""
    return "logging" in sys.modules
