"""The ``chatflow`` command (entry point ``chatflow.cli:main``).

``main`` parses and dispatches; ``context`` holds what commands share (store, exit
codes, arguments); ``output`` writes tables, JSON, colour and progress, ``logs`` the
library's log lines; ``read``, ``act``, ``admin`` and ``ui`` hold the commands;
``completion`` the shell completion.
"""

from chatflow.cli.main import main

__all__ = ["main"]
