"""Run ``chatflow`` in the test process: ``chatflow.cli.main(argv)`` as a subprocess would.

Starting a Python interpreter per command dominated the suite's time, so the CLI cases
call ``main`` directly. What a fresh process would give each call is recreated here and
undone afterwards: its own environment (``os.environ`` replaced, not merged), its own
working folder, stdin/stdout/stderr as text buffers (not terminals, like pipes), the
exit status from the return value or ``SystemExit``, and a traceback on stderr with
status 1 for an uncaught exception (what the interpreter prints), so "no traceback"
checks mean the same thing. The ``chatflow`` logger's handlers and level are restored,
so ``-v`` in one call cannot leak into the next.

What needs a real process stays a subprocess (see ``tests/cli/test_terminal.py``,
``tests/cli/test_prompts.py``): the entry point, signals, terminals, kills and real
concurrency. One call at a time: a second thread entering is an error, not a race.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

_ONE_AT_A_TIME = threading.Lock()


def run_in_process(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: str = "",
) -> subprocess.CompletedProcess[str]:
    """``chatflow args`` in ``cwd`` with exactly ``env``; the result a subprocess gives."""
    from chatflow.cli.main import main

    if not _ONE_AT_A_TIME.acquire(blocking=False):
        raise RuntimeError("run_in_process is not reentrant; use a subprocess for concurrency")
    try:
        out, err = io.StringIO(), io.StringIO()
        # Text over bytes, as a pipe: ``chatflow hook`` reads ``sys.stdin.buffer``.
        given = io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8")), encoding="utf-8")
        with _isolated(cwd, env, given, out, err):
            status = _status_of(main, list(args), err)
        return subprocess.CompletedProcess(
            ["chatflow", *args], status, out.getvalue(), err.getvalue()
        )
    finally:
        _ONE_AT_A_TIME.release()


def _status_of(main: object, argv: list[str], err: io.StringIO) -> int:
    """The exit status ``python -m chatflow argv`` would end with."""
    try:
        status = main(argv)  # type: ignore[operator]
    except SystemExit as exit_:
        return _exit_status(exit_.code, err)
    except Exception:  # noqa: BLE001  (the interpreter prints it and exits 1)
        traceback.print_exc(file=err)
        return 1
    return int(status or 0)


def _exit_status(code: object, err: io.StringIO) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=err)
    return 1


@contextmanager
def _isolated(
    cwd: Path, env: Mapping[str, str], stdin: TextIO, out: io.StringIO, err: io.StringIO
) -> Iterator[None]:
    """Environment, folder, standard streams and the ``chatflow`` logger, restored after."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    logger = logging.getLogger("chatflow")
    saved_handlers, saved_level = list(logger.handlers), logger.level
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.stdin, sys.stdout, sys.stderr = stdin, out, err
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        logger.handlers[:] = saved_handlers
        logger.setLevel(saved_level)


def ctrl_c_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child the test stops with SIGINT: Ctrl-C stops it even when
    the suite itself runs with SIGINT ignored (as a shell's background job does, and its
    children inherit; Python then installs no handler), else the test waits out its
    timeout."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
