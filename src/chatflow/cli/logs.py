"""The command's log output: the library's records as ``chatflow: <level>: ...`` lines.

A module of its own so that ``main`` imports ``logging`` only when something logs.
"""

from __future__ import annotations

import logging
import sys


def install(verbosity: int) -> None:
    """Show the library's warnings (``-v`` info, ``-vv`` debug) on stderr."""
    logger = logging.getLogger("chatflow")
    for handler in logger.handlers:
        if isinstance(handler.formatter, _Formatter):  # main() called again in one process
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(
        logging.DEBUG if verbosity > 1 else logging.INFO if verbosity else logging.WARNING
    )


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"chatflow: {record.levelname.lower()}: {record.getMessage()}"
